"""Training equivalence with real tensorpack: the same classifier (Conv2D + BatchNorm +
MaxPooling + FullyConnected, `regularize_cost("fc.*/W", l2_regularizer(1e-2))`) trained 10
steps by tensorpack's SimpleTrainer (tools/golden/tf_training.py) and by `tp.train.Trainer`
with `tp.train.tf_optimizers`, from the same weights and batches: with TF's Adam (1e-2)
(`classifier`), and with conv0 under `freeze_variables(stop_gradient=True)` and TF's
centered RMSProp with momentum (`frozen_rmsprop`). Checked: per-step costs, and every
variable, BatchNorm statistic and optimizer slot at the end; tensorpack's state after 5 steps
(slots under TF's names) both saved and resumed; a TF checkpoint tpflax writes after 5 steps
resumes in tpflax and (`make test-tf`, .venv-golden) in tensorpack, both ending at
tensorpack's uninterrupted run.

Tolerance: float32. The forward and backward passes differ from TF's in summation order
(XLA's convolution and reductions against Eigen's), ~1e-7 relative per value; Adam divides
by sqrt(v), so a gradient's relative error passes into the step about unchanged, and 10
steps compound it. Measured (classifier): costs within 2.3e-7 relative at every step; final
variables, BatchNorm statistics and Adam slots within 5.4e-7 of (own magnitude + the array's
largest magnitude) (an element near zero of a slot, e.g. `fc0/W/Adam`, is 1.8e-4 off
relative to itself); frozen_rmsprop: costs 1.3e-7, final values and slots 1.6e-7 (conv0
unchanged, no slots for it, in both). Bounds: costs 2e-6 per step, final values 1e-5 (the
issue's target is 1e-4).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import GOLDEN_DIR

import tpflax as tp
from tpflax.train import tf_optimizers as tfo

STEPS = 10


def net(image, label, frozen=False):
    if frozen:
        with tp.freeze_variables(stop_gradient=True):
            l = tp.Conv2D("conv0", image, 4, 3, activation=jax.nn.relu)
    else:
        l = tp.Conv2D("conv0", image, 4, 3, activation=jax.nn.relu)
    l = tp.BatchNorm("bn", l)
    l = tp.MaxPooling("pool", l, 2)
    l = tp.FullyConnected("fc0", l, 8, activation=jax.nn.relu)
    logits = tp.FullyConnected("linear", l, 3)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()


def _prefixed(fx, prefix):
    return {k[len(prefix) :]: v for k, v in fx.items() if k.startswith(prefix)}


def _error(got, want):
    """max |got - want| / (|want| + max |want|): relative, near-zero elements measured
    against the array's scale."""
    got = np.asarray(got)
    return float(np.max(np.abs(got - want) / (np.abs(want) + np.abs(want).max())))


