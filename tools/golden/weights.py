"""Weight-file fixtures from real tensorpack 0.11 (run by `make golden` in `.venv-golden`).

`train`: (1) trains a small tensorpack model (Conv2D + BatchNorm + FullyConnected, ModelDesc,
MomentumOptimizer) for 3 steps with tensorpack's own trainer and ModelSaver, which writes a
real TensorFlow checkpoint (`model-3.index`, `model-3.data-00000-of-00001`, `checkpoint`).
Then it dumps the model variables to `.npz` as `scripts/dump-model-params.py` does
(`load_chkpt_vars`, keep TRAINABLE + MODEL variables, `save_chkpt_vars`), and records every
tensor in the checkpoint as TensorFlow's own reader returns it (`reference.npz`).
(2) has TensorFlow's Saver write a checkpoint of 241 variables (`many/`, values from
weights_values.py) whose index uses prefix-compressed keys and many restart points.

`roundtrip`: loads the `.npz` and the TF checkpoint that tpflax wrote
(tools/golden/export_tpflax.py) into the same model with tensorpack's `SmartInit` in an
inference tower, records any warning tensorpack logged while restoring, the logits for a
fixed input, and whether TensorFlow's reader sees the npz's values in tpflax's TF checkpoint
(`roundtrip.npz`).

Nothing here comes from tpflax; `roundtrip` only reads the file tpflax wrote.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
from tensorpack import (
    BatchNorm,
    Conv2D,
    DataFromList,
    FullyConnected,
    GlobalAvgPooling,
    ModelDesc,
    ModelSaver,
    OfflinePredictor,
    PredictConfig,
    SimpleTrainer,
    TrainConfig,
    launch_train_with_config,
)
from tensorpack.tfutils import varmanip
from tensorpack.tfutils.common import get_op_tensor_name
from tensorpack.tfutils.sessinit import SmartInit

sys.path.insert(0, os.path.dirname(__file__))
import weights_values

tf1 = tf.compat.v1
SHAPE = (4, 6, 6, 3)


class Net(ModelDesc):
    def inputs(self):
        return [tf.TensorSpec(SHAPE, tf.float32, "image"), tf.TensorSpec((4,), tf.int32, "label")]

    def build_graph(self, image, label):
        l = Conv2D("conv0", image, 4, 3, activation=tf.nn.relu)
        l = BatchNorm("bn", l)
        l = FullyConnected("fc", GlobalAvgPooling("gap", l), 3)
        tf.identity(l, name="logits")
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(logits=l, labels=label), name="loss"
        )
        return loss

    def optimizer(self):
        return tf1.train.MomentumOptimizer(0.1, 0.9)


def data():
    rng = np.random.RandomState(0)
    return [
        [rng.randn(*SHAPE).astype("float32"), rng.randint(0, 3, size=4).astype("int32")]
        for _ in range(3)
    ]


def train(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp()
    try:
        tf1.set_random_seed(0)
        config = TrainConfig(
            model=Net(),
            dataflow=DataFromList(data(), shuffle=False),
            callbacks=[ModelSaver(checkpoint_dir=work)],
            steps_per_epoch=3,
            max_epoch=1,
        )
        launch_train_with_config(config, SimpleTrainer())
        for name in os.listdir(work):
            if name.startswith("model-") or name == "checkpoint":
                shutil.copy(os.path.join(work, name), out_dir)
    finally:
        shutil.rmtree(work)
    # The checkpoint file ModelSaver wrote names its absolute directory; keep it relative.
    with open(os.path.join(out_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model-3"\nall_model_checkpoint_paths: "model-3"\n')

    prefix = os.path.join(out_dir, "model-3")
    everything = varmanip.load_chkpt_vars(prefix)  # TensorFlow's own reader
    np.savez(os.path.join(out_dir, "reference.npz"), **everything)

    # dump-model-params.py with --meta keeps TRAINABLE + MODEL variables. On TF 2.21,
    # tensorpack 0.11 leaves MODEL_VARIABLES empty (its isinstance check fails on TF2
    # variables), which would drop the BN statistics; keep what the collection held on TF1:
    # the global variables that are not training-only (optimizer slots, global_step).
    dic = {get_op_tensor_name(k)[1]: v for k, v in everything.items()}
    keep = {k for k in dic if not varmanip.is_training_name(k) and not k.startswith("global_step")}
    varmanip.save_chkpt_vars({k: v for k, v in dic.items() if k in keep}, prefix + ".npz")
    print("wrote", sorted(os.listdir(out_dir)))


def many(out_dir: str) -> None:
    """A checkpoint written by TensorFlow's own Saver (tensorpack's save_chkpt_vars) with
    241 variables: its index has prefix-compressed keys and many restart points, as a real
    ResNet checkpoint's has. The values come from weights_values.many_values()."""
    prefix = os.path.join(out_dir, "many", "model-7")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    varmanip.save_chkpt_vars(weights_values.many_values(), prefix)


class _Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _predict(session_init_path: str, image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    from tensorpack.utils import logger

    recorder = _Recorder()
    logger._logger.addHandler(recorder)
    try:
        tf1.reset_default_graph()
        predictor = OfflinePredictor(
            PredictConfig(
                model=Net(),
                session_init=SmartInit(session_init_path),
                input_names=["image"],
                output_names=["logits"],
            )
        )
        (logits,) = predictor(image)
    finally:
        logger._logger.removeHandler(recorder)
    return logits, recorder.messages


def roundtrip(folder: str, out_path: str) -> None:
    """tensorpack restores the files tpflax wrote (`tpflax-export.npz`, and the TF
    checkpoint `tpflax-export-tf/model`): record warnings, logits, and whether TensorFlow's
    own reader sees the same values in both."""
    npz_path = os.path.join(folder, "tpflax-export.npz")
    tf_prefix = os.path.join(folder, "tpflax-export-tf", "model")
    image = np.random.RandomState(7).randn(*SHAPE).astype("float32")
    logits_npz, warnings_npz = _predict(npz_path, image)
    logits_tf, warnings_tf = _predict(tf_prefix, image)
    reader = tf1.train.load_checkpoint(tf_prefix)
    with np.load(npz_path) as npz:
        names = sorted(get_op_tensor_name(k)[0] for k in npz.files)
        same = sorted(reader.get_variable_to_shape_map()) == names and all(
            np.array_equal(reader.get_tensor(get_op_tensor_name(k)[0]), npz[k]) for k in npz.files
        )
    np.savez(
        out_path,
        image=image,
        logits_npz=logits_npz,
        logits_tf=logits_tf,
        warnings=np.array(json.dumps(warnings_npz + warnings_tf)),
        tf_reader_matches_npz=np.array(same),
    )
    print("tensorpack restored tpflax's files; warnings:", warnings_npz + warnings_tf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train")
    p.add_argument("--out", default="tests/golden/weights")
    p = sub.add_parser("roundtrip")
    p.add_argument("--dir", default="tests/golden/weights")
    args = parser.parse_args()
    if args.cmd == "train":
        train(args.out)
        many(args.out)
    else:
        roundtrip(args.dir, os.path.join(args.dir, "roundtrip.npz"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
