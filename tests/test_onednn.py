"""The oneDNN path (tpflax/_src/onednn.py, csrc/onednn_conv.cc): the same values and gradients as
XLA's convolution within float32 rounding, under jit, grad and vmap; the fallbacks (other
dtypes, a missing library) and how the choice is reported. The tensorpack goldens under
'onednn' are in test_golden_layers.py and test_zoo_golden.py."""

from __future__ import annotations

import functools
import logging
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tpflax as tp
from tpflax._src import conv_impl, onednn
from tpflax._src.conv import conv2d, conv2d_transpose

needs_onednn = pytest.mark.skipif(
    not onednn.available(), reason="oneDNN extension not built or not on CPU"
)

# float32 rounding of a sum of up to kh*kw*C products, relative to the output's scale
# (both sides round differently; neither is exact).
RTOL = 1e-5
GRAD_RTOL = 1e-4


def _xla(x, W, strides, padding, dilation, groups):
    return lax.conv_general_dilated(
        x,
        W,
        strides,
        padding,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=lax.Precision.HIGHEST,
    )


def _close(got, want, rtol) -> None:
    scale = float(jnp.max(jnp.abs(want)))
    err = float(jnp.max(jnp.abs(got - want)))
    assert err <= rtol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


CASES = [
    # (x shape, kernel, filters, strides, padding, dilation, groups)
    ((2, 9, 7, 6), 3, 8, (2, 1), "SAME", (1, 1), 1),
    ((2, 9, 7, 6), 3, 8, (1, 1), "VALID", (2, 1), 2),
    ((1, 8, 8, 4), 1, 6, (2, 2), "SAME", (1, 1), 1),
    ((3, 10, 10, 4), 5, 4, (3, 2), "SAME", (1, 1), 4),
    ((2, 12, 11, 3), 7, 5, (2, 2), "SAME", (1, 1), 1),
    ((2, 6, 6, 4), 2, 4, (2, 2), "VALID", (1, 1), 1),
]


@needs_onednn
@pytest.mark.parametrize("case", CASES, ids=str)
def test_values_and_gradients_match_xla(case) -> None:
    shape, k, filters, strides, padding, dilation, groups = case
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    W = jnp.asarray(rng.standard_normal((k, k, shape[3] // groups, filters)), jnp.float32)
    ours = functools.partial(
        onednn.conv, strides=strides, padding=padding, dilation=dilation, groups=groups
    )
    theirs = functools.partial(
        _xla, strides=strides, padding=padding, dilation=dilation, groups=groups
    )
    want = theirs(x, W)
    _close(jax.jit(ours)(x, W), want, RTOL)
    ct = jnp.asarray(rng.standard_normal(want.shape), jnp.float32)
    for got, ref in zip(
        jax.jit(jax.grad(lambda x, W: jnp.sum(ours(x, W) * ct), (0, 1)))(x, W),
        jax.grad(lambda x, W: jnp.sum(theirs(x, W) * ct), (0, 1))(x, W),
        strict=True,
    ):
        _close(got, ref, GRAD_RTOL)


@needs_onednn
def test_vmap_folds_into_the_batch_and_maps_per_example_weights() -> None:
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, 2, 8, 8, 4)), jnp.float32)
    W = jnp.asarray(rng.standard_normal((3, 3, 4, 5)), jnp.float32)
    Ws = jnp.asarray(rng.standard_normal((3, 3, 3, 4, 5)), jnp.float32)
    ours = functools.partial(onednn.conv, strides=(1, 1), padding="SAME")
    theirs = functools.partial(_xla, strides=(1, 1), padding="SAME", dilation=(1, 1), groups=1)
    # unmapped weights: one call on [3*2, 8, 8, 4] (no loop in the program)
    text = str(jax.make_jaxpr(jax.vmap(ours, (0, None)))(x, W))
    assert text.count("tpflax_onednn") == 1 and "while" not in text
    _close(jax.vmap(ours, (0, None))(x, W), jax.vmap(theirs, (0, None))(x, W), RTOL)
    _close(jax.vmap(ours)(x, Ws), jax.vmap(theirs)(x, Ws), RTOL)

    # per-example weight gradients (vmap of grad), nested under jit
    def per_example(f):
        return jax.jit(jax.vmap(jax.grad(lambda x, W: jnp.sum(f(x, W) ** 2), 1), (0, None)))

    _close(per_example(ours)(x, W), per_example(theirs)(x, W), GRAD_RTOL)


