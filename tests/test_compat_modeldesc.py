"""A tensorpack ModelDesc as written, trained by tp.train.Trainer.from_model_desc: the
classifier tensorpack's SimpleTrainer trained 10 steps with TF's Adam in
tools/golden/tf_training.py (class Net), here the same class with only its imports changed.
Tolerances as tests/test_tf_training.py measured them for the same model: costs 2e-6 per
step, final variables 1e-5 of (own + the array's largest magnitude)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import GOLDEN_DIR

import tpflax as tp
from tpflax.compat import tf
from tpflax.compat.tensorpack import (
    BatchNorm,
    Conv2D,
    FullyConnected,
    MaxPooling,
    ModelDesc,
    l2_regularizer,
    regularize_cost,
)

tf1 = tf.compat.v1
SHAPE = (8, 6, 6, 2)


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


@pytest.fixture(autouse=True)
def tensorflow_broadcasting():
    """TF-style model code broadcasts ranks implicitly; the suite's conftest raises on it."""
    with jax.numpy_rank_promotion("allow"):
        yield


def test_model_desc_trains_like_tensorpack() -> None:
    with np.load(GOLDEN_DIR / "tf_training" / "classifier.npz") as z:
        fx = {k: z[k] for k in z.files}
    trainer = tp.train.Trainer.from_model_desc(Net())
    init = {k[5:]: jnp.asarray(v) for k, v in fx.items() if k.startswith("init/")}
    params, state = tp.checkpoint.unflatten(init)
    batch = (jnp.asarray(fx["image/0"]), jnp.asarray(fx["label/0"]))
    ts = trainer.init(params, state, *batch, rng=jax.random.key(0))
    costs = []
    for step in range(10):
        batch = (jnp.asarray(fx[f"image/{step}"]), jnp.asarray(fx[f"label/{step}"]))
        ts, metrics = trainer.step(ts, *batch)
        costs.append(float(metrics["cost"]))
    np.testing.assert_allclose(costs, fx["total_cost"][:10], rtol=2e-6)
    final = tp.checkpoint.flatten(ts.params, ts.state)
    for name, value in final.items():
        want = fx[f"final/{name}"]
        err = np.max(np.abs(np.asarray(value) - want) / (np.abs(want) + np.abs(want).max()))
        assert err <= 1e-5, f"{name}: {err:.3g}"


def test_model_desc_inputs_and_training_flag() -> None:
    class Flagged(ModelDesc):
        def inputs(self):
            return [tf1.placeholder(tf.float32, (None, 2), "x")]

        def build_graph(self, x):
            step = tf.cast(tf.train.get_or_create_global_step(), tf.float32)
            return tf.reduce_sum(x) * (2.0 if self.training else 1.0) + step

        def optimizer(self):
            return tf.train.GradientDescentOptimizer(0.1)

    desc = Flagged()
    assert desc.get_input_signature()[0].shape == (None, 2)
    trainer = tp.train.Trainer.from_model_desc(desc)
    x = jnp.ones((3, 2))
    ts = trainer.init({}, {}, x, rng=jax.random.key(0))
    ts, m0 = trainer.step(ts, x)
    ts, m1 = trainer.step(ts, x)
    assert float(m0["cost"]) == 12.0 and float(m1["cost"]) == 13.0  # 2 * 6 + the step
    assert float(trainer.evaluate(ts, x)["cost"]) == 8.0  # 6 + step 2, inference
    with pytest.raises(RuntimeError, match="get_or_create_global_step\\(\\): no training step"):
        tp.transform(desc.build_graph).init(jax.random.key(0), x)
    with pytest.raises(TypeError, match="from_model_desc: object has no build_graph"):
        tp.train.Trainer.from_model_desc(object())


