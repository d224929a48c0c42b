"""Max pooling's derivative from the taps (tpflax/_src/max_pool.py) against JAX's own rule,
and where tpflax uses it. TensorFlow's tie rule is pinned by the maxpool_ties_* goldens
(tests/test_golden_layers.py), under both lowerings."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tpflax as tp
from tpflax._src import onednn, onednn_max_pool
from tpflax._src.conv_impl import TAP_MAX_POOL_MAX_TAPS
from tpflax._src.max_pool import first_max_tap, max_pool, reduce_window_max

needs_onednn = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN extension not built or not on CPU"
)


def _configs(n: int) -> list[tuple]:
    """Seeded windows, strides (also larger than the window), paddings and layouts."""
    rng = np.random.RandomState(0)
    out = []
    while len(out) < n:
        k = tuple(int(v) for v in rng.randint(1, 5, 2))
        s = tuple(int(v) for v in rng.randint(1, 5, 2))
        hw = tuple(int(v) for v in rng.randint(1, 11, 2))
        padding = ("SAME", "VALID")[rng.randint(2)]
        if padding == "VALID" and (hw[0] < k[0] or hw[1] < k[1]):
            continue
        if rng.randint(2):
            out.append(((2, 3, *hw), (1, 1, *k), (1, 1, *s), padding))  # NCHW
        else:
            out.append(((2, *hw, 3), (1, *k, 1), (1, *s, 1), padding))  # NHWC
    return out


@pytest.mark.parametrize("shape,dims,strides,padding", _configs(12))
def test_gradient_is_jax_reduce_window_gradient(shape, dims, strides, padding) -> None:
    """JAX's reverse-mode rule also gives the gradient to the first maximum; on inputs with
    ties (rounded ReLU values) and without, the two agree to float rounding (the taps sum
    overlapping windows' shares in another order)."""

    @jax.jit
    def both(x, cot):
        y, pull = jax.vjp(lambda x: reduce_window_max(x, dims, strides, padding), x)
        y_taps, pull_taps = jax.vjp(lambda x: max_pool(x, dims, strides, padding), x)
        return y, y_taps, pull(cot)[0], pull_taps(cot)[0]

    rng = np.random.RandomState(1)
    for ties in (False, True):
        x = rng.randn(*shape).astype(np.float32)
        x = jnp.asarray(np.maximum(np.round(x), 0) if ties else x)
        out = jax.eval_shape(lambda x: reduce_window_max(x, dims, strides, padding), x)
        cot = jnp.asarray(rng.randn(*out.shape).astype(np.float32))
        y, y_taps, want, got = both(x, cot)
        np.testing.assert_array_equal(y_taps, y)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,dims,strides,padding", _configs(6))
def test_value_from_the_taps_keeps_nan_and_infinities(shape, dims, strides, padding) -> None:
    """The forward is the maximum of the strided views; on NaN, +-inf and ties it gives
    XLA's ``reduce_window`` values bit for bit (NaN where a window holds one)."""
    rng = np.random.RandomState(5)
    x = np.maximum(np.round(rng.randn(*shape)), 0).astype(np.float32)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, 3 * max(flat.size // 10, 1))
    flat[picks[0::3]], flat[picks[1::3]], flat[picks[2::3]] = np.nan, np.inf, -np.inf
    flat[0] = np.nan  # in the first window, whatever the strides
    x = jnp.asarray(x)
    want = jax.jit(lambda x: reduce_window_max(x, dims, strides, padding))(x)
    got = jax.jit(lambda x: max_pool(x, dims, strides, padding))(x)
    assert bool(jnp.any(jnp.isnan(want)))
    np.testing.assert_array_equal(got, want)


def test_forward_mode_is_the_transpose_of_reverse_mode() -> None:
    """jvp works (a custom_vjp would refuse it) and is the same linear map as the vjp:
    <jvp(t), c> == <t, vjp(c)>, ties included."""
    rng = np.random.RandomState(2)
    x = jnp.asarray(np.maximum(np.round(rng.randn(2, 9, 10, 3)), 0).astype(np.float32))
    f = lambda x: max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")  # noqa: E731
    t = jnp.asarray(rng.randn(*x.shape).astype(np.float32))
    y, jt = jax.jit(lambda x, t: jax.jvp(f, (x,), (t,)))(x, t)
    c = jnp.asarray(rng.randn(*y.shape).astype(np.float32))
    (vc,) = jax.jit(lambda x, c: jax.vjp(f, x)[1](c))(x, c)
    np.testing.assert_allclose(jnp.sum(jt * c), jnp.sum(t * vc), rtol=1e-5)
    # each output's tangent is that of the first maximum of its window (NumPy, row-major)
    xp = np.pad(np.asarray(x), ((0, 0), (1, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    tp_ = np.pad(np.asarray(t), ((0, 0), (1, 1), (0, 1), (0, 0)))
    want = np.zeros(y.shape, np.float32)
    for n, i, j, ch in np.ndindex(*y.shape):
        window = xp[n, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, ch].ravel()
        first = int(np.flatnonzero(window == window.max())[0])
        want[n, i, j, ch] = tp_[n, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, ch].ravel()[first]
    np.testing.assert_array_equal(np.asarray(jt), want)


def test_vmap_and_second_derivative() -> None:
    rng = np.random.RandomState(3)
    x = jnp.asarray(rng.randn(4, 2, 6, 6, 2).astype(np.float32))
    f = lambda x: jnp.sum(max_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") ** 2)  # noqa: E731
    g = jax.jit(jax.vmap(jax.grad(f)))(x)
    one = jax.jit(jax.grad(f))
    np.testing.assert_allclose(g, jnp.stack([one(xi) for xi in x]), rtol=1e-6)
    # piecewise quadratic: the Hessian-vector product is 2 * v on the maxima, 0 elsewhere
    v = jnp.ones_like(x[0])
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])(x[0], v)
    np.testing.assert_allclose(hvp, 2.0 * (g[0] != 0), rtol=1e-6)


@pytest.mark.parametrize(
    "on_onednn", [False, pytest.param(True, marks=needs_onednn)], ids=["taps", "onednn"]
)
def test_hessian_vector_product_takes_the_first_maximum(on_onednn) -> None:
    """A second derivative keeps the first-maximum rule through overlapping windows with
    ties: for ``sum(max_pool(x) ** 2)``, ``H v`` puts ``2 * v[a]`` at each window's first
    maximum ``a`` (NumPy, row-major), summed where windows share it."""
    rng = np.random.RandomState(9)
    x = np.maximum(np.round(rng.randn(2, 7, 8, 3)), 0).astype(np.float32)
    v = rng.randn(*x.shape).astype(np.float32)
    dims, strides = (1, 3, 3, 1), (1, 2, 2, 1)
    f = lambda x: jnp.sum(max_pool(x, dims, strides, "SAME", on_onednn) ** 2)  # noqa: E731
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])(jnp.asarray(x), v)
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    want = np.zeros(xp.shape, np.float32)
    for n, i, j, ch in np.ndindex(2, 4, 4, 3):
        window = xp[n, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, ch]
        a, b = np.unravel_index(np.flatnonzero(window.ravel() == window.max())[0], (3, 3))
        r, c = 2 * i + a, 2 * j + b
        want[n, r, c, ch] += 2 * v[n, r - 1, c, ch]
    np.testing.assert_allclose(hvp, want[:, 1:-1, :-1], rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_gradient(dtype) -> None:
    rng = np.random.RandomState(4)
    x = jnp.asarray(rng.randn(2, 7, 8, 3), dtype)
    cot = jnp.asarray(rng.randn(2, 4, 4, 3), dtype)
    args = ((1, 3, 3, 1), (1, 2, 2, 1), "SAME")
    want = jax.jit(jax.grad(lambda x: jnp.sum(reduce_window_max(x, *args) * cot)))(x)
    got = jax.jit(jax.grad(lambda x: jnp.sum(max_pool(x, *args) * cot)))(x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2)


def _uses_taps(pool: int, size: int = 8) -> bool:
    x = jnp.ones((1, size, size, 2))
    model = tp.transform(lambda x: tp.MaxPooling("pool", x, pool))
    params, state = model.init(jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(model.apply(params, state, x)[0])))(x)
    return "select_and_scatter_add" not in str(jaxpr)


def test_max_pooling_uses_the_taps_on_cpu_by_default() -> None:
    on_cpu = jax.default_backend() == "cpu"
    assert _uses_taps(3) == on_cpu
    side = int(TAP_MAX_POOL_MAX_TAPS["cpu"] ** 0.5)
    assert _uses_taps(side, 2 * side) == on_cpu
    assert not _uses_taps(side + 1, 2 * side + 2)  # too many taps: select-and-scatter
    with tp.conv_impl("xla"):
        assert not _uses_taps(3)


def _onednn_pool(x, dims, strides, padding):
    pads = [tuple(p) for p in lax.padtype_to_pads(x.shape, dims, strides, padding)]
    win = onednn_max_pool.window(x.shape, dims, strides, pads)
    return jax.jit(lambda x: onednn_max_pool.POOL.bind(x, win=win))(x)


@needs_onednn
@pytest.mark.parametrize("shape,dims,strides,padding", _configs(24))
def test_onednn_values_and_first_maxima_are_the_taps(shape, dims, strides, padding) -> None:
    """oneDNN's pooling and its workspace are exactly XLA's maxima and ``first_max_tap``'s
    row-major first-maximum indices (padded taps counted), ties included, NHWC and NCHW."""
    pads = [(lo, hi, 0) for lo, hi in lax.padtype_to_pads(shape, dims, strides, padding)]

    @jax.jit
    def reference(x):
        y = reduce_window_max(x, dims, strides, padding)
        return y, first_max_tap(lax.pad(x, -jnp.inf, pads), y, dims, strides)

    rng = np.random.RandomState(6)
    for ties in (False, True):
        x = rng.randn(*shape).astype(np.float32)
        x = jnp.asarray(np.maximum(np.round(x), 0) if ties else x)
        y, first = _onednn_pool(x, dims, strides, padding)
        want, want_first = reference(x)
        assert first.dtype == jnp.uint8
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(first.astype(np.int32), want_first.astype(np.int32))


@needs_onednn
@pytest.mark.parametrize("shape,dims,strides,padding", _configs(8))
def test_onednn_gradient_forward_mode_vmap_and_second_derivative(
    shape, dims, strides, padding
) -> None:
    """The oneDNN path's derivatives are the taps path's (the same first maxima): reverse
    and forward mode, vmap (folded into the batch) and a Hessian-vector product."""
    rng = np.random.RandomState(7)
    x = jnp.asarray(np.maximum(np.round(rng.randn(3, *shape)), 0).astype(np.float32))
    t = jnp.asarray(rng.randn(*shape).astype(np.float32))

    def loss(on_onednn):
        return lambda x: jnp.sum(max_pool(x, dims, strides, padding, on_onednn) ** 2)

    for fn in (
        lambda on: jax.vmap(jax.grad(loss(on)))(x),
        lambda on: jax.jvp(lambda x: max_pool(x, dims, strides, padding, on), (x[0],), (t,)),
        lambda on: jax.jvp(jax.grad(loss(on)), (x[1],), (t,))[1],
    ):
        got, want = (jax.jit(functools.partial(fn, on))() for on in (True, False))
        jax.tree.map(np.testing.assert_array_equal, got, want)
    text = str(jax.make_jaxpr(jax.grad(loss(True)))(x[0]))
    assert "tpflax_onednn_max_pool" in text and "reduce_window" not in text


@needs_onednn
def test_onednn_skips_nan_and_floors_at_float32_lowest_as_tensorflow_does() -> None:
    """oneDNN's maximum starts from float32's lowest value and skips NaN: a window's value is
    ``max(lowest, max of its non-NaN taps)``, so a window of only NaN or -inf gives
    -3.4028235e38 (measured: TensorFlow 2.21's CPU MaxPool, which is oneDNN's, gives the
    same); XLA's maximum propagates NaN and keeps -inf."""
    rng = np.random.RandomState(8)
    x = np.maximum(np.round(rng.randn(2, 9, 9, 3)), 0).astype(np.float32)
    x[0, 1, 1, 0] = x[1, 4, 5, 2] = np.nan
    x[0, 6:9, 6:9, 1] = np.nan  # a whole window
    x[1, 0:3, 3:6, 0] = -np.inf  # another
    x[1, 3:6, 0:3, 1] = -np.inf
    x[1, 4, 1, 1] = np.nan  # and one of both
    dims, strides = (1, 3, 3, 1), (1, 3, 3, 1)
    y, _ = _onednn_pool(jnp.asarray(x), dims, strides, "VALID")
    windows = x.reshape(2, 3, 3, 3, 3, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 3, 3, 3, 9)
    lowest = np.finfo(np.float32).min
    want = np.maximum(np.where(np.isnan(windows), -np.inf, windows).max(-1), lowest)
    np.testing.assert_array_equal(y, want)
    xla = np.asarray(reduce_window_max(jnp.asarray(x), dims, strides, "VALID"))
    assert np.isnan(xla[0, 0, 0, 0]) and xla[1, 0, 1, 0] == -np.inf


def _uses_onednn(shape, pool: int, stride: int) -> bool:
    x = jnp.ones(shape)
    model = tp.transform(lambda x: tp.MaxPooling("pool", x, pool, stride, padding="SAME"))
    params, state = model.init(jax.random.key(0), x)
    jaxpr = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(model.apply(params, state, x)[0])))(x)
    return "tpflax_onednn_max_pool" in str(jaxpr)


def test_which_max_pooling_runs_on_onednn() -> None:
    """'auto': overlapping windows on large float32 inputs, with AVX-512 (ResNet's stem pool);
    not a 2x2/2 pool (measured at par) nor a small input; 'onednn': every pool the taps
    path takes; 'xla': none."""
    on = onednn.available() and onednn.has_avx512()
    stem = (8, 112, 112, 64)
    assert _uses_onednn(stem, 3, 2) == on
    assert not _uses_onednn(stem, 2, 2)
    assert not _uses_onednn((2, 14, 14, 8), 3, 2)
    with tp.conv_impl("onednn"):
        assert _uses_onednn((2, 14, 14, 8), 3, 2) == onednn.available()
        assert not _uses_onednn((2, 14, 14, 8), 8, 8)  # 64 taps: select-and-scatter
    with tp.conv_impl("xla"):
        assert not _uses_onednn(stem, 3, 2)
