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

`gan`, `gan_separate`: a small DCGAN (DCGAN.py's generator and discriminator in miniature,
GAN.py's build_losses, the discriminator reused under auto_reuse_variable_scope) trained by
GAN.py's GANTrainer (10 steps) and SeparateGANTrainer(d_period=1, g_period=2) (10 iterations,
19 sess.runs), re-typed here from tensorpack's examples, with DCGAN.py's
AdamOptimizer(2e-4, beta1=0.5, epsilon=1e-3), fixed weights (init/) and batches (input/<run>,
z/<run>, one per sess.run), two epochs of HALF iterations. Per sess.run: the op it ran (ops),
g_loss and d_loss (fetched in the run: before its update); mid/ and final/ as above (the one
shared optimize/beta1_power, optimize/beta2_power), mid_global_step and final_global_step;
gan.npz also holds two_optimizers/names, the variables of the same graph built with two Adam
objects. `--only gan,gan_separate` writes just these.

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
    BNReLU,
    Callback,
    Conv2D,
    Conv2DTranspose,
    DataFromList,
    FullyConnected,
    HyperParamSetterWithFunc,
    LinearWrap,
    MaxPooling,
    ModelDesc,
    QueueInput,
    ScheduledHyperParamSetter,
    SimpleTrainer,
    TowerTrainer,
    TrainConfig,
    argscope,
    launch_train_with_config,
)
from tensorpack.models.regularize import l2_regularizer, regularize_cost
from tensorpack.tfutils.scope_utils import auto_reuse_variable_scope
from tensorpack.tfutils.sesscreate import NewSessionCreator
from tensorpack.tfutils.sessinit import SmartInit
from tensorpack.tfutils.summary import add_moving_summary
from tensorpack.tfutils.tower import TowerContext, TowerFunc
from tensorpack.tfutils.varreplace import freeze_variables
from tensorpack.utils.argtools import memoized_method

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


def resume_gan(case: str, checkpoint: str, out_path: str) -> None:
    """Tensorpack's GAN trainer of `case` resumes from `checkpoint` (written by tpflax after
    HALF iterations: model variables, both networks' Adam slots, `optimize/beta1_power`,
    global_step) and runs the remaining HALF iterations on the batches the uninterrupted run
    used from that global_step on; costs, ops and final variables go to `out_path`."""
    start = int(tf.train.load_variable(checkpoint, "global_step"))
    tf1.reset_default_graph()
    record = RecordGAN()
    source = QueueInput(DataFromList(gan_batches()[start:], shuffle=False))
    periods = GAN_CASES[case]
    if periods is None:
        trainer = GANTrainer(source, GANNet())
    else:
        trainer = SeparateGANTrainer(source, GANNet(), *periods)
    config = tf1.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)
    trainer.train_with_defaults(
        callbacks=[record],
        session_creator=NewSessionCreator(config=config),
        session_init=SmartInit(checkpoint),
        steps_per_epoch=STEPS - HALF,
        max_epoch=1,
    )
    (final,) = record.epochs
    out = {f"final/{k}": np.asarray(v) for k, v in final.items() if k != "global_step"}
    out["global_step"] = np.asarray(final["global_step"])
    costs = np.array(record.costs, dtype="float32")
    out["g_loss"], out["d_loss"] = costs[:, 0], costs[:, 1]
    out["ops"] = np.array(record.ops)
    np.savez(out_path, **out)


def resume(case: str, checkpoint: str, out_path: str) -> None:
    """Tensorpack resumes a run from `checkpoint` (written by tpflax after HALF steps: model
    variables, optimizer slots, global_step), restored by `SmartInit`, and trains steps
    HALF..STEPS-1 on the same batches; the costs and final variables go to `out_path`. The
    test (tests/test_tf_training.py, `make test-tf`) compares them with the uninterrupted
    run in the fixture."""
    if case in GAN_CASES:
        resume_gan(case, checkpoint, out_path)
        return
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


# ---------------------------------------------------------------- GANs
# A small DCGAN in the style of tensorpack's examples/GAN (DCGAN.py's generator and
# discriminator, GAN.py's build_losses/collect_variables, GANTrainer and SeparateGANTrainer),
# written here for TF: GAN.py is an example, not part of the tensorpack package.
GAN_BATCH, GAN_SIZE, GAN_ZDIM = 4, 8, 6
GAN_RUNS = 20  # batches in the list: SeparateGANTrainer takes one per sess.run