@needs_onednn
def test_conv2d_transpose_matches_xla_both_layouts() -> None:
    rng = np.random.default_rng(2)
    for padding in ("SAME", "VALID"):
        for fmt in ("NHWC", "NCHW"):
            shape = (2, 5, 4, 3) if fmt == "NHWC" else (2, 3, 5, 4)
            x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
            W = jnp.asarray(rng.standard_normal((3, 2, 6, 3)), jnp.float32)

            def f(x, W, fmt=fmt, padding=padding):
                return conv2d_transpose(
                    x, W, None, strides=(2, 3), padding=padding, data_format=fmt
                )

            def loss(x, W, f=f):
                return jnp.sum(jnp.sin(f(x, W)))

            with tp.conv_impl("xla"):
                # fresh wrappers: jit (and make_jaxpr below) cache traces by function
                xla_f = jax.jit(lambda x, W, f=f: f(x, W))
                want, want_g = xla_f(x, W), jax.jit(jax.grad(loss, (0, 1)))(x, W)
            with tp.conv_impl("onednn"):
                assert "tpflax_onednn" in str(jax.make_jaxpr(f)(x, W))
                got, got_g = jax.jit(f)(x, W), jax.jit(jax.grad(loss, (0, 1)))(x, W)
            _close(got, want, RTOL)
            for a, b in zip(got_g, want_g, strict=True):
                _close(a, b, GRAD_RTOL)


def _conv(x: jax.Array, W: jax.Array) -> jax.Array:
    return conv2d(x, W, None, strides=(1, 1), padding="SAME", data_format="NHWC")


def test_other_dtypes_stay_on_xla(monkeypatch) -> None:
    """float16 always; bfloat16 where it is differentiated (oneDNN's bfloat16 path is the
    forward only) or where the CPU has no bfloat16 kernels."""
    x, W = jnp.ones((1, 6, 6, 3), jnp.float16), jnp.ones((3, 3, 3, 2), jnp.float16)
    xb, Wb = x.astype(jnp.bfloat16), W.astype(jnp.bfloat16)
    with tp.conv_impl("onednn"):
        for text in (
            str(jax.make_jaxpr(_conv)(x, W)),
            str(jax.make_jaxpr(jax.grad(lambda W: jnp.sum(_conv(xb, W))))(Wb)),
        ):
            assert "tpflax_onednn" not in text and "conv_general_dilated" in text
        monkeypatch.setattr(onednn, "has_bf16", lambda: False)
        assert "tpflax_onednn" not in str(jax.make_jaxpr(_conv)(xb, Wb))


@needs_onednn
@pytest.mark.skipif(not onednn.has_bf16(), reason="no bfloat16 kernels on this CPU")
def test_bfloat16_forward_runs_on_onednn_as_xla_rounds_it() -> None:
    """A bfloat16 input with float32 weights (Keras' autocast): the product in bfloat16 of a
    float32 sum, on oneDNN as on XLA; both within bfloat16's rounding of the exact sum."""
    k = jax.random.split(jax.random.key(5), 2)
    x = jax.random.normal(k[0], (2, 14, 14, 32)).astype(jnp.bfloat16)
    W = jax.random.normal(k[1], (3, 3, 32, 48)) * 0.1
    with tp.conv_impl("onednn"):
        run = jax.jit(_conv).lower(x, W).compile()
    assert "tpflax_onednn_conv_fwd_bf16" in run.as_text()
    got = run(x, W)
    with tp.conv_impl("xla"):
        want = jax.jit(_conv)(x, W)
    exact = lax.conv_general_dilated(
        x.astype(jnp.float32),
        W.astype(jnp.bfloat16).astype(jnp.float32),
        (1, 1),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )
    assert got.dtype == want.dtype == jnp.bfloat16
    # rounding to bfloat16 (8 significant bits) moves a value by at most 2**-8 of it; the
    # float32 sums' own error is far below, so one such rounding of the largest value is a
    # bound with room, and a wrong product (a transposed kernel) is far above it
    bound = 2.0**-7 * float(jnp.max(jnp.abs(exact)))
    for y in (got, want):
        assert float(jnp.max(jnp.abs(y.astype(jnp.float32) - exact))) <= bound


