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

`schedules`: tensorpack's hyperparameter callbacks (`ScheduledHyperParamSetter` epoch- and
step-based, with and without `interp="linear"`; `HyperParamSetterWithFunc`) driving the
learning-rate variable of a one-variable model trained SCHED_EPOCHS epochs of
SCHED_STEPS_PER_EPOCH steps: --out/schedules.npz holds, per case, the learning rate each step
ran with (`<case>/lr`, read in the train op's session run) and the case's arguments (JSON).

`frozen_rmsprop`: the same with conv0 under `freeze_variables(stop_gradient=True)` and TF's
`RMSPropOptimizer(3e-3, momentum=0.9, epsilon=1e-6, centered=True)`; same keys, in
--out/frozen_rmsprop.npz (slots `<var>/RMSProp`, `_1`, `_2`, none for conv0).

Nothing here comes from tpflax.
"""

from __future__ import annotations

import argparse
import json
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
    HyperParamSetterWithFunc,
    MaxPooling,
    ModelDesc,
    ScheduledHyperParamSetter,
    SimpleTrainer,
    TrainConfig,
    launch_train_with_config,
)
from tensorpack.models.regularize import l2_regularizer, regularize_cost
from tensorpack.tfutils.sessinit import SmartInit
from tensorpack.tfutils.varreplace import freeze_variables

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


class FrozenNet(Net):
    """The classifier with conv0 under tensorpack's freeze_variables(stop_gradient=True)
    (trainable, but no gradient: no optimizer slots, never updated), trained with TF's
    centered RMSProp with momentum."""

    def build_graph(self, image, label):
        with freeze_variables(stop_gradient=True):
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
        return tf1.train.RMSPropOptimizer(3e-3, momentum=0.9, epsilon=1e-6, centered=True)


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


def classifier(out_dir: str, name: str = "classifier", model: type = Net) -> None:
    os.makedirs(out_dir, exist_ok=True)
    tf1.reset_default_graph()
    init, data = initial_weights(), batches()
    record = Record()
    config = TrainConfig(
        model=model(),
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
    for i, cost_name in enumerate(COSTS):
        out[cost_name] = costs[:, i]
    mid, final = record.epochs
    assert mid.pop("global_step") == HALF and final.pop("global_step") == STEPS
    out["mid_global_step"] = np.array(HALF)
    out.update({f"mid/{k}": np.asarray(v) for k, v in mid.items()})
    out.update({f"final/{k}": np.asarray(v) for k, v in final.items()})
    np.savez(os.path.join(out_dir, f"{name}.npz"), **out)
    print("costs", costs[:, 0], "variables", sorted(final))


SCHED_STEPS_PER_EPOCH = 3
SCHED_EPOCHS = 5
# case -> (initial learning rate, callback kind, its arguments)
SCHEDULES = {
    "epochs": (0.2, "scheduled", {"schedule": [(0, 0.1), (2, 0.05), (4, 0.01)]}),
    "epochs_late_start": (0.2, "scheduled", {"schedule": [(2, 0.05), (3, 0.02)]}),
    "epochs_linear": (0.3, "scheduled", {"schedule": [(1, 0.1), (4, 0.01)], "interp": "linear"}),
    "steps": (
        0.4,
        "scheduled",
        {"schedule": [(0, 0.5), (5, 0.1), (11, 0.02)], "step_based": True},
    ),
    "steps_linear": (
        0.4,
        "scheduled",
        {"schedule": [(2, 0.1), (12, 0.001)], "step_based": True, "interp": "linear"},
    ),
    # tensorpack's docstring example: decrease by 0.9 every two epochs (epoch 0 included)
    "with_func": (0.1, "with_func", {}),
}


def decay_every_two_epochs(epoch, value):
    return value * 0.9 if epoch % 2 == 0 else value


class LrNet(ModelDesc):
    def __init__(self, initial):
        self.initial = initial

    def inputs(self):
        return [tf.TensorSpec((2,), tf.float32, "x")]

    def build_graph(self, x):
        w = tf1.get_variable("w", initializer=np.ones(2, "float32"))
        return tf.reduce_sum(tf.square(w * x), name="cost")

    def optimizer(self):
        lr = tf1.get_variable("learning_rate", initializer=self.initial, trainable=False)
        return tf1.train.GradientDescentOptimizer(lr)


class RecordLr(Callback):
    def __init__(self):
        self.values = []

    def _setup_graph(self):
        (variable,) = [v for v in tf1.global_variables() if v.op.name == "learning_rate"]
        self._lr = variable.value()

    def _before_run(self, ctx):
        return tf1.train.SessionRunArgs(fetches=self._lr)

    def _after_run(self, ctx, values):
        self.values.append(values.results)


def schedules(out_dir: str) -> None:
    out: dict[str, np.ndarray] = {
        "steps_per_epoch": np.array(SCHED_STEPS_PER_EPOCH),
        "epochs": np.array(SCHED_EPOCHS),
    }
    for name, (initial, kind, kwargs) in SCHEDULES.items():
        tf1.reset_default_graph()
        if kind == "scheduled":
            setter = ScheduledHyperParamSetter("learning_rate", **kwargs)
        else:
            setter = HyperParamSetterWithFunc("learning_rate", decay_every_two_epochs)
        record = RecordLr()
        data = [[np.ones(2, "float32")] for _ in range(SCHED_STEPS_PER_EPOCH)]
        config = TrainConfig(
            model=LrNet(initial),
            dataflow=DataFromList(data, shuffle=False),
            callbacks=[setter, record],
            steps_per_epoch=SCHED_STEPS_PER_EPOCH,
            max_epoch=SCHED_EPOCHS,
        )
        launch_train_with_config(config, SimpleTrainer())
        assert len(record.values) == SCHED_STEPS_PER_EPOCH * SCHED_EPOCHS
        out[f"{name}/lr"] = np.array(record.values, dtype="float32")
        out[f"{name}/initial"] = np.array(initial)
        out[f"{name}/kind"] = np.array(kind)
        out[f"{name}/kwargs"] = np.array(json.dumps(kwargs))
        print(name, out[f"{name}/lr"])
    np.savez(os.path.join(out_dir, "schedules.npz"), **out)


def resume(case: str, checkpoint: str, out_path: str) -> None:
    """Tensorpack resumes a run from `checkpoint` (written by tpflax after HALF steps: model
    variables, optimizer slots, global_step), restored by `SmartInit`, and trains steps
    HALF..STEPS-1 on the same batches; the costs and final variables go to `out_path`. The
    test (tests/test_tf_training.py, `make test-tf`) compares them with the uninterrupted
    run in the fixture."""
    tf1.reset_default_graph()
    record = Record()
    config = TrainConfig(
        model={"classifier": Net, "frozen_rmsprop": FrozenNet}[case](),
        dataflow=DataFromList(batches()[HALF:], shuffle=False),
        callbacks=[record],
        session_init=SmartInit(checkpoint),
        steps_per_epoch=STEPS - HALF,
        max_epoch=1,
    )
    launch_train_with_config(config, SimpleTrainer())
    (final,) = record.epochs
    out = {f"final/{k}": np.asarray(v) for k, v in final.items() if k != "global_step"}
    out["global_step"] = np.asarray(final["global_step"])
    costs = np.array(record.costs, dtype="float32")
    for i, cost_name in enumerate(COSTS):
        out[cost_name] = costs[:, i]
    np.savez(out_path, **out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/tf_training")
    parser.add_argument(
        "--resume-from", help="a checkpoint to resume (test mode: --out is a .npz file)"
    )
    parser.add_argument("--case", default="classifier")
    args = parser.parse_args()
    if args.resume_from:
        resume(args.case, args.resume_from, args.out)
        return
    classifier(args.out)
    classifier(args.out, "frozen_rmsprop", FrozenNet)
    schedules(args.out)


if __name__ == "__main__":
    main()