class GANNet(ModelDesc):
    def inputs(self):
        return [
            tf.TensorSpec((GAN_BATCH, GAN_SIZE, GAN_SIZE, 2), tf.float32, "input"),
            tf.TensorSpec((GAN_BATCH, GAN_ZDIM), tf.float32, "z"),
        ]

    def generator(self, z):
        l = FullyConnected("fc0", z, 2 * 2 * 8, activation=tf.identity)
        l = tf.reshape(l, [-1, 2, 2, 8])
        l = BNReLU(l)
        with argscope(Conv2DTranspose, activation=BNReLU, kernel_size=4, strides=2):
            l = Conv2DTranspose("deconv1", l, 4)
            l = Conv2DTranspose("deconv2", l, 2, activation=tf.identity)
            l = tf.tanh(l, name="gen")
        return l

    @auto_reuse_variable_scope
    def discriminator(self, imgs):
        with argscope(Conv2D, kernel_size=4, strides=2):
            l = (
                LinearWrap(imgs)
                .Conv2D("conv0", 4, activation=tf.nn.leaky_relu)
                .Conv2D("conv1", 8)
                .BatchNorm("bn1")
                .tf.nn.leaky_relu()
                .FullyConnected("fct", 1)()
            )
        return l

    def build_graph(self, image_pos, z):
        image_pos = image_pos / 128.0 - 1
        with argscope(
            [Conv2D, Conv2DTranspose, FullyConnected],
            kernel_initializer=tf1.truncated_normal_initializer(stddev=0.02),
        ):
            with tf1.variable_scope("gen"):
                image_gen = self.generator(z)
            with tf1.variable_scope("discrim"):
                vecpos = self.discriminator(image_pos)
                vecneg = self.discriminator(image_gen)
        self.build_losses(vecpos, vecneg)
        self.collect_variables()

    def build_losses(self, logits_real, logits_fake):  # GAN.py's GANModelDesc.build_losses
        with tf.name_scope("GAN_loss"):
            score_real = tf.sigmoid(logits_real)
            score_fake = tf.sigmoid(logits_fake)
            with tf.name_scope("discrim"):
                xent = tf.nn.sigmoid_cross_entropy_with_logits
                d_loss_pos = tf.reduce_mean(
                    xent(logits=logits_real, labels=tf.ones_like(logits_real)), name="loss_real"
                )
                d_loss_neg = tf.reduce_mean(
                    xent(logits=logits_fake, labels=tf.zeros_like(logits_fake)), name="loss_fake"
                )
                d_pos_acc = tf.reduce_mean(
                    tf.cast(score_real > 0.5, tf.float32), name="accuracy_real"
                )
                d_neg_acc = tf.reduce_mean(
                    tf.cast(score_fake < 0.5, tf.float32), name="accuracy_fake"
                )
                d_accuracy = tf.add(0.5 * d_pos_acc, 0.5 * d_neg_acc, name="accuracy")
                self.d_loss = tf.add(0.5 * d_loss_pos, 0.5 * d_loss_neg, name="loss")
            with tf.name_scope("gen"):
                self.g_loss = tf.reduce_mean(
                    xent(logits=logits_fake, labels=tf.ones_like(logits_fake)), name="loss"
                )
                g_accuracy = tf.reduce_mean(tf.cast(score_fake > 0.5, tf.float32), name="accuracy")
            add_moving_summary(self.g_loss, self.d_loss, d_accuracy, g_accuracy)

    def collect_variables(self, g_scope="gen", d_scope="discrim"):
        self.g_vars = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, g_scope)
        self.d_vars = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, d_scope)
        assert self.g_vars and self.d_vars

    @memoized_method
    def get_optimizer(self):
        return self.optimizer()

    def optimizer(self):  # DCGAN.py's, with the learning rate a constant
        return tf1.train.AdamOptimizer(2e-4, beta1=0.5, epsilon=1e-3)


