"""Replays golden fixtures written by tools/golden/generate.py through tpflax's public API."""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import tpflax as tp

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
OUT_RTOL = 1e-5  # relative to the reference's largest magnitude (the output scale)
GRAD_RTOL = 1e-4


def decode(value: Any) -> Any:
    """The tpflax counterpart of the generator's encoded arguments."""
    table = {"relu": jax.nn.relu, "tanh": jnp.tanh, "BNReLU": tp.BNReLU}
    if isinstance(value, str) and value in table:
        return table[value]
    if isinstance(value, dict) and set(value) == {"constant"}:
        return jax.nn.initializers.constant(value["constant"])
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
        return sum(1 for k in self.data if k.startswith("output_") and "name" not in k)

    def outputs(self) -> list[np.ndarray]:
        return [self.data[f"output_{i}"] for i in range(self.n_outputs)]

    def cotangents(self) -> list[np.ndarray]:
        return [self.data[f"cotangent_{i}"] for i in range(self.n_outputs)]

    def output_names(self) -> list[str]:
        return [str(self.data[f"output_name_{i}"]) for i in range(self.n_outputs)]

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


def check_fixture(fx: Fixture, fn: Callable[[jax.Array], list[jax.Array]]) -> None:
    """Names, outputs, updated state and gradients of ``fn`` against the fixture."""
    spec = fx.spec
    training = spec["training"]
    x = jnp.asarray(fx.data["input"])
    model = tp.transform(fn)
    params0, state0 = model.init(jax.random.key(0), x, is_training=training)
    reference = fx.prefixed("var/")

    ours = tp.checkpoint.flatten(params0, state0)
    assert sorted(ours) == sorted(reference), "variable names differ from tensorpack's"
    assert sorted(tp.checkpoint.flatten(params0)) == sorted(fx.trainable), "trainable split"
    if spec.get("keep_init"):
        for name, value in reference.items():
            assert_close(f"init {name}", ours[name], value, OUT_RTOL)

    params, state, report = tp.checkpoint.restore(reference, params0, state0, strict=True)
    assert sorted(report.loaded) == sorted(reference)

    outputs, new_state = model.apply(params, state, x, is_training=training)
    for i, (got, want) in enumerate(zip(outputs, fx.outputs(), strict=True)):
        assert_close(f"output_{i}", got, want, OUT_RTOL)
    new_flat = tp.checkpoint.flatten(new_state)
    for name, want in fx.prefixed("state/").items():
        assert_close(f"state {name}", new_flat[name], want, OUT_RTOL)

    cots = [jnp.asarray(c) for c in fx.cotangents()]

    def loss(x: jax.Array, params: dict) -> jax.Array:
        outs, _ = model.apply(params, state, x, is_training=training)
        return sum(jnp.sum(o * c) for o, c in zip(outs, cots, strict=True))

    gx, gp = jax.grad(loss, argnums=(0, 1))(x, params)
    # A gradient that is zero in exact arithmetic (a bias feeding a training-mode BatchNorm)
    # is float noise on both sides; its scale is floored at 1% of the largest gradient.
    ref_grads = {"input": fx.data["grad/input"], **fx.prefixed("grad/var/")}
    floor = 0.01 * max(float(np.max(np.abs(g))) for g in ref_grads.values())
    gflat = {"input": gx, **tp.checkpoint.flatten(gp)}
    for name, want in ref_grads.items():
        assert_close(f"grad {name}", gflat[name], want, GRAD_RTOL, floor)

    names = [n for n in fx.output_names() if n.endswith("/output")]
    if names:
        _, _, captured = model.apply(params, state, x, is_training=training, capture=names)
        for i, name in enumerate(fx.output_names()):
            if name in captured:
                assert_close(f"capture {name}", captured[name], fx.outputs()[i], OUT_RTOL)
