"""Replays golden fixtures written by tools/golden/generate.py through tpflax's public API."""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
OUT_RTOL = 1e-5  # relative to the reference's largest magnitude (the output scale)
GRAD_RTOL = 1e-4
# Half-precision cases: both sides round to 11 (float16) or 8 (bfloat16) significant bits in
# different orders. Outputs agree to 2 units in the last place (ulp = 2^-11 and 2^-8 of the
# scale), gradients, which go through more roundings, to 8 and 4 ulps.
HALF_RTOL = {"float16": (2 * 2**-11, 8 * 2**-11), "bfloat16": (2 * 2**-8, 4 * 2**-8)}


def decode(value: Any) -> Any:
    """The tpflax counterpart of the generator's encoded arguments."""
    table = {"relu": jax.nn.relu, "tanh": jnp.tanh, "BNReLU": tp.BNReLU}
    if isinstance(value, str) and value in table:
        return table[value]
    if isinstance(value, dict) and set(value) == {"constant"}:
        return jax.nn.initializers.constant(value["constant"])
    if isinstance(value, dict) and set(value) == {"array"}:
        return np.asarray(value["array"], np.float32)
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    return value


class Fixture:
    def __init__(self, path: pathlib.Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.data = {k: data[k] for k in data.files}
        self.spec = json.loads(str(self.data["spec"]))
        self.id = self.spec["id"]

    def prefixed(self, prefix: str) -> dict[str, np.ndarray]:
        n = len(prefix)
        return {k[n:]: v for k, v in self.data.items() if k.startswith(prefix)}

    @property
    def n_outputs(self) -> int:
        return sum(1 for k in self.data if re.fullmatch(r"output_\d+", k))

    def outputs(self) -> list[np.ndarray]:
        return [self.data[f"output_{i}"] for i in range(self.n_outputs)]

    def cotangents(self) -> list[np.ndarray]:
        return [self.data[f"cotangent_{i}"] for i in range(self.n_outputs)]

    def output_names(self) -> list[str]:
        return [str(self.data[f"output_name_{i}"]) for i in range(self.n_outputs)]

    def output_dtypes(self) -> list[str]:
        return [str(self.data.get(f"output_dtype_{i}", "float32")) for i in range(self.n_outputs)]

    @property
    def dtype(self) -> str:
        return self.spec.get("dtype", "float32")

    @property
    def trainable(self) -> set[str]:
        return {str(n) for n in self.data["trainable"] if str(n)}


def fixtures(pattern: str) -> list[Fixture]:
    return [Fixture(p) for p in sorted(GOLDEN_DIR.glob(pattern))]


def layer_fn(spec: dict[str, Any]) -> Callable[[jax.Array], list[jax.Array]]:
    """The case's layer call, under its argscopes and variable scope, as a model function."""
    layer = getattr(tp, spec["layer"])
    args = [decode(a) for a in spec["args"]]
    kwargs = {k: decode(v) for k, v in spec["kwargs"].items()}

    def fn(x: jax.Array) -> list[jax.Array]:
        with contextlib.ExitStack() as stack:
            if spec["scope"]:
                stack.enter_context(tp.variable_scope(spec["scope"]))
            for names, kw in spec["argscope"]:
                layers = [getattr(tp, n) for n in names.split(",")]
                stack.enter_context(tp.argscope(layers, **{k: decode(v) for k, v in kw.items()}))
            if spec["name"] is None:
                return [layer(x, *args, **kwargs)]
            return [layer(spec["name"], x, *args, **kwargs)]

    return fn


def assert_close(name: str, got: Any, want: np.ndarray, rtol: float, floor: float = 1e-30) -> None:
    """``max|got - want| <= rtol * scale``, the scale being the reference's largest magnitude
    (at least ``floor``)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != reference {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, floor)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{name}: max abs error {err:.3g} > {rtol} x scale {scale:.3g}"


def check_fixture(
    fx: Fixture,
    fn: Callable[[jax.Array], list[jax.Array]],
    rtols: tuple[float, float] | None = None,
) -> None:
    """Names, outputs, updated state and gradients of ``fn`` against the fixture, within
    ``rtols`` (outputs and state, gradients; by default float32's or the half type's)."""
    spec = fx.spec
    training = spec["training"]
    out_rtol, grad_rtol = rtols or HALF_RTOL.get(fx.dtype, (OUT_RTOL, GRAD_RTOL))
    x = jnp.asarray(fx.data["input"]).astype(fx.dtype)
    model = tp.transform(fn)
    if spec.get("keep_init"):  # the initial values themselves are compared below
        params0, state0 = model.init(jax.random.key(0), x, is_training=training)
    else:  # names, shapes and dtypes only: every value is restored from the fixture
        params0, state0 = jax.eval_shape(
            lambda key, x: model.init(key, x, is_training=training), jax.random.key(0), x
        )
    reference = fx.prefixed("var/")

    ours = tp.checkpoint.flatten(params0, state0)
    assert sorted(ours) == sorted(reference), "variable names differ from tensorpack's"
    # Fixtures store float32; each variable's dtype in tensorpack is recorded beside it.
    for name, dtype in fx.prefixed("dtype/").items():
        assert ours[name].dtype == jnp.dtype(str(dtype)), f"{name}: dtype {ours[name].dtype}"
        reference[name] = reference[name].astype(jnp.dtype(str(dtype)))
    assert sorted(tp.checkpoint.flatten(params0)) == sorted(fx.trainable), "trainable split"
    if spec.get("keep_init"):
        for name, value in reference.items():
            assert_close(f"init {name}", ours[name], value, OUT_RTOL)

    params, state, report = tp.checkpoint.restore(reference, params0, state0, strict=True)
    assert sorted(report.loaded) == sorted(reference)

    # One compiled pass gives outputs, new state, captured layer outputs and gradients.
    cots = [jnp.asarray(c) for c in fx.cotangents()]
    names = [n for n in fx.output_names() if n.endswith("/output")]
    by_name = fx.prefixed("capture/")  # tensors the reference fetched by their TF name
    names += [n for n in by_name if n not in names]
    summaries = fx.prefixed("summary/")  # tf.summary values, by kind/tag (spec "summaries")
    if summaries:
        names.append("summary:*")

    def loss(x: jax.Array, params: dict) -> tuple[jax.Array, tuple]:
        outs, new_state, captured = model.apply(
            params, state, x, is_training=training, capture=names
        )
        value = sum(jnp.sum(o.astype(jnp.float32) * c) for o, c in zip(outs, cots, strict=True))
        return value, (outs, new_state, captured)

    (gx, gp), (outputs, new_state, captured) = jax.jit(
        jax.grad(loss, argnums=(0, 1), has_aux=True)
    )(x, params)
    for i, (got, want) in enumerate(zip(outputs, fx.outputs(), strict=True)):
        assert got.dtype == jnp.dtype(fx.output_dtypes()[i]), f"output_{i} dtype {got.dtype}"
        assert_close(f"output_{i}", got, want, out_rtol)
    new_flat = tp.checkpoint.flatten(new_state)
    for name, want in fx.prefixed("state/").items():
        assert_close(f"state {name}", new_flat[name], want, out_rtol)

    # A gradient that is zero in exact arithmetic is float noise on both sides: its scale is
    # floored at 1% of the largest gradient. A bias feeding a training-mode BatchNorm
    # (activation=BNReLU) is such a gradient; where that BatchNorm sees a near-constant
    # channel (pix2pix's batch-1 decoder), 1/sqrt(var + eps) amplifies the noise, so it is
    # checked to be noise-sized on our side, |grad| <= 1e-5 x the largest gradient.
    ref_grads = {"input": fx.data["grad/input"], **fx.prefixed("grad/var/")}
    largest = max(float(np.max(np.abs(g))) for g in ref_grads.values())
    gflat = {"input": gx, **tp.checkpoint.flatten(gp)}
    for name, want in ref_grads.items():
        layer = name.rsplit("/", 1)[0]
        if training and name.endswith("/b") and f"{layer}/bn/mean/EMA" in reference:
            noise = float(np.max(np.abs(np.asarray(gflat[name]))))
            assert noise <= 1e-5 * largest, f"grad {name}: {noise:.3g} is no float noise"
            continue
        assert_close(f"grad {name}", gflat[name], want, grad_rtol, 0.01 * largest)

    for i, name in enumerate(fx.output_names()):
        if name in captured:
            assert_close(f"capture {name}", captured[name], fx.outputs()[i], out_rtol)
    for name, want in by_name.items():
        assert_close(f"capture {name}", captured[name], want, out_rtol)
    if summaries:
        check_summaries(summaries, captured, out_rtol)


def check_summaries(reference: dict[str, np.ndarray], captured: dict, rtol: float) -> None:
    """The model's ``summary:<kind>/<tag>`` values against TensorFlow's parsed summaries:
    the same tags; scalars within ``rtol``; histograms by TensorFlow's statistics (min,
    max, count, sum, sum of squares)."""
    ours = {k.removeprefix("summary:"): v for k, v in captured.items() if k.startswith("summary:")}
    assert sorted(ours) == sorted(reference), "summary tags differ from TensorFlow's"
    for tag, want in reference.items():
        got = np.asarray(ours[tag], np.float64)
        if tag.startswith("histogram/"):
            stats = [got.min(), got.max(), got.size, got.sum(), np.square(got).sum()]
            got = np.asarray(stats)
        assert_close(f"summary {tag}", got, want, rtol)
