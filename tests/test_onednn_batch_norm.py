"""BatchNorm in training on oneDNN (tpflax/_src/onednn_batch_norm.py,
csrc/onednn_batch_norm.cc): the values, statistics, EMA and derivatives of XLA's path within
float32 rounding, in every differentiation mode, under vmap and shard_map; and where 'auto'
sends it. Tensorpack's BatchNorm goldens under 'onednn' are in test_golden_layers.py."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tpflax as tp
from tpflax._src import conv_impl, onednn
from tpflax._src import onednn_batch_norm as obn

needs_onednn = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN extension not built or not on CPU"
)
# float32 rounding of sums over a few hundred values, relative to the result's scale (both
# sides round differently; neither is exact)
RTOL = 1e-5


def _close(got, want, rtol=RTOL) -> None:
    scale = float(jnp.max(jnp.abs(want)))
    err = float(jnp.max(jnp.abs(got - want)))
    assert err <= rtol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def _xla(x, gamma, beta, epsilon, nchw):
    """XLA's path (BatchNorm's fused rounding), as tpflax computes it without oneDNN: the
    layer's own XLA path, bitwise (test_undifferentiated_forward_on_xla_...)."""
    return tuple(obn.xla_forward(x, gamma, beta, epsilon=epsilon, nchw=nchw))


def _operands(shape, channels, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(shape) * 2 + 1, jnp.float32)
    gamma = jnp.asarray(rng.uniform(0.5, 1.5, channels), jnp.float32)
    beta = jnp.asarray(rng.standard_normal(channels), jnp.float32)
    cot = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    return x, gamma, beta, cot


LAYOUTS = [((4, 5, 6, 3), False), ((4, 3, 5, 6), True)]


@needs_onednn
@pytest.mark.parametrize("shape,nchw", LAYOUTS, ids=["NHWC", "NCHW"])
def test_values_statistics_and_gradients_match_xla(shape, nchw) -> None:
    x, gamma, beta, cot = _operands(shape, 3)
    for got, want in zip(
        jax.jit(lambda *a: obn.batch_norm(*a, 1e-3, nchw=nchw))(x, gamma, beta),
        _xla(x, gamma, beta, 1e-3, nchw),
        strict=True,
    ):
        _close(got, want)

    def loss(fn):
        return lambda x, g, b: jnp.sum(jnp.sin(fn(x, g, b)[0]) * cot)

    got = jax.jit(jax.grad(loss(lambda *a: obn.batch_norm(*a, 1e-3, nchw=nchw)), (0, 1, 2)))
    want = jax.grad(loss(lambda *a: _xla(*a, 1e-3, nchw)), (0, 1, 2))
    for a, b in zip(got(x, gamma, beta), want(x, gamma, beta), strict=True):
        _close(a, b, 1e-4)


@needs_onednn
def test_backward_runs_on_onednn_and_every_mode_works() -> None:
    """Reverse mode calls oneDNN's backward; forward mode, second derivatives and the
    statistics' own gradients take XLA's closed forms and agree with XLA's path."""
    x, gamma, beta, cot = _operands((4, 5, 6, 3), 3, seed=1)

    def loss(fn):
        return lambda x: jnp.sum(jnp.sin(fn(x)[0]) * cot)

    ours = loss(lambda x: obn.batch_norm(x, gamma, beta, 1e-3, nchw=False))
    xla = loss(lambda x: _xla(x, gamma, beta, 1e-3, False))
    text = str(jax.make_jaxpr(jax.grad(ours))(x))
    assert "tpflax_onednn_bn_fwd" in text and "tpflax_onednn_bn_bwd" in text
    tangent = jnp.asarray(np.random.default_rng(2).standard_normal(x.shape), jnp.float32)
    _close(jax.jvp(ours, (x,), (tangent,))[1], jax.jvp(xla, (x,), (tangent,))[1], 1e-4)
    second = [jax.grad(lambda x, f=f: jnp.sum(jax.grad(f)(x) ** 2))(x) for f in (ours, xla)]
    _close(*second, 1e-4)

    def stats(fn):  # d(sum of weighted mean and variance) / dx
        w = jnp.arange(3.0)
        return jax.grad(lambda x: jnp.sum(fn(x)[1] * w) + jnp.sum(fn(x)[2] * w))(x)

    _close(
        stats(lambda x: obn.batch_norm(x, gamma, beta, 1e-3, nchw=False)),
        stats(lambda x: _xla(x, gamma, beta, 1e-3, False)),
    )