class GANTrainer(TowerTrainer):
    """GAN.py's GANTrainer (one tower): one forward pass; g_min, then d_min under a control
    dependency on it, both from the one optimizer object."""

    def __init__(self, input, model):
        super().__init__()
        self.register_callback(input.setup(model.get_input_signature()))
        self.tower_func = TowerFunc(model.build_graph, model.inputs())
        with TowerContext("", is_training=True):
            self.tower_func(*input.get_input_tensors())
        opt = model.get_optimizer()
        with tf.name_scope("optimize"):
            g_min = opt.minimize(model.g_loss, var_list=model.g_vars, name="g_op")
            with tf.control_dependencies([g_min]):
                d_min = opt.minimize(model.d_loss, var_list=model.d_vars, name="d_op")
        self.train_op = d_min


class SeparateGANTrainer(TowerTrainer):
    """GAN.py's SeparateGANTrainer: d_min and g_min in separate sess.run calls, by
    `global_step` (which every hooked sess.run increments)."""

    def __init__(self, input, model, d_period=1, g_period=1):
        super().__init__()
        self._d_period, self._g_period = int(d_period), int(g_period)
        assert min(d_period, g_period) == 1
        self.register_callback(input.setup(model.get_input_signature()))
        self.tower_func = TowerFunc(model.build_graph, model.inputs())
        with TowerContext("", is_training=True), argscope(BatchNorm, ema_update="internal"):
            self.tower_func(*input.get_input_tensors())
        opt = model.get_optimizer()
        with tf.name_scope("optimize"):
            self.d_min = opt.minimize(model.d_loss, var_list=model.d_vars, name="d_min")
            self.g_min = opt.minimize(model.g_loss, var_list=model.g_vars, name="g_min")

    def run_step(self):
        if self.global_step % self._d_period == 0:
            self.hooked_sess.run(self.d_min)
        if self.global_step % self._g_period == 0:
            self.hooked_sess.run(self.g_min)


class RecordGAN(Record):
    """Per sess.run: the op it ran (d, g, or both for GANTrainer's d_op), the two costs; every
    variable at each epoch's end."""

    def _setup_graph(self):
        graph = tf1.get_default_graph()
        self._fetches = [
            graph.get_tensor_by_name(f"GAN_loss/{n}/loss:0") for n in ("gen", "discrim")
        ]
        self.ops = []

    def _before_run(self, ctx):
        names = [getattr(f, "name", str(f)) for f in tf.nest.flatten(ctx.original_args.fetches)]
        self.ops.append(",".join(names))
        return tf1.train.SessionRunArgs(fetches=self._fetches)


def gan_initial_weights() -> dict[str, np.ndarray]:
    """Every model variable of GANNet (read from a graph built once), drawn from a fixed
    seed: kernels and biases N(0, 0.3^2), BatchNorm's gamma near 1, beta and the EMA mean
    near 0, the EMA variance near 1."""
    tf1.reset_default_graph()
    model = GANNet()
    with TowerContext("", is_training=True):
        model.build_graph(*[tf1.placeholder(s.dtype, s.shape) for s in model.inputs()])
    rng = np.random.RandomState(31)
    out = {}
    for v in tf1.global_variables():
        name, shape = v.op.name, v.shape.as_list()
        if name.endswith("/gamma"):
            value = 1 + 0.1 * rng.randn(*shape)
        elif name.endswith("/variance/EMA"):
            value = 1 + 0.1 * rng.rand(*shape)
        elif name.endswith(("/beta", "/mean/EMA")):
            value = 0.1 * rng.randn(*shape)
        else:
            value = 0.3 * rng.randn(*shape)
        out[name] = value.astype("float32")
    return out


def gan_batches() -> list[list[np.ndarray]]:
    rng = np.random.RandomState(32)
    shape = (GAN_BATCH, GAN_SIZE, GAN_SIZE, 2)
    return [
        [
            rng.uniform(0, 255, size=shape).astype("float32"),
            rng.uniform(-1, 1, size=(GAN_BATCH, GAN_ZDIM)).astype("float32"),
        ]
        for _ in range(GAN_RUNS)
    ]


