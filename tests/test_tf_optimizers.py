"""tp.train.tf_optimizers against real TensorFlow: each fixture (tools/golden/tf_optimizers.py)
holds 10 steps of `tf.compat.v1.train.<Optimizer>.apply_gradients` on three float32 variables
with seeded gradients (in two, through tensorpack's gradient processors, wrapped by its
`apply_grad_processors`; in two, inside its `AccumGradOptimizer`), and every variable and
slot after every step. Each is also resumed
from TF's variables and slots after step 5.

Tolerance: float32. TF's kernels are replayed in TF's order, so about a third of the arrays
agree to the bit; the rest differ by an ulp or two (XLA may contract a multiply-add into an
FMA inside the jitted step where Eigen does not, and Eigen's `rsqrt` is a hardware estimate
plus a Newton step), carried through the accumulators. Every value of every variable and
slot, after every one of the 10 steps, is within 1e-6 of (its own magnitude + the largest
magnitude in its array); measured worst 2.0e-7 (momentum_gradprocs, step 2), so the bound
holds per step and after 10 steps with a 5x margin.
"""

from __future__ import annotations

import functools
import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import GOLDEN_DIR

import tpflax as tp
from tpflax.train import tf_optimizers as tfo

FIXTURES = sorted((GOLDEN_DIR / "tf_optimizers").glob("*.npz"))
RTOL = 1e-6


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _optimizer(fx):
    kwargs = json.loads(str(fx["kwargs"]))
    schedule = json.loads(str(fx["schedule"]))
    if schedule is not None:
        kwargs["learning_rate"] = tfo.exponential_decay(**schedule)
    tx = getattr(tfo, str(fx["optimizer"]))(**kwargs)
    gradprocs = json.loads(str(fx["gradprocs"]))
    if gradprocs is not None:
        tx = tfo.apply_grad_processors(tx, [_gradproc(*spec) for spec in gradprocs])
    niter = json.loads(str(fx.get("accum_grad", "null")))
    if niter is not None:
        tx = tfo.AccumGradOptimizer(tx, niter)
    return tx


def _gradproc(kind, *args):
    """The fixture's tensorpack gradient processor (tools/golden/tf_optimizers.py), here."""
    if kind == "GlobalNormClip":
        return tfo.GlobalNormClip(args[0])
    if kind == "ScaleGradient":
        return tfo.ScaleGradient([tuple(p) for p in args[0]], verbose=False)
    if args[0] == "clip_by_value":
        lo, hi = args[1]
        return tfo.MapGradient(lambda g: jnp.clip(g, lo, hi), args[2])
    assert args[0] == "add_variable"
    (k,) = args[1]
    return tfo.MapGradient(lambda g, v: g + k * v, args[2])