@needs_onednn
def test_vmap_keeps_each_examples_statistics() -> None:
    x, gamma, beta, _ = _operands((3, 4, 5, 6, 2), 2, seed=3)
    x = x * jnp.arange(1.0, 4.0)[:, None, None, None, None]
    got = jax.vmap(lambda x: obn.batch_norm(x, gamma, beta, 1e-5, nchw=False))(x)
    want = jax.vmap(lambda x: _xla(x, gamma, beta, 1e-5, False))(x)
    for a, b in zip(got, want, strict=True):
        _close(a, b)


@needs_onednn
def test_inside_shard_map_each_device_has_its_statistics() -> None:
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((1,), ("batch",))
    x, gamma, beta, cot = _operands((4, 5, 6, 3), 3, seed=4)
    x = jax.device_put(x, NamedSharding(mesh, P("batch")))

    def grads(x, gamma):
        def loss(x, gamma):
            return jnp.sum(obn.batch_norm(x, gamma, beta, 1e-3, nchw=False)[0] * cot)

        gx, gg = jax.grad(loss, (0, 1))(x, gamma)
        return gx, jax.lax.psum(gg, "batch")

    specs = {"in_specs": (P("batch"), P()), "out_specs": (P("batch"), P())}
    got = jax.jit(jax.shard_map(grads, mesh=mesh, **specs))(x, gamma)
    want = jax.grad(lambda x, g: jnp.sum(_xla(x, g, beta, 1e-3, False)[0] * cot), (0, 1))(x, gamma)
    for a, b in zip(got, want, strict=True):
        _close(a, b, 1e-4)


def _layer_step(model, state, cot, impl):
    """Output, new state and gradients of a BatchNorm model's training step under ``impl``."""

    def loss(params, x):
        y, new_state = model.apply(params, state, x, is_training=True)
        return jnp.sum(y * cot), (y, new_state)

    def step(params, x):
        with tp.conv_impl(impl):  # read while tracing
            return jax.grad(loss, (0, 1), has_aux=True)(params, x)

    return step


@needs_onednn
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_gamma_beta"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_the_layer_on_onednn_matches_its_xla_path(data_format, affine) -> None:
    """tp.BatchNorm in training: output, EMA update (the unbiased variance) and gradients."""
    shape = (4, 6, 5, 3) if data_format == "NHWC" else (4, 3, 6, 5)
    x, _, _, cot = _operands(shape, 3, seed=5)
    model = tp.transform(
        lambda x: tp.BatchNorm("bn", x, center=affine, scale=affine, data_format=data_format)
    )
    params, state = model.init(jax.random.key(0), x)
    ours = _layer_step(model, state, cot, "onednn")
    assert "tpflax_onednn_bn_bwd" in str(jax.make_jaxpr(ours)(params, x))
    got = jax.jit(ours)(params, x)
    want = jax.jit(_layer_step(model, state, cot, "xla"))(params, x)
    (gp, gx), (y, new_state) = got
    (wp, wx), (wy, want_state) = want
    _close(y, wy)
    _close(gx, wx, 1e-4)
    leaves = jax.tree.leaves((gp, new_state)), jax.tree.leaves((wp, want_state))
    assert len(leaves[0]) == len(leaves[1]) == (4 if affine else 2)  # d gamma, d beta; the two EMAs
    for a, b in zip(*leaves, strict=True):
        _close(a, b, 1e-4)