def two_optimizer_names() -> list[str]:
    """The global variables of GANNet with GAN.py's GANTrainer graph but two Adam objects,
    the generator's first (what a tensorpack checkpoint of such a run names): the second
    one's powers are TF's uniquified `optimize/beta1_power_1`."""
    tf1.reset_default_graph()
    model = GANNet()
    with TowerContext("", is_training=True):
        model.build_graph(*[tf1.placeholder(s.dtype, s.shape) for s in model.inputs()])
    with tf.name_scope("optimize"):
        g_min = model.optimizer().minimize(model.g_loss, var_list=model.g_vars, name="g_op")
        with tf.control_dependencies([g_min]):
            model.optimizer().minimize(model.d_loss, var_list=model.d_vars, name="d_op")
    return sorted(v.op.name for v in tf1.global_variables())


# fixture -> SeparateGANTrainer's (d_period, g_period), or None for GANTrainer
GAN_CASES = {"gan": None, "gan_separate": (1, 2)}


def gan(out_dir: str, name: str) -> None:
    """`name` of GAN_CASES: HALF iterations per epoch, two epochs; per sess.run the op and
    the costs (fetched in the run, so before its update), the variables after each epoch."""
    init = gan_initial_weights()
    tf1.reset_default_graph()
    data, record = gan_batches(), RecordGAN()
    source = QueueInput(DataFromList(data, shuffle=False))
    periods = GAN_CASES[name]
    if periods is None:
        trainer = GANTrainer(source, GANNet())
    else:
        trainer = SeparateGANTrainer(source, GANNet(), *periods)
    # one thread per pool: the reused discriminator's two BatchNorm EMA updates race in TF
    # (runs with the default pools differed by up to 1.2e-2 there); with one thread the
    # usual order (the two deltas add) came in 3 of 4 GANTrainer runs, still not always
    config = tf1.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)
    trainer.train_with_defaults(
        callbacks=[record],
        session_creator=NewSessionCreator(config=config),
        session_init=SmartInit(dict(init)),
        steps_per_epoch=HALF,
        max_epoch=STEPS // HALF,
    )
    runs = len(record.costs)
    assert runs <= GAN_RUNS, runs
    out: dict[str, np.ndarray] = {f"init/{k}": v for k, v in init.items()}
    for step, (image, z) in enumerate(data[:runs]):
        out[f"input/{step}"], out[f"z/{step}"] = image, z
    costs = np.array(record.costs, dtype="float32")
    out["g_loss"], out["d_loss"] = costs[:, 0], costs[:, 1]
    out["ops"] = np.array(record.ops)
    mid, final = record.epochs
    out["mid_global_step"] = np.array(mid.pop("global_step"))
    out["final_global_step"] = np.array(final.pop("global_step"))
    out.update({f"mid/{k}": np.asarray(v) for k, v in mid.items()})
    out.update({f"final/{k}": np.asarray(v) for k, v in final.items()})
    if periods is None:
        out["two_optimizers/names"] = np.array(two_optimizer_names())
    else:
        out["d_period"], out["g_period"] = np.array(periods[0]), np.array(periods[1])
    np.savez_compressed(os.path.join(out_dir, f"{name}.npz"), **out)
    print(name, "ops", record.ops, "\ncosts", costs.T, "\nvariables", sorted(final))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/golden/tf_training")
    parser.add_argument(
        "--resume-from", help="a checkpoint to resume (test mode: --out is a .npz file)"
    )
    parser.add_argument("--case", default="classifier")
    parser.add_argument(
        "--only", help="comma-separated fixtures to write (default: all), e.g. gan,gan_separate"
    )
    args = parser.parse_args()
    if args.resume_from:
        resume(args.case, args.resume_from, args.out)
        return
    writers = {
        "classifier": lambda: classifier(args.out),
        "frozen_rmsprop": lambda: classifier(args.out, "frozen_rmsprop", FrozenNet),
        "schedules": lambda: schedules(args.out),
        **{name: lambda name=name: gan(args.out, name) for name in GAN_CASES},
    }
    only = args.only.split(",") if args.only else list(writers)
    unknown = sorted(set(only) - set(writers))
    if unknown:
        parser.error(f"--only: unknown fixtures {unknown}; choose from {sorted(writers)}")
    os.makedirs(args.out, exist_ok=True)
    for name in only:
        writers[name]()


if __name__ == "__main__":
    main()