def test_impl_names_and_report(monkeypatch) -> None:
    with pytest.raises(ValueError, match=r"expected one of \('auto', 'xla', 'onednn'\)"):
        tp.conv_impl("dnnl")
    monkeypatch.setenv("TPFLAX_CONV", "onednn")
    assert conv_impl.current_impl() == "onednn"
    with tp.conv_impl("xla"):
        assert tp.conv_impl.active() == "xla"
    if onednn.available():
        assert tp.conv_impl.active().startswith("onednn: oneDNN 3.")
    assert "active: " in repr(tp.conv_impl)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with tp.conv_impl("auto"):
        assert tp.conv_impl.active() == "auto: XLA (gpu backend; oneDNN runs on the CPU only)"


@needs_onednn
@pytest.mark.skipif("ONEDNN_MAX_CPU_ISA" in os.environ, reason="oneDNN's ISA is capped")
def test_the_report_names_the_instruction_set_this_cpu_has() -> None:
    """The instruction set is named from oneDNN's own header, and agrees with the CPU's flags
    (a hand-kept table of its values printed AMX as '0xfef')."""
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split(":")[1].split()
    name = re.fullmatch(r"oneDNN 3\.\d+\.\d+ \((\w+)\)", onednn.describe())
    assert name is not None, onednn.describe()
    assert not name[1].startswith("0x")
    assert name[1].startswith("avx512_core_amx") == ({"amx_tile", "amx_bf16"} <= set(flags))
    assert onednn.has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert onednn.has_avx512() == ({"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags))


@needs_onednn
def test_auto_needs_avx512(monkeypatch) -> None:
    """oneDNN 3.2 with AVX2 only was measured slower than XLA: 'auto' then keeps XLA."""
    x, W = jnp.ones((8, 28, 28, 64)), jnp.ones((3, 3, 64, 64))  # in the table
    args = ((1, 1), (1, 1), 1, "NHWC")
    with tp.conv_impl("auto"):
        assert conv_impl.use_onednn(x, W, *args) == onednn.has_avx512()
        monkeypatch.setattr(onednn, "has_avx512", lambda: False)
        assert not conv_impl.use_onednn(x, W, *args)
        assert "no AVX-512" in tp.conv_impl.active()


def test_a_missing_library_is_said_once_and_xla_runs(monkeypatch, caplog) -> None:
    """Simulates an install where the extension was not built."""
    monkeypatch.setattr(onednn, "library_path", lambda: None)
    monkeypatch.setattr(onednn, "library", functools.cache(onednn.library.__wrapped__))
    x, W = jnp.ones((1, 6, 6, 3)), jnp.ones((3, 3, 3, 2))

    def f(x):
        return conv2d(x, W, None, strides=(1, 1), padding="SAME", data_format="NHWC")

    with caplog.at_level(logging.WARNING, logger="tpflax"), tp.conv_impl("onednn"):
        y = f(x)
        f(x + 1)
        text = str(jax.make_jaxpr(f)(x))
        active = tp.conv_impl.active()
    with tp.conv_impl("xla"):
        np.testing.assert_array_equal(y, f(x))
    assert "tpflax_onednn" not in text
    said = [r.getMessage() for r in caplog.records if "oneDNN" in r.getMessage()]
    assert said == [
        "oneDNN convolutions unavailable (the native extension was not built at install "
        "time (needs g++)); XLA's run instead"
    ]
    assert active == "onednn: XLA (oneDNN unavailable)"


@needs_onednn
def test_threads_are_set_before_the_library_loads() -> None:
    import os

    assert os.environ["OMP_NUM_THREADS"].isdigit()
    assert os.environ["OMP_WAIT_POLICY"] in ("PASSIVE", "passive", "ACTIVE", "active")


@needs_onednn
def test_forward_mode_and_second_derivatives_match_xla() -> None:
    """jvp, jacfwd and a Hessian-vector product (forward over reverse) run on oneDNN's three
    primitives, whose transposes are each other."""
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((2, 7, 7, 3)), jnp.float32)
    W = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)
    t = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)

    def f(x, W):
        return conv2d(x, W, None, strides=(2, 1), padding="SAME", data_format="NHWC")

    def checks(x, W):
        loss = lambda x, W: jnp.sum(jnp.tanh(f(x, W)))  # noqa: E731
        return (
            jax.jvp(f, (x, W), (t, W))[1],
            jax.jacfwd(lambda W: f(x, W).sum((0, 1, 2)))(W),
            jax.jvp(jax.grad(loss), (x, W), (t, W))[1],
        )

    with tp.conv_impl("onednn"):
        assert "tpflax_onednn" in str(jax.make_jaxpr(checks)(x, W))
        got = jax.jit(checks)(x, W)
    with tp.conv_impl("xla"):
        want = checks(x, W)
    for a, b in zip(got, want, strict=True):
        _close(a, b, GRAD_RTOL)