@pytest.mark.skipif(not onednn.available(), reason="oneDNN extension not built or not on CPU")
def test_one_thread_below_two_to_the_twenty_elements() -> None:
    """Inputs below obn.ONE_THREAD_BELOW run on one OpenMP thread, larger ones on all (where
    the statistics are bitwise TensorFlow's: the large goldens above); both ways the values
    are XLA's to float rounding."""
    rng = np.random.RandomState(5)
    for shape in ((8, 14, 14, 32), (4, 64, 64, 64)):
        x = jnp.asarray(rng.randn(*shape).astype(np.float32))
        gamma, beta = jnp.ones(shape[-1]), jnp.zeros(shape[-1])
        fn = jax.jit(lambda x, g, b: obn.batch_norm(x, g, b, 1e-3, nchw=False))
        text = fn.lower(x, gamma, beta).as_text()
        one = x.size < obn.ONE_THREAD_BELOW
        assert f"one_thread = {str(one).lower()}" in text, shape
        y, mean, var = fn(x, gamma, beta)
        _close(mean, jnp.mean(x, (0, 1, 2)))
        _close(var, jnp.var(x, (0, 1, 2)))
        _close(y, (x - mean[None, None, None]) * jax.lax.rsqrt(var[None, None, None] + 1e-3))


def test_where_auto_runs_it(monkeypatch) -> None:
    """'auto' from ONEDNN_BATCH_NORM_MIN_ELEMENTS on AVX-512; 'onednn' for every float32
    4-D input with two values per channel; never under 'xla', for other dtypes or ranks."""
    big = jax.ShapeDtypeStruct((8, 64, 64, 32), jnp.float32)  # 2^20 elements
    small = jax.ShapeDtypeStruct((8, 8, 16, 32), jnp.float32)  # 2^15: below the threshold
    fast = onednn.available() and onednn.has_avx512()
    with tp.conv_impl("auto"):
        assert conv_impl.use_onednn_batch_norm(big, 3) == fast
        assert not conv_impl.use_onednn_batch_norm(small, 3)
        monkeypatch.setattr(onednn, "has_avx512", lambda: False)
        assert not conv_impl.use_onednn_batch_norm(big, 3)
    with tp.conv_impl("onednn"):
        assert conv_impl.use_onednn_batch_norm(small, 3) == onednn.available()
        one_each = jax.ShapeDtypeStruct((1, 1, 1, 4), jnp.float32)
        assert not conv_impl.use_onednn_batch_norm(one_each, 3)
        bf16 = jax.ShapeDtypeStruct(big.shape, jnp.bfloat16)
        assert not conv_impl.use_onednn_batch_norm(bf16, 3)
    with tp.conv_impl("xla"):
        assert not conv_impl.use_onednn_batch_norm(big, 3)


@pytest.mark.skipif(
    not (onednn.available() and onednn.has_avx512()), reason="'auto' runs XLA's BatchNorm here"
)
@pytest.mark.parametrize("listed", [True, False], ids=["isa_listed", "isa_not_listed"])
def test_undifferentiated_forward_on_xla_where_measured_faster(listed, monkeypatch) -> None:
    """Where this machine's instruction set is in conv_impl.XLA_BATCH_NORM_FORWARD_ISAS, a
    BatchNorm in training that nothing differentiates is XLA's (values, statistics and EMA
    bitwise those of 'xla'), and differentiated it is oneDNN's (bitwise those of 'onednn');
    elsewhere both are oneDNN's."""
    isas = frozenset({onednn.isa()}) if listed else frozenset()
    monkeypatch.setattr(conv_impl, "XLA_BATCH_NORM_FORWARD_ISAS", isas)
    x, _, _, cot = _operands((8, 16, 16, 64), 64, seed=7)  # one OpenMP thread on oneDNN
    assert conv_impl.ONEDNN_BATCH_NORM_MIN_ELEMENTS <= x.size < obn.ONE_THREAD_BELOW
    model = tp.transform(lambda x: tp.BatchNorm("bn", x))
    params, state = model.init(jax.random.key(0), x)

    def forward(impl):
        def f(params, x):
            with tp.conv_impl(impl):
                return model.apply(params, state, x, is_training=True)

        return jax.jit(f)

    text = forward("auto").lower(params, x).as_text()
    assert ("tpflax_onednn_bn_fwd" in text) != listed
    got = jax.tree.leaves(forward("auto")(params, x))
    want = jax.tree.leaves(forward("xla" if listed else "onednn")(params, x))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    step = _layer_step(model, state, cot, "auto")
    jaxpr = str(jax.make_jaxpr(step)(params, x))
    assert "tpflax_onednn_bn_fwd" in jaxpr and "tpflax_onednn_bn_bwd" in jaxpr
    got = jax.tree.leaves(jax.jit(step)(params, x))
    want = jax.tree.leaves(jax.jit(_layer_step(model, state, cot, "onednn"))(params, x))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    with tp.conv_impl("auto"):
        assert conv_impl.undifferentiated_batch_norm_on_xla() == listed
    with tp.conv_impl("onednn"):
        assert not conv_impl.undifferentiated_batch_norm_on_xla()


