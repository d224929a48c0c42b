"""Tensorpack's SummaryGradient (tpflax.train._gradproc): its summaries' names and values,
pinned by real tensorpack (tests/golden/gradproc, made by tools/golden/tf_gradproc.py: three
SimpleTrainer steps, the summaries read back from tensorpack's event file and stats.json)."""

from __future__ import annotations

import glob
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import GOLDEN_DIR
from test_train_logs import _events

import tpflax as tp
from tpflax.train._gradproc import (
    SummaryGradient,
    SummaryGradientState,
    apply_grad_processors,
    gradient_summaries,
)

FIXTURE = GOLDEN_DIR / "gradproc" / "summary_gradient.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def net(x, label):
    h = tp.FullyConnected("fc0", x, 4, activation=jax.nn.relu)
    logits = tp.FullyConnected("linear", h, 3)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()


def _params(g):
    out: dict = {}
    for key, value in g.items():
        if key.startswith("init/"):
            layer, var = key.split("/")[1:]
            out.setdefault(layer, {})[var] = jnp.asarray(value)
    return out


def _batches(g):
    steps = len([k for k in g if k.startswith("image/")])
    return [(jnp.asarray(g[f"image/{i}"]), jnp.asarray(g[f"label/{i}"])) for i in range(steps)]


# The histograms' sums cancel (the linear layer's gradient sums to 0 over the classes, as the
# softmax does): ~1e-7 in float32 either way, hence an absolute tolerance besides rtol 1e-5.
HISTO_ATOL = 1e-6


def _histo(values) -> list[float]:
    """The fields of TF's HistogramProto tensorpack's histogram summary holds."""
    v = np.asarray(values, np.float64).ravel()
    return [v.min(), v.max(), v.size, v.sum(), np.square(v).sum()]


def test_summary_gradient_summaries_are_tensorpacks(golden) -> None:
    model = tp.transform(net)
    params = _params(golden)
    tx = apply_grad_processors(
        optax.sgd(float(golden["lr"])), [SummaryGradient(str(golden["regex"]))]
    )
    opt_state = tx.init(params)
    assert sorted(opt_state[0].biased) == ["fc0/W", "fc0/b", "linear/W"]  # the regex's
    grad_fn = jax.jit(jax.grad(lambda p, x, y: model.apply(p, {}, x, y, is_training=True)[0]))

    @jax.jit
    def update(grads, opt_state, params):
        with gradient_summaries() as recorded:
            updates, opt_state = tx.update(grads, opt_state, params)
        return updates, opt_state, recorded

    for step, (x, y) in enumerate(_batches(golden), 1):
        grads = grad_fn(params, x, y)
        updates, opt_state, recorded = update(grads, opt_state, params)
        scalars = {k: v for k, v in recorded.items() if not k.startswith("summary:")}
        histos = {
            k.removeprefix("summary:histogram/"): v for k, v in recorded.items() if k not in scalars
        }
        assert sorted(scalars) == json.loads(str(golden["scalar_tags"]))
        assert sorted(histos) == json.loads(str(golden["histogram_tags"]))
        for tag, value in scalars.items():
            np.testing.assert_allclose(value, golden[f"scalar/{step}/{tag}"], rtol=1e-5)
        for tag, grad in histos.items():
            np.testing.assert_allclose(
                _histo(grad), golden[f"histo/{step}/{tag}"], rtol=1e-5, atol=HISTO_ATOL
            )
        params = optax.apply_updates(params, updates)
    for name, value in tp.checkpoint.flatten(params).items():
        np.testing.assert_allclose(value, golden[f"final/{name}"], rtol=1e-5, atol=1e-7)
    assert isinstance(opt_state[0], SummaryGradientState)
    assert float(opt_state[0].local_step["fc0/W"]) == 3.0


def test_summary_gradient_passes_gradients_unchanged_and_records_only_when_collected() -> None:
    grads = {"a": {"W": jnp.arange(4.0)}, "b": {"W": -jnp.ones(2)}}
    tx = SummaryGradient("a/.*")
    updates, state = tx.update(grads, tx.init(grads))  # no gradient_summaries(): not recorded
    jax.tree.map(np.testing.assert_array_equal, updates, grads)
    with gradient_summaries() as recorded:
        tx.update(grads, state)
    assert sorted(recorded) == [
        "SummaryGradient/a/W/rms",
        "summary:histogram/SummaryGradient/a/W-grad",
    ]


def test_fit_writes_summary_gradient_to_tensorboard_and_stats_json(golden, tmp_path) -> None:
    model = tp.transform(net)
    batches = _batches(golden)
    tx = apply_grad_processors(
        optax.sgd(float(golden["lr"])), [SummaryGradient(str(golden["regex"]))]
    )
    trainer = tp.train.Trainer(model, tx)
    ts = trainer.init(_params(golden), {}, *batches[0], rng=jax.random.key(0))
    tp.train.fit(
        trainer,
        ts,
        lambda i: batches[i],
        len(batches),
        logdir=str(tmp_path),
        log_every=1,
        progress=False,
    )
    want = json.loads(str(golden["stats_json"]))
    got = json.loads((tmp_path / "stats.json").read_text())
    for theirs, ours in zip(want, got, strict=True):
        assert ours["global_step"] == theirs["global_step"]
        for tag in json.loads(str(golden["scalar_tags"])):
            assert ours[tag] == pytest.approx(theirs[tag], rel=1e-5)
    (path,) = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    for event in _events(path)[1:]:
        values = {v.tag: v for v in event.summary.value}
        for tag in json.loads(str(golden["histogram_tags"])):
            h = values[tag].histo
            np.testing.assert_allclose(
                [h.min, h.max, h.num, h.sum, h.sum_squares],
                golden[f"histo/{event.step}/{tag}"],
                rtol=1e-5,
                atol=HISTO_ATOL,
            )
        for tag in json.loads(str(golden["scalar_tags"])):
            want_value = golden[f"scalar/{event.step}/{tag}"]
            assert values[tag].simple_value == pytest.approx(want_value, rel=1e-5)