def test_the_auto_table() -> None:
    """'auto' takes oneDNN for ResNet's convolutions on maps of 14x14 and more, not for 1x1
    convolutions that widen the channels, 7x7 maps or small convolutions (the measured table
    in conv_impl.py, given AVX-512 and the library)."""
    table = conv_impl.ONEDNN_CONV
    assert table((8, 224, 224, 3), (7, 7, 3, 64), (2, 2))
    assert table((8, 56, 56, 64), (3, 3, 64, 64), (1, 1))
    assert table((8, 56, 56, 256), (1, 1, 256, 64), (1, 1))
    assert table((8, 14, 14, 1024), (1, 1, 1024, 256), (1, 1))
    assert not table((8, 56, 56, 64), (1, 1, 64, 256), (1, 1))  # widening
    assert not table((8, 7, 7, 512), (3, 3, 512, 512), (1, 1))  # 7x7 map
    assert not table((1, 16, 16, 8), (3, 3, 8, 8), (1, 1))  # small
    assert conv_impl.ONEDNN_CONV_TRANSPOSE((8, 28, 28, 128), (4, 4, 64, 128), (2, 2))
    assert conv_impl.ONEDNN_CONV_TRANSPOSE((2, 14, 14, 32), (4, 4, 16, 32), (2, 2))
    assert not conv_impl.ONEDNN_CONV_TRANSPOSE((2, 5, 5, 3), (3, 3, 8, 3), (2, 2))


@needs_onednn
def test_inside_shard_map_the_gradients_keep_their_sharding_types() -> None:
    """Under shard_map an FFI call's result is not marked as varying over the mesh axis; the
    primitives' results and gradients must be, and an invariant W's gradient is summed over
    the axis (tests/test_data_parallel.py runs 2 devices)."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((1,), ("batch",))
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
    x = jax.device_put(x, NamedSharding(mesh, P("batch")))
    W = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)

    def grads(x, W):
        def loss(x, W):
            y = conv2d(x, W, None, strides=(1, 1), padding="SAME", data_format="NHWC")
            return jnp.sum(y**2)

        gx, gW = jax.grad(loss, (0, 1))(x, W)
        return gx, jax.lax.psum(gW, "batch")

    def step(impl):
        with tp.conv_impl(impl):  # read while tracing
            specs = {"in_specs": (P("batch"), P()), "out_specs": (P("batch"), P())}
            return jax.jit(jax.shard_map(grads, mesh=mesh, **specs)).trace(x, W).lower()

    assert "tpflax_onednn_conv_bwd_data" in step("onednn").as_text()
    got = step("onednn").compile()(x, W)
    want = step("xla").compile()(x, W)
    for a, b in zip(got, want, strict=True):
        _close(a, b, GRAD_RTOL)


@pytest.mark.skipif(
    not (onednn.available() and onednn.has_avx512()), reason="oneDNN's 'auto' tables need AVX-512"
)
def test_auto_reads_its_tables_by_the_nhwc_shape_in_both_layouts() -> None:
    """'auto': a 3x3 64->64 convolution on 56x56 maps (the training table's) runs on oneDNN
    in NHWC and NCHW, differentiated or not; one on 14x14 maps (7e6 multiply-adds) only
    when not differentiated (ONEDNN_INFERENCE), its gradient on XLA; a tiny one on XLA."""

    def lowered(shape, fmt, grad):
        c = shape[3] if fmt == "NHWC" else shape[1]
        x = jax.ShapeDtypeStruct(shape, jnp.float32)
        W = jax.ShapeDtypeStruct((3, 3, c, c), jnp.float32)

        def f(x, W):
            return conv2d(x, W, None, strides=(1, 1), padding="SAME", data_format=fmt).sum()

        with tp.conv_impl("auto"):
            text = str(jax.make_jaxpr(jax.grad(f, (0, 1)) if grad else f)(x, W))
        return "tpflax_onednn" in text, "conv_general_dilated" in text

    for grad in (False, True):
        assert lowered((8, 56, 56, 64), "NHWC", grad) == (True, False)
        assert lowered((8, 64, 56, 56), "NCHW", grad) == (True, False)
    assert lowered((1, 64, 14, 14), "NCHW", False) == (True, False)
    assert lowered((1, 64, 14, 14), "NCHW", True) == (False, True)
    assert lowered((1, 4, 6, 6), "NCHW", False) == (False, True)
