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