LARGE = sorted((Path(__file__).parent / "golden" / "batch_norm_large").glob("*.npz"))


def test_large_fixtures_exist() -> None:
    assert len(LARGE) == 3


# make test-slow for the 6.4e6-element NHWC stem (the 5-minute budget); make test keeps
# [8, 56, 56, 256] NHWC and an NCHW case.
LARGE_PARAMS = [
    pytest.param(p, marks=pytest.mark.slow) if "112x112" in p.stem else p for p in LARGE
]


@needs_onednn
@pytest.mark.parametrize("path", LARGE_PARAMS, ids=lambda p: p.stem)
def test_large_inputs_match_tensorpack_on_tensorflow(path) -> None:
    """Tensorpack's BatchNorm in training on ResNet-sized inputs, where TensorFlow runs
    oneDNN's kernels: the batch mean (its EMA) to the bit, the variance's EMA and the
    gradients of gamma and beta to one rounding, the output and the input's gradient (a
    sample) to float32 rounding of their scale."""
    fx = np.load(path)
    spec = json.loads(str(fx["spec"]))
    rng = np.random.RandomState(spec["seed"])
    shape = spec["input_shape"]
    x = (rng.randn(*shape) * spec["input_scale"] + spec["input_shift"]).astype(np.float32)
    cot = jnp.asarray(rng.randn(*shape).astype(np.float32))
    model = tp.transform(lambda x: tp.BatchNorm("bn", x, data_format=spec["data_format"]))
    params, state = jax.eval_shape(model.init, jax.random.key(0), x)
    params = {
        "bn": {"gamma": jnp.asarray(fx["var/bn/gamma"]), "beta": jnp.asarray(fx["var/bn/beta"])}
    }
    state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)
    state["bn"]["variance"]["EMA"] = jnp.ones_like(state["bn"]["variance"]["EMA"])

    def step(params, x):
        def loss(params, x):
            y, new_state = model.apply(params, state, x, is_training=True)
            return jnp.sum(y * cot), (y, new_state)

        with tp.conv_impl("onednn"):
            return jax.grad(loss, (0, 1), has_aux=True)(params, x)

    (gp, gx), (y, new_state) = jax.jit(step)(params, jnp.asarray(x))
    for name, got in (("output", y), ("grad/input", gx)):
        got = np.asarray(got, np.float32)
        sample = got.reshape(-1)[:: spec["sample_stride"]]
        assert np.max(np.abs(sample - fx[f"{name}/sample"])) <= 1e-6 * fx[f"{name}/scale"], name
    np.testing.assert_array_equal(new_state["bn"]["mean"]["EMA"], fx["state/bn/mean/EMA"])
    np.testing.assert_allclose(
        new_state["bn"]["variance"]["EMA"], fx["state/bn/variance/EMA"], rtol=3e-7, atol=0
    )
    # sums over N*H*W products of either sign: rounding on the scale of the largest sum
    for got, key in (
        (gp["bn"]["gamma"], "grad/var/bn/gamma"),
        (gp["bn"]["beta"], "grad/var/bn/beta"),
    ):
        scale = float(np.max(np.abs(fx[key])))
        err = float(np.max(np.abs(np.asarray(got) - fx[key])))
        assert err <= 1e-5 * scale, f"{key}: {err:.3g} vs scale {scale:.3g}"
