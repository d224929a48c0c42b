"""Argument normalisation shared by every layer: data formats, 2-D shapes, paddings, ranks.

Each helper takes the layer's full scope name so that its error names the layer, the argument,
what was expected and what was received.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_DATA_FORMATS = {
    "NHWC": "NHWC",
    "channels_last": "NHWC",
    "NCHW": "NCHW",
    "channels_first": "NCHW",
}


def where(layer: str, name: str | None) -> str:
    """Formats a layer reference for error messages, e.g. ``Conv2D 'group0/conv1'``."""
    return f"{layer} '{name}'" if name else layer


def data_format(value: Any, *, who: str) -> str:
    """Returns ``'NHWC'`` or ``'NCHW'`` for any of tensorpack's four spellings."""
    if isinstance(value, str) and value in _DATA_FORMATS:
        return _DATA_FORMATS[value]
    raise ValueError(
        f"{who}: data_format must be one of 'NHWC', 'channels_last', 'NCHW', 'channels_first'; "
        f"got {value!r}"
    )


def padding(value: Any, *, who: str) -> str:
    """Returns ``'SAME'`` or ``'VALID'``; tensorpack accepts either case."""
    if isinstance(value, str) and value.upper() in ("SAME", "VALID"):
        return value.upper()
    raise ValueError(f"{who}: padding must be 'same' or 'valid' (any case); got {value!r}")


def shape2d(value: Any, *, who: str, arg: str) -> tuple[int, int]:
    """Tensorpack's ``shape2d``: an int ``k`` means ``(k, k)``; a pair stays as it is."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair: Sequence[Any] = (int(value), int(value))
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = value
    else:
        raise ValueError(f"{who}: {arg} must be an int or a pair of ints; got {value!r}")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{who}: {arg} must be an int or a pair of ints; got {value!r}")
    if any(int(v) < 1 for v in pair):
        raise ValueError(f"{who}: {arg} must be positive; got {value!r}")
    return int(pair[0]), int(pair[1])


def positive_int(value: Any, *, who: str, arg: str) -> int:
    """Returns ``value`` if it is a positive int (not a bool), else raises."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {arg} must be a positive int; got {value!r}")
    return int(value)


def check_rank(x: Any, ranks: Sequence[int], *, who: str, arg: str = "inputs") -> None:
    """Raises unless ``x`` has one of ``ranks`` dimensions."""
    if x.ndim not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{who}: {arg} must be {want}; got shape {tuple(x.shape)} ({x.ndim}-D)")


def static_dim(x: Any, axis: int, *, who: str, what: str = "channel") -> int:
    """Returns ``x.shape[axis]`` as an int; symbolic or empty dimensions are an error."""
    dim = x.shape[axis]
    if not isinstance(dim, (int, np.integer)):
        raise ValueError(
            f"{who}: the {what} dimension (axis {axis}) of the input must be known when the "
            f"layer is built; got {dim!r} in shape {tuple(x.shape)}"
        )
    if int(dim) <= 0:
        raise ValueError(
            f"{who}: the {what} dimension (axis {axis}) of the input must be positive; "
            f"got shape {tuple(x.shape)}"
        )
    return int(dim)


def check_floating(x: Any, *, who: str, arg: str = "inputs") -> None:
    """Raises unless ``x`` has a floating dtype; tensorpack layers never cast integers."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{who}: {arg} must have a floating dtype; got {x.dtype}")


def shape_str(value: Any) -> str:
    """Tensorpack's ``get_shape_str``: ``[8, 28, 28, 1]``, or comma-joined for a list."""
    if isinstance(value, (list, tuple)):
        return ",".join(shape_str(v) for v in value)
    shape = getattr(value, "shape", None)
    if shape is None:
        return repr(value)
    return str([int(d) if isinstance(d, (int, np.integer)) else d for d in shape])


# Half-precision convolutions and matrix products are asked for a float32 result (rounded once
# afterwards), so that they sum in float32 as TensorFlow's CPU kernels do; TPUs keep that rule
# (not measured there). Except bfloat16 on the backends below: XLA's bfloat16 products on
# GPUs sum in float32 (cuDNN's and cuBLAS's compute type) and round once themselves, and asking
# for a float32 result made XLA run them at float32 speed: on an H200 (benchmarks/gpu.py, the
# accumulation check) a bfloat16 3x3 convolution 1.6x and its gradients 2.5x faster without
# it, ResNet-50's bfloat16 training step 1.56x. The values are not bitwise those of the
# float32 result rounded: 0.011% of that convolution's outputs differ (another cuDNN kernel;
# neither is pinned on GPUs), none of the matrix product's. float16 on GPUs was not measured
# and keeps the float32 result.
BFLOAT16_OWN_RESULT_BACKENDS = frozenset({"gpu"})


def accumulation_dtype(dtype: Any) -> Any:
    """The result dtype convolutions and matrix products ask for: float32 for a
    half-precision (float16 / bfloat16) input, so that mixed precision sums in float32 and
    rounds once at the end (TensorFlow's CPU kernels do the same), except bfloat16 on
    ``BFLOAT16_OWN_RESULT_BACKENDS`` (GPUs), whose bfloat16 kernels sum in float32 themselves;
    ``None`` (the input's own dtype) otherwise."""
    dt = jnp.dtype(dtype)
    if not jnp.issubdtype(dt, jnp.floating) or dt.itemsize >= 4:
        return None
    own = dt == jnp.bfloat16 and jax.default_backend() in BFLOAT16_OWN_RESULT_BACKENDS
    return None if own else jnp.float32


def matmul(x: Any, W: Any) -> Any:
    """``x @ W`` for a 2-D ``x``, in ``x``'s dtype (``W`` is cast to it), summed in
    ``accumulation_dtype``: the one product behind ``FullyConnected`` and the convolutions
    that tpflax lowers to matrix products."""
    acc = accumulation_dtype(x.dtype)
    return jnp.matmul(x, W.astype(x.dtype), preferred_element_type=acc).astype(x.dtype)


def native_library(stem: str) -> Path | None:
    """One of tpflax's native libraries, ``tpflax/<stem>*.so`` as ``setup.py`` built it, or
    ``None`` when it was not built."""
    found = sorted(Path(__file__).resolve().parent.parent.glob(f"{stem}*.so"))
    return found[0] if found else None
