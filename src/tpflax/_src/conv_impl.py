"""How a convolution is lowered: XLA's own convolution, or an exact faster formulation.

``'auto'`` (the default) picks, per backend and shape, the formulation measured fastest
(``benchmarks/conv_lowering.py``, results in ``benchmarks/RESULTS.md``):

* a 1x1 convolution (no dilation, no ``split``) on CPU becomes a matrix product over the
  channels, after slicing the input for the stride: XLA:CPU's convolution is slow there, and
  its dot runs at matmul speed. The result is the same sum of the same products.
* everything else stays ``lax.conv_general_dilated``.

``'xla'`` uses ``lax.conv_general_dilated`` everywhere, for debugging and comparison. Choose
with ``with tp.conv_impl('xla'):`` or the environment variable ``TPFLAX_CONV=xla``. Like
argscope, the choice is read when a function is traced: open the block inside the function
you ``jax.jit``, or before its first call.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

import jax
from jax import lax

IMPLS = ("auto", "xla")
# Backends where a 1x1 convolution as a dot was measured faster (benchmarks/RESULTS.md).
DOT_FOR_POINTWISE = frozenset({"cpu"})

_IMPL: contextvars.ContextVar[str | None] = contextvars.ContextVar("tpflax_conv", default=None)


def current_impl() -> str:
    """The lowering in force: the innermost ``tp.conv_impl`` block, else ``TPFLAX_CONV``,
    else ``'auto'``."""
    impl = _IMPL.get() or os.environ.get("TPFLAX_CONV", "auto")
    if impl not in IMPLS:
        raise ValueError(f"TPFLAX_CONV / tp.conv_impl: expected one of {IMPLS}; got {impl!r}")
    return impl


@contextlib.contextmanager
def conv_impl(impl: str) -> Iterator[None]:
    """Selects how convolutions traced inside the block are lowered: ``'auto'`` or
    ``'xla'`` (plain ``lax.conv_general_dilated``).

    Example:
        >>> import jax.numpy as jnp, tpflax as tp
        >>> x, W = jnp.ones((1, 4, 4, 3)), jnp.ones((1, 1, 3, 2))
        >>> with tp.conv_impl('xla'):
        ...     y = tp.Conv2D.apply({'W': W}, {}, x, 2, 1, use_bias=False)[0]
        >>> y[0, 0, 0]
        Array([3., 3.], dtype=float32)
    """
    if impl not in IMPLS:
        raise ValueError(f"tp.conv_impl: expected one of {IMPLS}; got {impl!r}")
    token = _IMPL.set(impl)
    try:
        yield
    finally:
        _IMPL.reset(token)


def use_pointwise_dot(kernel_hw: tuple[int, ...], dilation: tuple[int, ...], groups: int) -> bool:
    """Whether a convolution with this kernel is lowered as a dot (see the module doc)."""
    return (
        tuple(kernel_hw) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
        and current_impl() == "auto"
        and jax.default_backend() in DOT_FOR_POINTWISE
    )


def pointwise_conv(
    x: jax.Array, W: jax.Array, strides: tuple[int, int], data_format: str
) -> jax.Array:
    """A 1x1 convolution (``SAME`` or ``VALID``: no padding either way) as a matrix product:
    ``x[:, ::sh, ::sw]`` times ``W[0, 0]`` (``[C, filters]``) over the channel axis."""
    sh, sw = strides
    kernel = W[0, 0].astype(x.dtype)
    if data_format == "NHWC":
        xs = x[:, ::sh, ::sw, :] if (sh, sw) != (1, 1) else x
        n, h, w, c = xs.shape
        y = lax.dot_general(xs.reshape(n * h * w, c), kernel, (((1,), (0,)), ((), ())))
        return y.reshape(n, h, w, kernel.shape[1])
    xs = x[:, :, ::sh, ::sw] if (sh, sw) != (1, 1) else x
    y = lax.dot_general(xs, kernel, (((1,), (0,)), ((), ())))  # [N, H, W, filters]
    return y.transpose(0, 3, 1, 2)