def test_exponential_decay_takes_tensorflows_arguments() -> None:
    """tf.train.exponential_decay(lr, global_step, decay_steps, decay_rate): the decay is
    tp.train.tf_optimizers.exponential_decay (pinned by TF's fixtures); here the arguments
    bind as TensorFlow's do."""
    from tpflax.train import tf_optimizers

    step = tf.train.get_or_create_global_step()  # outside a model: the optimizer's step
    schedule = tf.train.exponential_decay(0.1, step, 3, 0.5, staircase=True)
    reference = tf_optimizers.exponential_decay(0.1, 3, 0.5, staircase=True)
    assert [float(schedule(s)) for s in range(7)] == [float(reference(s)) for s in range(7)]
    assert float(tf.train.exponential_decay(0.1, 6, 3, 0.5, True)) == float(reference(6))


class ScheduledNet(ModelDesc):
    """cifar-convnet's optimizer(): a learning-rate variable that a tensorpack callback
    schedules, and a summary of it."""

    def build_graph(self, x):
        return tf.reduce_mean(tf.square(FullyConnected("fc", x, 1)), name="cost")

    def optimizer(self):
        lr = tf1.get_variable("learning_rate", initializer=0.1, trainable=False)
        tf1.summary.scalar("lr", lr)
        return tf1.train.GradientDescentOptimizer(lr)


class DecayNet(ScheduledNet):
    """svhn-digit-convnet's optimizer(): exponential_decay on tensorpack's global step."""

    def optimizer(self):
        from tpflax.compat.tensorpack import get_global_step_var

        lr = tf1.train.exponential_decay(
            learning_rate=0.1,
            global_step=get_global_step_var(),
            decay_steps=2,
            decay_rate=0.5,
            staircase=True,
            name="learning_rate",
        )
        tf1.summary.scalar("lr", lr)
        return tf1.train.GradientDescentOptimizer(lr)