# fixture -> (the model, the optimizer tensorpack's optimizer() returned)
CASES = {
    "classifier": (net, lambda: tfo.AdamOptimizer(1e-2)),
    "frozen_rmsprop": (
        lambda image, label: net(image, label, frozen=True),
        lambda: tfo.RMSPropOptimizer(3e-3, momentum=0.9, epsilon=1e-6, centered=True),
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request):
    with np.load(GOLDEN_DIR / "tf_training" / f"{request.param}.npz") as z:
        fx = {k: z[k] for k in z.files}
    model, optimizer = CASES[request.param]
    trainer = tp.train.Trainer(
        tp.transform(model), optimizer(), regularize=[("fc.*/W", tp.l2_regularizer(1e-2))]
    )
    return fx, trainer, model


@pytest.fixture(scope="module")
def fx(case):
    return case[0]


@pytest.fixture(scope="module")
def trainer(case):
    return case[1]


def _train(trainer, fx, ts, steps):
    history, saved = [], {}
    for s in steps:
        ts, metrics = trainer.step(ts, jnp.asarray(fx[f"image/{s}"]), jnp.asarray(fx[f"label/{s}"]))
        history.append({k: float(v) for k, v in metrics.items()})
        if s + 1 == int(fx["mid_global_step"]):  # what a checkpoint written here holds
            flat = {**tp.checkpoint.flatten(ts.params, ts.state), **tfo.tf_variables(ts.opt_state)}
            saved = {k: np.asarray(v) for k, v in flat.items()}  # the next step donates them
    return ts, history, saved


def _start(trainer, fx, flat):
    """A TrainState from the model's variables in ``flat`` (the names ``init/`` holds: not
    ``tp.checkpoint.is_training_name``, which follows tensorpack's list and so misses
    centered RMSProp's ``<var>/RMSProp_2``)."""
    model_names = _prefixed(fx, "init/")
    params, state = tp.checkpoint.unflatten({k: jnp.asarray(flat[k]) for k in model_names})
    batch = (jnp.asarray(fx["image/0"]), jnp.asarray(fx["label/0"]))
    return trainer.init(params, state, *batch, rng=jax.random.key(0))


@pytest.fixture(scope="module")
def run(fx, trainer):
    return _train(trainer, fx, _start(trainer, fx, _prefixed(fx, "init/")), range(STEPS))


def _check_costs(history, fx, steps):
    cross_entropy = np.array([h["cost"] for h in history])
    wd_cost = np.array([h["regularize_cost(fc.*/W)"] for h in history])
    np.testing.assert_allclose(cross_entropy, fx["cross_entropy"][steps], rtol=2e-6)
    np.testing.assert_allclose(wd_cost, fx["wd_cost"][steps], rtol=2e-6)
    np.testing.assert_allclose(cross_entropy + wd_cost, fx["total_cost"][steps], rtol=2e-6)


def _check_variables(got, want):
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        err = _error(got[name], value)
        assert err <= 1e-5, f"{name}: relative error {err:.2e}"


def test_costs_follow_tensorpack(run, fx) -> None:
    _check_costs(run[1], fx, slice(0, STEPS))


def test_final_variables_and_slots_follow_tensorpack(run, fx) -> None:
    ts = run[0]
    got = {**tp.checkpoint.flatten(ts.params, ts.state), **tfo.tf_variables(ts.opt_state)}
    _check_variables(got, _prefixed(fx, "final/"))


def test_saves_what_tensorpack_checkpoints(run, fx) -> None:
    """After 5 steps, the model's variables and Adam's slots under TF's names are what
    tensorpack's run holds (and a checkpoint written there saves) after 5 steps."""
    _check_variables(run[2], _prefixed(fx, "mid/"))


def test_resumes_from_tensorpack_with_its_slots(trainer, fx) -> None:
    """Tensorpack's variables after 5 steps (model, BN statistics, `<var>/Adam`,
    `<var>/Adam_1`, `beta1_power`, `beta2_power`, or RMSProp's three slots) loaded into a
    fresh TrainState: 5 more tpflax steps follow tensorpack's steps 6-10 and end where
    tensorpack ended."""
    mid = _prefixed(fx, "mid/")
    half = int(fx["mid_global_step"])
    ts = _start(trainer, fx, mid)
    ts = ts.replace(
        step=jnp.asarray(half, jnp.int32),
        opt_state=tfo.load_tf_variables(ts.opt_state, mid, step=half),
    )
    ts, history, _ = _train(trainer, fx, ts, range(half, STEPS))
    _check_costs(history, fx, slice(half, STEPS))
    got = {**tp.checkpoint.flatten(ts.params, ts.state), **tfo.tf_variables(ts.opt_state)}
    _check_variables(got, _prefixed(fx, "final/"))


def _save_tpflax_run(run, path):
    """tpflax's state after 5 steps as a TF checkpoint: the model's variables, the
    optimizer's slots under TF's names, and global_step (int64, as TF's)."""
    prefix = str(path / "model-5")
    tp.checkpoint.save_tf_checkpoint(prefix, {**run[2], "global_step": np.int64(5)})
    return prefix


def test_a_tpflax_checkpoint_with_slots_resumes_in_tpflax(run, trainer, fx, tmp_path) -> None:
    """Saved as a TF checkpoint after 5 steps, read back with tp.checkpoint.load and
    load_tf_variables: the resumed run ends at tensorpack's uninterrupted one."""
    flat = tp.checkpoint.load(_save_tpflax_run(run, tmp_path))
    ts = _start(trainer, fx, flat)
    step = int(flat["global_step"])
    ts = ts.replace(
        step=jnp.asarray(step, jnp.int32),
        opt_state=tfo.load_tf_variables(ts.opt_state, flat, step=step),
    )
    ts, history, _ = _train(trainer, fx, ts, range(step, STEPS))
    _check_costs(history, fx, slice(step, STEPS))
    got = {**tp.checkpoint.flatten(ts.params, ts.state), **tfo.tf_variables(ts.opt_state)}
    _check_variables(got, _prefixed(fx, "final/"))


GOLDEN_PYTHON = pathlib.Path(__file__).parents[1] / ".venv-golden" / "bin" / "python"
GENERATOR = pathlib.Path(__file__).parents[1] / "tools" / "golden" / "tf_training.py"


@pytest.mark.tensorflow
def test_a_tpflax_checkpoint_with_slots_resumes_in_tensorpack(run, case, fx, tmp_path) -> None:
    """Tensorpack (SmartInit, SimpleTrainer, TF's optimizer; .venv-golden) resumes from the
    checkpoint tpflax wrote after 5 steps: its steps 6-10 cost what its uninterrupted run's
    did and end at the same variables and slots."""
    if not GOLDEN_PYTHON.exists():
        pytest.skip(".venv-golden is absent (make golden creates it)")
    name = next(k for k, v in CASES.items() if v[0] is case[2])
    prefix = _save_tpflax_run(run, tmp_path)
    out = tmp_path / "resumed.npz"
    command = [str(GOLDEN_PYTHON), str(GENERATOR), "--resume-from", prefix, "--case", name]
    subprocess.run(
        [*command, "--out", str(out)],
        capture_output=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=True,
        cwd=tmp_path,
    )
    with np.load(out) as z:
        resumed = {k: z[k] for k in z.files}
    assert int(resumed["global_step"]) == STEPS
    for cost in ("cross_entropy", "wd_cost", "total_cost"):
        np.testing.assert_allclose(resumed[cost], fx[cost][5:], rtol=2e-6)
    _check_variables(_prefixed(resumed, "final/"), _prefixed(fx, "final/"))


def decay_every_two_epochs(epoch, value):  # the fixture's HyperParamSetterWithFunc func
    return value * 0.9 if epoch % 2 == 0 else value


def _schedule_cases():
    with np.load(GOLDEN_DIR / "tf_training" / "schedules.npz") as z:
        fx = {k: z[k] for k in z.files}
    names = sorted({k.split("/")[0] for k in fx if "/" in k})
    return fx, names


@pytest.mark.parametrize("case", _schedule_cases()[1])
def test_schedules_follow_tensorpack_callbacks(case) -> None:
    """The learning rate of every step (15 steps, 5 epochs of 3) as tensorpack's
    ScheduledHyperParamSetter / HyperParamSetterWithFunc set its variable; float32 values
    computed as tensorpack computes them, so equal to the bit (rtol 1e-7 for the
    with-function case, whose arithmetic NumPy versions may round differently)."""
    fx, _ = _schedule_cases()
    spe, epochs = int(fx["steps_per_epoch"]), int(fx["epochs"])
    initial = float(fx[f"{case}/initial"])
    if str(fx[f"{case}/kind"]) == "scheduled":
        kwargs = json.loads(str(fx[f"{case}/kwargs"]))
        if not kwargs.get("step_based"):
            kwargs["steps_per_epoch"] = spe
        schedule = tfo.scheduled_hyperparam(initial, **kwargs)
    else:
        schedule = tfo.hyperparam_with_func(initial, decay_every_two_epochs, spe, epochs)
    got = np.array([schedule(jnp.int32(s)) for s in range(spe * epochs)])
    np.testing.assert_allclose(got, fx[f"{case}/lr"], rtol=1e-7, atol=0)
    # jittable: the step is traced in a train step
    np.testing.assert_array_equal(jax.jit(schedule)(jnp.int32(spe * epochs - 1)), got[-1])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: tfo.scheduled_hyperparam(0.1, [(1, 0.01)]),
            r"scheduled_hyperparam: an epoch-based schedule needs steps_per_epoch > 0",
        ),
        (
            lambda: tfo.scheduled_hyperparam(0.1, [(1, 0.01)], interp="cubic", step_based=True),
            r"interp must be None or 'linear'; got 'cubic'",
        ),
        (
            lambda: tfo.hyperparam_with_func(0.1, decay_every_two_epochs, 0, 3),
            r"hyperparam_with_func: an epoch-based schedule needs steps_per_epoch > 0 .*; got 0",
        ),
    ],
)
def test_schedule_errors(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()
