"""Training-equivalence fixtures from real tensorpack 0.11 (run by `make golden` in
`.venv-golden`).

`classifier`: a tensorpack `ModelDesc` (Conv2D + BatchNorm + MaxPooling + two
FullyConnected, cross-entropy plus `regularize_cost("fc.*/W", l2_regularizer(1e-2))`) trained
STEPS steps by tensorpack's own trainer (`launch_train_with_config`, `SimpleTrainer`, TF's
`AdamOptimizer(1e-2)` from `optimizer()`, BatchNorm's EMA updates run by tensorpack's
`RunUpdateOps`) from fixed initial weights (`SmartInit` of a dict) on fixed batches fed in
order (`DataFromList`, no shuffle). Written to --out/classifier.npz:

    init/<name>           the initial variables (tensorpack names, BN statistics included)
    image/<step>, label/<step>   the batch of each step
    total_cost, cross_entropy, wd_cost   per step, as tensorpack's train op computed them
                          (fetched in the same session run as the update: before it)
    final/<name>          every variable after the last step (model variables, Adam's slots
                          `<var>/Adam`, `<var>/Adam_1`, `beta1_power`, `beta2_power`;
                          `global_step` left out)
    mid/<name>            the same after step HALF (two epochs of HALF steps: what a
                          checkpoint written there holds, to resume from), mid_global_step

Nothing here comes from tpflax.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
from tensorpack import (
    BatchNorm,
    Callback,
    Conv2D,
    DataFromList,
    FullyConnected,
    MaxPooling,
    ModelDesc,
    SimpleTrainer,
    TrainConfig,
    launch_train_with_config,
)
from tensorpack.models.regularize import l2_regularizer, regularize_cost
from tensorpack.tfutils.sessinit import SmartInit

tf1 = tf.compat.v1
STEPS = 10
HALF = 5
SHAPE = (8, 6, 6, 2)
COSTS = ("total_cost", "cross_entropy", "wd_cost")


class Net(ModelDesc):
    def inputs(self):
        return [tf.TensorSpec(SHAPE, tf.float32, "image"), tf.TensorSpec((8,), tf.int32, "label")]

    def build_graph(self, image, label):
        l = Conv2D("conv0", image, 4, 3, activation=tf.nn.relu)
        l = BatchNorm("bn", l)
        l = MaxPooling("pool", l, 2)
        l = FullyConnected("fc0", l, 8, activation=tf.nn.relu)
        logits = FullyConnected("linear", l, 3)
        cost = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(logits=logits, labels=label),
            name="cross_entropy",
        )
        wd_cost = regularize_cost("fc.*/W", l2_regularizer(1e-2), name="wd_cost")
        return tf.add_n([cost, wd_cost], name="total_cost")

    def optimizer(self):
        return tf1.train.AdamOptimizer(1e-2)


def initial_weights() -> dict[str, np.ndarray]:
    rng = np.random.RandomState(21)
    shapes = {
        "conv0/W": (3, 3, 2, 4),
        "conv0/b": (4,),
        "fc0/W": (36, 8),
        "fc0/b": (8,),
        "linear/W": (8, 3),
        "linear/b": (3,),
    }
    out = {k: (rng.randn(*s) * 0.3).astype("float32") for k, s in shapes.items()}
    out["bn/gamma"] = (1 + 0.1 * rng.randn(4)).astype("float32")
    out["bn/beta"] = (0.1 * rng.randn(4)).astype("float32")
    out["bn/mean/EMA"] = (0.1 * rng.randn(4)).astype("float32")
    out["bn/variance/EMA"] = (1 + 0.1 * rng.rand(4)).astype("float32")
    return out


def batches() -> list[list[np.ndarray]]:
    rng = np.random.RandomState(22)
    return [
        [rng.randn(*SHAPE).astype("float32"), rng.randint(0, 3, size=8).astype("int32")]
        for _ in range(STEPS)
    ]


class Record(Callback):
    """The costs of each step (fetched with the train op) and every variable at the end."""

    def __init__(self):
        self.costs = []
        self.epochs = []

    def _setup_graph(self):
        graph = tf1.get_default_graph()
        self._fetches = [graph.get_tensor_by_name(f"{n}:0") for n in COSTS]

    def _before_run(self, ctx):
        return tf1.train.SessionRunArgs(fetches=self._fetches)

    def _after_run(self, ctx, values):
        self.costs.append(values.results)

    def _trigger_epoch(self):
        variables = [v for v in tf1.global_variables() if v.op.name != "global_step"]
        self.epochs.append(self.trainer.sess.run({v.op.name: v for v in variables}))
        self.epochs[-1]["global_step"] = self.trainer.sess.run(tf1.train.get_global_step())


def classifier(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    tf1.reset_default_graph()
    init, data = initial_weights(), batches()
    record = Record()
    config = TrainConfig(
        model=Net(),
        dataflow=DataFromList(data, shuffle=False),
        callbacks=[record],
        session_init=SmartInit(dict(init)),
        steps_per_epoch=HALF,
        max_epoch=STEPS // HALF,
    )
    launch_train_with_config(config, SimpleTrainer())
    assert len(record.costs) == STEPS, len(record.costs)
    out: dict[str, np.ndarray] = {f"init/{k}": v for k, v in init.items()}
    for step, (image, label) in enumerate(data):
        out[f"image/{step}"], out[f"label/{step}"] = image, label
    costs = np.array(record.costs, dtype="float32")
    for i, name in enumerate(COSTS):
        out[name] = costs[:, i]
    mid, final = record.epochs
    assert mid.pop("global_step") == HALF and final.pop("global_step") == STEPS
    out["mid_global_step"] = np.array(HALF)
    out.update({f"mid/{k}": np.asarray(v) for k, v in mid.items()})
    out.update({f"final/{k}": np.asarray(v) for k, v in final.items()})
    np.savez(os.path.join(out_dir, "classifier.npz"), **out)
    print("costs", costs[:, 0], "variables", sorted(final))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/tf_training")
    args = parser.parse_args()
    classifier(args.out)


if __name__ == "__main__":
    main()