def _updates(optimizer, steps=4):
    """The parameter after each of `steps` updates of a unit gradient, from 0."""
    params = {"w": jnp.zeros(())}
    state = optimizer.init(params)
    out = []
    for _ in range(steps):
        updates, state = optimizer.update({"w": jnp.ones(())}, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
        out.append(float(params["w"]))
    return out


def test_optimizer_hyperparameters_follow_tensorpack_callbacks() -> None:
    """tf.get_variable in optimizer() is the hyperparameter ScheduledHyperParamSetter sets
    by name: the updates equal tp.train's scheduled_hyperparam (pinned against tensorpack's
    callback in test_tf_training.py), and tf.summary.scalar('lr', lr) is kept for logging."""
    from tpflax.compat.tensorpack import ScheduledHyperParamSetter
    from tpflax.train import tf_optimizers as tfo

    points = [(0, 0.1), (2, 0.05), (3, 0.01)]
    setter = ScheduledHyperParamSetter("learning_rate", points, step_based=True)
    optimizer, summaries = ScheduledNet().build_optimizer(callbacks=[setter])
    schedule = tfo.scheduled_hyperparam(0.1, points, step_based=True)
    assert _updates(optimizer) == _updates(tfo.GradientDescentOptimizer(schedule))
    assert sorted(summaries) == ["summary:scalar/lr"]
    assert [float(summaries["summary:scalar/lr"](s)) for s in range(4)] == [
        float(schedule(s)) for s in range(4)
    ]
    constant, _ = ScheduledNet().build_optimizer()
    assert _updates(constant) == _updates(tfo.GradientDescentOptimizer(0.1))
    decayed, _ = DecayNet().build_optimizer()
    want = tfo.GradientDescentOptimizer(tfo.exponential_decay(0.1, 2, 0.5, True))
    assert _updates(decayed) == _updates(want)


def test_optimizer_hyperparameter_errors() -> None:
    from tpflax.compat.tensorpack import ScheduledHyperParamSetter

    setter = ScheduledHyperParamSetter("momentum", [(0, 0.9)], step_based=True)
    with pytest.raises(ValueError, match=r"no hyperparameter named \['momentum'\]"):
        ScheduledNet().build_optimizer(callbacks=[setter])
    with pytest.raises(TypeError, match=r"callbacks= takes ScheduledHyperParamSetter"):
        ScheduledNet().build_optimizer(callbacks=[object()])

    class Trainable(ScheduledNet):
        def optimizer(self):
            return tf1.train.GradientDescentOptimizer(tf1.get_variable("lr", initializer=0.1))

    with pytest.raises(ValueError, match=r"give it trainable=False"):
        Trainable().build_optimizer()


def test_optimizer_called_directly_makes_its_hyperparameters() -> None:
    """A trainer that calls model.optimizer() itself gets the constant hyperparameter."""
    from tpflax.train import tf_optimizers as tfo

    assert _updates(ScheduledNet().optimizer()) == _updates(tfo.GradientDescentOptimizer(0.1))


def test_trainer_from_model_desc_schedules_and_logs_the_learning_rate() -> None:
    """tensorpack's TrainConfig(callbacks=[ScheduledHyperParamSetter(...)]) becomes
    from_model_desc(callbacks=...): each step's metrics carry optimizer()'s 'lr' summary,
    the schedule's value at that step."""
    from tpflax.compat.tensorpack import ScheduledHyperParamSetter
    from tpflax.train import tf_optimizers as tfo

    points = [(1, 0.05), (2, 0.01)]
    setter = ScheduledHyperParamSetter("learning_rate", points)
    trainer = tp.train.Trainer.from_model_desc(
        ScheduledNet(), callbacks=[setter], steps_per_epoch=2
    )
    x = jnp.ones((4, 3))
    params, state = trainer.model.init(jax.random.key(0), x)
    ts = trainer.init(params, state, x, rng=jax.random.key(1))
    logged = []
    for _ in range(5):
        ts, metrics = trainer.step(ts, x)
        logged.append(float(metrics["lr"]))
    schedule = tfo.scheduled_hyperparam(0.1, points, steps_per_epoch=2)
    assert logged == [float(schedule(s)) for s in range(5)]
    with pytest.raises(TypeError, match=r"callbacks= needs a tpflax.compat.tensorpack.ModelDesc"):
        tp.train.Trainer.from_model_desc(_Plain(), callbacks=[setter])


class _Plain:
    def build_graph(self, x):
        return tf.reduce_mean(x)

    def optimizer(self):
        return tf1.train.GradientDescentOptimizer(0.1)


class MovingNet(ModelDesc):
    """svhn-digit-convnet's pattern: a default-named regularize_cost in add_moving_summary
    (named empty_regularize_cost outside training), and a summary only in training."""

    def build_graph(self, x):
        from tpflax.compat.tensorpack import add_moving_summary

        cost = tf.reduce_mean(tf.square(FullyConnected("fc0", x, 2)), name="cost")
        wd_cost = regularize_cost("fc.*/W", l2_regularizer(1e-5))
        if self.training:
            tf1.summary.scalar("seen", tf.reduce_sum(x))
        add_moving_summary(cost, wd_cost)
        return tf.add_n([cost, wd_cost], name="total_cost")

    def optimizer(self):
        return tf1.train.GradientDescentOptimizer(0.1)


def test_model_built_in_inference_trains_with_its_moving_summaries() -> None:
    """The documented init (inference mode) makes no moving averages, as tensorpack's
    inference tower; Trainer.init adds what training makes, and the step runs."""
    trainer = tp.train.Trainer.from_model_desc(MovingNet())
    x = jnp.ones((4, 3))
    params, state = trainer.model.init(jax.random.key(0), x)
    assert state == {}
    ts = trainer.init(params, state, x, rng=jax.random.key(1))
    assert sorted(tp.checkpoint.flatten(ts.state)) == [
        "EMA/cost/biased",
        "EMA/cost/local_step",
        "EMA/regularize_cost/biased",
        "EMA/regularize_cost/local_step",
    ]
    ts, metrics = trainer.step(ts, x)
    assert {"cost-summary", "regularize_cost-summary", "seen"} <= set(metrics)
    # step 1's debiased averages are the values themselves, whose sum the model returned
    averaged = float(metrics["cost-summary"]) + float(metrics["regularize_cost-summary"])
    assert averaged == pytest.approx(float(metrics["cost"]), rel=1e-6)
