"""The demo's reference: real tensorpack 0.11 trains a small convnet on real data and saves a
real checkpoint (run by `make golden-digits` in `.venv-golden`; about a minute).

Data: the 8x8 handwritten digits scikit-learn ships (UCI "Optical Recognition of Handwritten
Digits", 1,797 images, CC BY 4.0). A seeded split keeps 360 images held out. The net is written
the tutorial's way (argscope + LinearWrap; Conv2D with BNReLU, MaxPooling, FullyConnected,
Dropout), trained with tensorpack's own ModelDesc, SimpleTrainer and ModelSaver (Adam, 300
steps of batch 64). Written to --out (src/tpflax/demo_data by default):

    digits.npz               train/held-out images (uint8, 0..16) and labels
    model-300.index, model-300.data-00000-of-00001, checkpoint
                             tensorpack's checkpoint (optimizer slots included)
    tensorpack_digits.json   held-out accuracy and versions, as tensorpack computed them
    tensorpack_logits.npz    tensorpack's logits for every held-out image (inference tower)

Nothing here comes from tpflax.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
import sklearn
import tensorpack
from sklearn.datasets import load_digits
from tensorpack import (
    BatchData,
    BNReLU,
    Conv2D,
    DataFromList,
    LinearWrap,
    ModelDesc,
    ModelSaver,
    OfflinePredictor,
    PredictConfig,
    SimpleTrainer,
    TrainConfig,
    launch_train_with_config,
)
from tensorpack.tfutils.argscope import argscope
from tensorpack.tfutils.sessinit import SmartInit

tf1 = tf.compat.v1
STEPS = 300
BATCH = 64
HELD_OUT = 360


class DigitsNet(ModelDesc):
    def inputs(self):
        return [
            tf.TensorSpec((None, 8, 8, 1), tf.float32, "image"),
            tf.TensorSpec((None,), tf.int32, "label"),
        ]

    def build_graph(self, image, label):
        image = image / 16.0
        with argscope(Conv2D, kernel_size=3, activation=BNReLU):
            logits = (
                LinearWrap(image)
                .Conv2D("conv0", 16)
                .Conv2D("conv1", 16)
                .MaxPooling("pool0", 2)
                .Conv2D("conv2", 32)
                .MaxPooling("pool1", 2)
                .FullyConnected("fc0", 64, activation=tf.nn.relu)
                .Dropout("drop", rate=0.3)
                .FullyConnected("linear", 10)()
            )
        tf.identity(logits, name="logits")
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(logits=logits, labels=label),
            name="cost",
        )

    def optimizer(self):
        return tf1.train.AdamOptimizer(1e-3)


def split():
    digits = load_digits()
    images = digits.images.astype("uint8")[..., None]  # 0..16
    labels = digits.target.astype("int32")
    order = np.random.RandomState(0).permutation(len(labels))
    test, train = order[:HELD_OUT], order[HELD_OUT:]
    return images[train], labels[train], images[test], labels[test]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="src/tpflax/demo_data")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    x_train, y_train, x_test, y_test = split()
    np.savez_compressed(
        os.path.join(args.out, "digits.npz"),
        train_images=x_train,
        train_labels=y_train,
        test_images=x_test,
        test_labels=y_test,
    )

    tf1.set_random_seed(0)
    np.random.seed(0)
    samples = [[x.astype("float32"), y] for x, y in zip(x_train, y_train, strict=True)]
    dataflow = BatchData(DataFromList(samples, shuffle=True), BATCH, remainder=False)
    work = tempfile.mkdtemp()
    try:
        config = TrainConfig(
            model=DigitsNet(),
            dataflow=dataflow,
            callbacks=[ModelSaver(checkpoint_dir=work, max_to_keep=1)],
            steps_per_epoch=STEPS // 6,
            max_epoch=6,
        )
        launch_train_with_config(config, SimpleTrainer())
        for name in os.listdir(work):
            if name.startswith(f"model-{STEPS}.") or name == "checkpoint":
                shutil.copy(os.path.join(work, name), args.out)
    finally:
        shutil.rmtree(work)
    with open(os.path.join(args.out, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "model-{STEPS}"\n')

    tf1.reset_default_graph()
    predictor = OfflinePredictor(
        PredictConfig(
            model=DigitsNet(),
            session_init=SmartInit(os.path.join(args.out, f"model-{STEPS}")),
            input_names=["image"],
            output_names=["logits"],
        )
    )
    (logits,) = predictor(x_test.astype("float32"))
    accuracy = float(np.mean(np.argmax(logits, 1) == y_test))
    np.savez_compressed(os.path.join(args.out, "tensorpack_logits.npz"), logits=logits)
    with open(os.path.join(args.out, "tensorpack_digits.json"), "w") as f:
        json.dump(
            {
                "held_out_accuracy": accuracy,
                "held_out_images": len(y_test),
                "train_images": len(y_train),
                "steps": STEPS,
                "batch_size": BATCH,
                "checkpoint": f"model-{STEPS}",
                "tensorflow": tf.__version__,
                "tensorpack": tensorpack.__version__,
                "scikit-learn": sklearn.__version__,
            },
            f,
            indent=2,
        )
    print(f"tensorpack held-out accuracy: {accuracy:.4f} on {len(y_test)} images")


if __name__ == "__main__":
    main()
