"""Training equivalence with real tensorpack: the same classifier (Conv2D + BatchNorm +
MaxPooling + FullyConnected, `regularize_cost("fc.*/W", l2_regularizer(1e-2))`) trained 10
steps with TF's Adam (1e-2) by tensorpack's SimpleTrainer (tools/golden/tf_training.py) and by
`tp.train.Trainer` with `tp.train.tf_optimizers.AdamOptimizer`, from the same weights and
batches: per-step costs, and every variable, BatchNorm statistic and Adam slot at the end.

Tolerance: float32. The forward and backward passes differ from TF's in summation order
(XLA's convolution and reductions against Eigen's), ~1e-7 relative per value; Adam divides
by sqrt(v), so a gradient's relative error passes into the step about unchanged, and 10
steps compound it. Measured: costs within 2.3e-7 relative at every step; final variables,
BatchNorm statistics and Adam slots within 5.4e-7 of (own magnitude + the array's largest
magnitude) (an element near zero of a slot, e.g. `fc0/W/Adam`, is 1.8e-4 off relative to
itself). Bounds: costs 2e-6 per step, final values 1e-5 (the issue's target is 1e-4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import GOLDEN_DIR

import tpflax as tp
from tpflax.train import tf_optimizers as tfo

STEPS = 10


def net(image, label):
    l = tp.Conv2D("conv0", image, 4, 3, activation=jax.nn.relu)
    l = tp.BatchNorm("bn", l)
    l = tp.MaxPooling("pool", l, 2)
    l = tp.FullyConnected("fc0", l, 8, activation=jax.nn.relu)
    logits = tp.FullyConnected("linear", l, 3)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()


@pytest.fixture(scope="module")
def run():
    with np.load(GOLDEN_DIR / "tf_training" / "classifier.npz") as z:
        fx = {k: z[k] for k in z.files}
    init = {k[len("init/") :]: jnp.asarray(v) for k, v in fx.items() if k.startswith("init/")}
    params, state = tp.checkpoint.unflatten(init)
    trainer = tp.train.Trainer(
        tp.transform(net),
        tfo.AdamOptimizer(1e-2),
        regularize=[("fc.*/W", tp.l2_regularizer(1e-2))],
    )
    batch = (jnp.asarray(fx["image/0"]), jnp.asarray(fx["label/0"]))
    ts = trainer.init(params, state, *batch, rng=jax.random.key(0))
    history = []
    for s in range(STEPS):
        ts, metrics = trainer.step(ts, jnp.asarray(fx[f"image/{s}"]), jnp.asarray(fx[f"label/{s}"]))
        history.append({k: float(v) for k, v in metrics.items()})
    return fx, ts, history


def test_costs_follow_tensorpack(run) -> None:
    fx, _, history = run
    cross_entropy = np.array([h["cost"] for h in history])
    wd_cost = np.array([h["regularize_cost(fc.*/W)"] for h in history])
    np.testing.assert_allclose(cross_entropy, fx["cross_entropy"], rtol=2e-6)
    np.testing.assert_allclose(wd_cost, fx["wd_cost"], rtol=2e-6)
    np.testing.assert_allclose(cross_entropy + wd_cost, fx["total_cost"], rtol=2e-6)


def test_final_variables_and_slots_follow_tensorpack(run) -> None:
    fx, ts, _ = run
    got = {**tp.checkpoint.flatten(ts.params, ts.state), **tfo.tf_variables(ts.opt_state)}
    want = {k[len("final/") :]: v for k, v in fx.items() if k.startswith("final/")}
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        err = np.max(np.abs(np.asarray(got[name]) - value) / (np.abs(value) + np.abs(value).max()))
        assert err <= 1e-5, f"{name}: relative error {err:.2e}"
