"""Weights trained in one layout, run in the other: only a fully connected layer right after
a flatten cares (an NCHW map flattens as C, H, W; an NHWC map as H, W, C)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

import tpflax as tp
from tpflax._src import utils


def permute_fc_rows(W: np.ndarray, chw: tuple[int, int, int], src: str, dst: str) -> np.ndarray:
    """Reorders the rows of a ``[C*H*W, units]`` kernel from ``src``'s flatten order to
    ``dst``'s."""
    c, h, w = chw
    W = np.asarray(W)
    units = W.shape[-1]
    if W.shape[0] != c * h * w:
        raise ValueError(f"permute_fc_rows: {W.shape[0]} rows, but C*H*W = {c * h * w}")
    if src == dst:
        return W
    if src == "NCHW":
        return W.reshape(c, h, w, units).transpose(1, 2, 0, 3).reshape(-1, units)
    return W.reshape(h, w, c, units).transpose(2, 0, 1, 3).reshape(-1, units)


def convert_layout(
    flat: Mapping[str, Any],
    model_fn: Callable[..., Any],
    example: Any,
    src: str,
    dst: str,
) -> dict[str, Any]:
    """Weights of a zoo model trained in layout ``src``, for the same model run in ``dst``.

    Convolution kernels are layout-free; the fully connected layers listed in the model's
    ``flatten_fc`` (VGG16's ``fc6``, AlexNet's ``fc6``, Inception-BN's ``loss1fc`` and
    ``loss2fc``) get their rows permuted. The feature map's shape comes from tracing the model
    on ``example`` (shapes only, nothing is computed).

    Args:
        flat: ``{name: array}`` as ``tp.checkpoint.load`` returns.
        model_fn: the zoo model in either layout (e.g. ``tp.zoo.vgg16(data_format='NHWC')``).
        example: an input of the resolution the weights are for, e.g.
            ``jnp.zeros((1, 224, 224, 3))`` (``jax.ShapeDtypeStruct`` works too).
        src, dst: ``'NCHW'`` / ``'NHWC'`` (either spelling).
    """
    src = utils.data_format(src, who="convert_layout")
    dst = utils.data_format(dst, who="convert_layout")
    table: dict[str, str] = getattr(model_fn, "flatten_fc", {})
    out = dict(flat)
    if src == dst or not table:
        return out
    model = tp.transform(model_fn)
    params, state = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), example)
    captured = jax.eval_shape(
        lambda p, s, x: model.apply(p, s, x, capture=list(table.values()))[2],
        params,
        state,
        example,
    )
    own = getattr(model_fn, "data_format", None)
    if own is None:
        raise ValueError("convert_layout: model_fn must be a tp.zoo model (it records its layout)")
    fmt = utils.data_format(own, who="convert_layout")
    for fc, feature in table.items():
        shape = captured[feature].shape  # in model_fn's own layout
        chw = (shape[1], shape[2], shape[3]) if fmt == "NCHW" else (shape[3], shape[1], shape[2])
        key = f"{fc}/W"
        out[key] = permute_fc_rows(flat[key], chw, src, dst)
    return out