@functools.cache
def _compiled(optimizer, kwargs, schedule, gradprocs, accum_grad):
    """The optimizer and its jitted step, one per fixture's arguments (the full replay and
    the resumed one share the compilation)."""
    tx = _optimizer(
        {
            "optimizer": optimizer,
            "kwargs": kwargs,
            "schedule": schedule,
            "gradprocs": gradprocs,
            "accum_grad": accum_grad,
        }
    )

    @jax.jit
    def step(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return tx, step


def _replay(fx, start=0):
    """The states after each step from ``start`` on: {tf name: value} with the variables and
    TF-named slots. From ``start > 0``, the variables and slots TF held after step
    ``start - 1`` are loaded first (``load_tf_variables``): a resumed TF run."""
    names = [str(n) for n in fx["var_names"]]
    keys = ("optimizer", "kwargs", "schedule", "gradprocs")
    tx, step = _compiled(*(str(fx[k]) for k in keys), str(fx.get("accum_grad", "null")))
    if start == 0:
        params = tp.checkpoint.unflatten({n: jnp.asarray(fx[f"init/{n}"]) for n in names})[0]
        opt_state = tx.init(params)
    else:
        saved = _expected(fx, start - 1)
        params = tp.checkpoint.unflatten({n: jnp.asarray(saved[n]) for n in names})[0]
        opt_state = tfo.load_tf_variables(tx.init(params), saved, step=start)

    out = []
    for s in range(start, 10):
        grads = tp.checkpoint.unflatten({n: jnp.asarray(fx[f"grad/{s}/{n}"]) for n in names})[0]
        params, opt_state = step(params, opt_state, grads)
        values = {**tp.checkpoint.flatten(params), **tfo.tf_variables(opt_state)}
        out.append({k: np.asarray(v) for k, v in values.items()})
    return out


def _expected(fx, step):
    prefix = f"after/{step}/"
    return {k[len(prefix) :]: v for k, v in fx.items() if k.startswith(prefix)}


def _rel_error(got, want):
    scale = np.max(np.abs(want)) if want.size else 0.0
    if scale == 0:  # an all-zero array (AccumGrad's slots after an update): absolute error
        return float(np.max(np.abs(got - want))) if want.size else 0.0
    return float(np.max(np.abs(got - want) / (np.abs(want) + scale)))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_replays_tensorflow(path) -> None:
    fx = _load(path)
    for s, got in enumerate(_replay(fx)):
        want = _expected(fx, s)
        assert sorted(got) == sorted(want), f"step {s}: names differ"
        if json.loads(str(fx["schedule"])) is not None:  # the rate TF used at this step
            schedule = tfo.exponential_decay(**json.loads(str(fx["schedule"])))
            np.testing.assert_allclose(schedule(jnp.int32(s)), fx[f"lr/{s}"], rtol=RTOL)
        for name, value in want.items():
            assert got[name].dtype == value.dtype, name
            err = _rel_error(got[name], value)
            assert err <= RTOL, f"{path.stem} step {s} {name}: relative error {err:.2e}"


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_resumes_tensorflow(path) -> None:
    """TF's variables and slots after 5 steps (TF's names: `dense/W/RMSProp_2`,
    `beta1_power`), loaded with the step count: the last 5 steps follow TF's."""
    fx = _load(path)
    got = _replay(fx, start=5)[-1]
    want = _expected(fx, 9)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        err = _rel_error(got[name], value)
        assert err <= RTOL, f"{path.stem} resumed, {name}: relative error {err:.2e}"


def test_signatures_are_tensorflows() -> None:
    """Each constructor takes TF's parameters, in TF's order, with TF's defaults (as
    `inspect.signature` read them from TF 2.21: tests/golden/tf_optimizers/signatures.json),
    so positional TF calls port unchanged."""
    with open(GOLDEN_DIR / "tf_optimizers" / "signatures.json") as f:
        expected = json.load(f)
    for name, parameters in expected.items():
        ours = inspect.signature(getattr(tfo, name)).parameters.values()
        got = [[p.name, None if p.default is inspect.Parameter.empty else p.default] for p in ours]
        assert got == parameters, name


def test_tf_adam_is_not_optax_adam() -> None:
    """Why the module exists: DCGAN's Adam (2e-4, beta1=0.5, epsilon=1e-3) with optax's
    epsilon placement ends far from TF's after 10 steps."""
    fx = _load(GOLDEN_DIR / "tf_optimizers" / "adam_dcgan.npz")
    params = {"W": jnp.asarray(fx["init/dense/W"])}
    tx = optax.adam(2e-4, b1=0.5, eps=1e-3)
    opt_state = tx.init(params)
    for s in range(10):
        updates, opt_state = tx.update({"W": jnp.asarray(fx[f"grad/{s}/dense/W"])}, opt_state)
        params = optax.apply_updates(params, updates)
    assert _rel_error(np.asarray(params["W"]), fx["after/9/dense/W"]) > 1e-5


def test_state_in_a_trainer_with_frozen_variables() -> None:
    """Inside tp.train.Trainer (jit, multi_transform for frozen variables) tf_variables finds
    the Adam state and names only the trained variables' slots."""

    def net(x):
        with tp.freeze_variables(stop_gradient=True):
            x = tp.FullyConnected("fc0", x, 3)
        return jnp.mean(tp.FullyConnected("fc1", x, 2) ** 2)

    model = tp.transform(net)
    x = jnp.ones((2, 4))
    params, state = model.init(jax.random.key(0), x)
    trainer = tp.train.Trainer(model, tfo.AdamOptimizer(0.1))
    ts = trainer.init(params, state, x, rng=jax.random.key(1))
    ts, _ = trainer.step(ts, x)
    names = tfo.tf_variables(ts.opt_state)
    assert sorted(names) == [
        "beta1_power",
        "beta2_power",
        "fc1/W/Adam",
        "fc1/W/Adam_1",
        "fc1/b/Adam",
        "fc1/b/Adam_1",
    ]
    np.testing.assert_array_equal(names["beta1_power"], np.float32(0.9) * np.float32(0.9))


def _adam_state():
    return tfo.AdamOptimizer().init({"fc": {"W": jnp.ones(2)}})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: tfo.AdamOptimizer(-1.0), r"AdamOptimizer: learning_rate must be >= 0; got -1.0"),
        (lambda: tfo.MomentumOptimizer(0.1, -0.9), r"MomentumOptimizer: momentum must be >= 0"),
        (lambda: tfo.RMSPropOptimizer(0.1, epsilon=-1), r"RMSPropOptimizer: epsilon must be"),
        (
            lambda: tfo.AdagradOptimizer(0.1, initial_accumulator_value=0.0),
            r"AdagradOptimizer: initial_accumulator_value must be positive; got 0.0",
        ),
        (lambda: tfo.exponential_decay(0.1, 0, 0.5), r"decay_steps must be > 0; got 0"),
        (lambda: tfo.GlobalNormClip(0.0), r"GlobalNormClip: global_norm must be > 0; got 0.0"),
        (
            lambda: tfo.AdamOptimizer(use_own_namescope_for_non_slot_vars=True),
            r"AdamOptimizer: use_own_namescope_for_non_slot_vars=True is not supported",
        ),
        (
            lambda: tfo.ScaleGradient([(".*/b", 2.0), ("layer0/.*", 0.0)]),
            r"ScaleGradient: multiplier 0 for 'layer0/\.\*' makes tensorpack skip",
        ),
        (lambda: tfo.tf_variables(optax.sgd(0.1).init({})), r"expected one TF optimizer state"),
        (
            lambda: tfo.load_tf_variables(_adam_state(), {"beta1_power": 0.9}),
            r"load_tf_variables: 'fc/W/Adam' is not in variables",
        ),
        (
            lambda: tfo.load_tf_variables(
                _adam_state(), {"fc/W/Adam": np.zeros(3), "fc/W/Adam_1": np.zeros(2)}
            ),
            r"'fc/W/Adam' has shape \(3,\); the optimizer's slot has \(2,\)",
        ),
        (
            lambda: tfo.AccumGradOptimizer(tfo.AdamOptimizer(0.1), 0),
            r"AccumGradOptimizer: niter must be an int >= 1; got 0",
        ),
    ],
)
def test_errors(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: tfo.MapGradient(lambda g, v, w: g),
            r"MapGradient: func must take 1 argument \(grad\) or 2 \(grad, var\); it takes 3",
        ),
        (
            lambda: tfo.MapGradient(lambda g: None, "fc/W").update({"fc": {"W": jnp.ones(2)}}, ()),
            r"MapGradient: func returned None for 'fc/W' \(tensorpack then skips the variable\)",
        ),
        (
            lambda: tfo.MapGradient(lambda g, v: g).update({"fc": {"W": jnp.ones(2)}}, ()),
            r"MapGradient: func\(grad, var\) needs params passed to update",
        ),
    ],
)
def test_map_gradient_errors(make, match) -> None:
    with pytest.raises(TypeError, match=match):
        make()
