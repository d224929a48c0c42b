"""``tf.nn``: TensorFlow's activations, losses, normalization, convolution and pooling on
``jax.numpy``/``lax``, with TensorFlow's defaults (``leaky_relu``'s alpha is 0.2) and its
gradients at kinks (``relu``, ``leaky_relu`` and ``relu6`` pass no gradient at the kink's
left side, as TF)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tpflax._src import epilogue
from tpflax._src.frame import next_rng_key
from tpflax.compat.tf._common import broadcast, static_ints, tensor
from tpflax.compat.tf._common import keep_dims as _keep_dims
from tpflax.compat.tf._math_ops import _tf_abs, sigmoid, tanh
from tpflax.compat.tf._naming import named


def relu(features: Any, name: str | None = None) -> Any:
    """``tf.nn.relu``; as a ``Conv2D``'s ``activation``, fused into its oneDNN convolution in
    inference, as ``jax.nn.relu`` is (see Speed)."""
    return named(epilogue.relu(tensor(features)), name)


def relu6(features: Any, name: str | None = None) -> Any:
    """``tf.nn.relu6``."""
    return named(jax.nn.relu6(tensor(features)), name)


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Any:
    """``tf.nn.leaky_relu``: alpha defaults to 0.2 (JAX's to 0.01).

    >>> from tpflax.compat import tf
    >>> tf.nn.leaky_relu([-1.0, 2.0, -5.0]).tolist()
    [-0.20000000298023224, 2.0, -1.0]
    """
    x = tensor(features)
    return named(jnp.where(x > 0, x, x * jnp.asarray(alpha, x.dtype)), name)


def elu(features: Any, name: str | None = None) -> Any:
    """``tf.nn.elu``."""
    x = tensor(features)
    return named(jnp.where(x < 0, jnp.expm1(jnp.minimum(x, 0)), x), name)


def softplus(features: Any, name: str | None = None) -> Any:
    """``tf.nn.softplus``."""
    return named(jax.nn.softplus(tensor(features)), name)


def _axis(axis: Any, dim: Any, who: str) -> int:
    if axis is not None and dim is not None:
        raise ValueError(f"{who}: give axis or dim, not both")
    ax = axis if axis is not None else dim
    return -1 if ax is None else int(ax)


def softmax(logits: Any, axis: Any = None, name: str | None = None, dim: Any = None) -> Any:
    """``tf.nn.softmax`` (``axis`` or TF1's ``dim``; last axis by default)."""
    return named(jax.nn.softmax(tensor(logits), axis=_axis(axis, dim, "tf.nn.softmax")), name)


def log_softmax(logits: Any, axis: Any = None, name: str | None = None, dim: Any = None) -> Any:
    """``tf.nn.log_softmax`` (``axis`` or TF1's ``dim``; last axis by default)."""
    ax = _axis(axis, dim, "tf.nn.log_softmax")
    return named(jax.nn.log_softmax(tensor(logits), axis=ax), name)


def _no_sentinel(sentinel: Any, who: str) -> None:
    if sentinel is not None:
        raise ValueError(f"{who}: call with named arguments (labels=..., logits=...)")


def sparse_softmax_cross_entropy_with_logits(
    _sentinel: Any = None, labels: Any = None, logits: Any = None, name: str | None = None
) -> Any:
    """``tf.nn.sparse_softmax_cross_entropy_with_logits``: integer labels, per-example loss."""
    _no_sentinel(_sentinel, "tf.nn.sparse_softmax_cross_entropy_with_logits")
    lg, lb = tensor(logits), tensor(labels)
    logp = jax.nn.log_softmax(lg, axis=-1)
    out = -jnp.take_along_axis(logp, lb[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return named(out, name)


@jax.custom_vjp
def _xent_last(labels: jax.Array, logits: jax.Array) -> jax.Array:
    return -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def _xent_fwd(labels: jax.Array, logits: jax.Array) -> tuple[jax.Array, Any]:
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(labels * logp, axis=-1), (labels, logp)


def _xent_bwd(res: Any, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    labels, logp = res
    g = g[..., None]
    return -g * logp, g * (jnp.exp(logp) - labels)


_xent_last.defvjp(_xent_fwd, _xent_bwd)


def _softmax_xent(labels: Any, logits: Any, axis: int) -> jax.Array:
    """TF's kernel: the logits' gradient is ``softmax - labels`` (right for labels summing to
    1; TF uses it for any labels), the labels' ``-log_softmax``."""
    lb, lg = broadcast(labels, logits)
    return _xent_last(jnp.moveaxis(lb, axis, -1), jnp.moveaxis(lg, axis, -1))


def softmax_cross_entropy_with_logits(
    _sentinel: Any = None,
    labels: Any = None,
    logits: Any = None,
    dim: int = -1,
    name: str | None = None,
    axis: Any = None,
) -> Any:
    """``tf.nn.softmax_cross_entropy_with_logits`` (TF1): no gradient to ``labels``."""
    _no_sentinel(_sentinel, "tf.nn.softmax_cross_entropy_with_logits")
    ax = dim if axis is None else axis
    lb = lax.stop_gradient(tensor(labels))
    return named(_softmax_xent(lb, tensor(logits), ax), name)


def softmax_cross_entropy_with_logits_v2(
    _sentinel: Any = None,
    labels: Any = None,
    logits: Any = None,
    axis: Any = None,
    name: str | None = None,
    dim: Any = None,
) -> Any:
    """``tf.nn.softmax_cross_entropy_with_logits_v2``: gradients to labels and logits."""
    _no_sentinel(_sentinel, "tf.nn.softmax_cross_entropy_with_logits_v2")
    ax = _axis(axis, dim, "tf.nn.softmax_cross_entropy_with_logits_v2")
    return named(_softmax_xent(tensor(labels), tensor(logits), ax), name)


def sigmoid_cross_entropy_with_logits(
    _sentinel: Any = None, labels: Any = None, logits: Any = None, name: str | None = None
) -> Any:
    """``tf.nn.sigmoid_cross_entropy_with_logits``: TF's stable formula
    ``max(x, 0) - x * z + log(1 + exp(-|x|))``, with TF's gradient at 0 (``0.5 - z``)."""
    _no_sentinel(_sentinel, "tf.nn.sigmoid_cross_entropy_with_logits")
    x, z = broadcast(logits, labels)
    cond = x >= 0
    relu_x = jnp.where(cond, x, jnp.zeros_like(x))
    neg_abs = jnp.where(cond, -x, x)
    out = relu_x - x * z + jnp.log1p(jnp.exp(neg_abs))
    return named(out, name)


def weighted_cross_entropy_with_logits(
    labels: Any = None,
    logits: Any = None,
    pos_weight: Any = None,
    name: str | None = None,
    targets: Any = None,
) -> Any:
    """``tf.nn.weighted_cross_entropy_with_logits`` (TF1's signature; ``targets`` is the old
    name of ``labels``): the sigmoid cross entropy with the positive term weighted by
    ``pos_weight``, TF's formula ``(1 - z) * x + (1 + (q - 1) * z) * (log(1 + exp(-|x|)) +
    max(-x, 0))``, so also TF's gradient at ``x = 0`` (``1 - z``)."""
    who = "tf.nn.weighted_cross_entropy_with_logits"
    if labels is not None and targets is not None:
        raise ValueError(f"{who}: give labels or targets (its old name), not both")
    z = labels if labels is not None else targets
    if z is None or logits is None or pos_weight is None:
        raise ValueError(f"{who}: labels (or targets), logits and pos_weight are required")
    x, z = tensor(logits), tensor(z)
    if x.shape != z.shape:
        raise ValueError(
            f"{who}: logits and labels must have the same shape, got {x.shape} and {z.shape}"
        )
    x, z, q = broadcast(x, z, pos_weight)
    log_weight = 1 + (q - 1) * z
    softplus_neg = jnp.log1p(jnp.exp(-_tf_abs(x))) + jax.nn.relu(-x)
    return named((1 - z) * x + log_weight * softplus_neg, name)


def l2_loss(t: Any, name: str | None = None) -> Any:
    """``tf.nn.l2_loss``: ``sum(t ** 2) / 2``."""
    return named(jnp.sum(jnp.square(tensor(t))) / 2, name)


def l2_normalize(
    x: Any, axis: Any = None, epsilon: float = 1e-12, name: str | None = None, dim: Any = None
) -> Any:
    """``tf.nn.l2_normalize``: ``x / sqrt(max(sum(x ** 2), epsilon))``."""
    v = tensor(x)
    ax = axis if axis is not None else dim
    ax = tuple(static_ints(ax, "tf.nn.l2_normalize")) if ax is not None else None
    sq = jnp.sum(jnp.square(v), axis=ax, keepdims=True)
    return named(v * lax.rsqrt(jnp.maximum(sq, epsilon)), name)


def in_top_k(predictions: Any, targets: Any, k: int, name: str | None = None) -> Any:
    """``tf.nn.in_top_k``: ties at the k-th value count as in; a non-finite target's score
    counts as out, as in TF."""
    p, t = tensor(predictions), tensor(targets)
    target = jnp.take_along_axis(p, t[:, None].astype(jnp.int32), axis=1)
    better = jnp.sum(p > target, axis=1)
    return named((better < k) & jnp.isfinite(target[:, 0]), name)


class TopKV2(NamedTuple):
    """What ``tf.nn.top_k`` returns: ``.values`` and ``.indices``."""

    values: Any
    indices: Any


def top_k(input: Any, k: int = 1, sorted: bool = True, name: str | None = None) -> Any:
    """``tf.nn.top_k``: ``TopKV2(values, indices)``, int32 indices, lower index first on
    ties."""
    values, indices = lax.top_k(tensor(input), int(k))
    return TopKV2(values, indices.astype(jnp.int32))


def moments(
    x: Any,
    axes: Any,
    shift: Any = None,
    name: str | None = None,
    keep_dims: Any = None,
    keepdims: Any = None,
) -> Any:
    """``tf.nn.moments``: ``(mean, variance)``; the variance's gradient skips the mean's, as
    TF's ``stop_gradient`` does."""
    v = tensor(x)
    ax = tuple(static_ints(axes, "tf.nn.moments"))
    keep = _keep_dims(keepdims, keep_dims, "tf.nn.moments")
    mean = jnp.mean(v, axis=ax, keepdims=True)
    var = jnp.mean(jnp.square(v - lax.stop_gradient(mean)), axis=ax, keepdims=True)
    if not keep:
        mean, var = jnp.squeeze(mean, ax), jnp.squeeze(var, ax)
    return mean, var


def batch_normalization(
    x: Any,
    mean: Any,
    variance: Any,
    offset: Any,
    scale: Any,
    variance_epsilon: float,
    name: str | None = None,
) -> Any:
    """``tf.nn.batch_normalization``, in TF's order: ``x * inv + (offset - mean * inv)``
    with ``inv = rsqrt(variance + eps) * scale``."""
    v = tensor(x)
    inv = lax.rsqrt(tensor(variance) + variance_epsilon)
    if scale is not None:
        inv = jnp.multiply(*broadcast(inv, scale))
    m = tensor(mean)
    shift = -jnp.multiply(*broadcast(m, inv))
    if offset is not None:
        shift = jnp.subtract(*broadcast(offset, jnp.multiply(*broadcast(m, inv))))
    return named(jnp.add(*broadcast(jnp.multiply(*broadcast(v, inv)), shift)), name)


def lrn(
    input: Any,
    depth_radius: int = 5,
    bias: float = 1.0,
    alpha: float = 1.0,
    beta: float = 0.5,
    name: str | None = None,
) -> Any:
    """``tf.nn.lrn`` (``local_response_normalization``) over the last axis:
    ``x / (bias + alpha * sum(x[c-r:c+r+1] ** 2)) ** beta``."""
    x = tensor(input)
    r = int(depth_radius)
    window = (1,) * (x.ndim - 1) + (2 * r + 1,)
    pads = [(0, 0)] * (x.ndim - 1) + [(r, r)]
    sq = lax.reduce_window(jnp.square(x), 0.0, lax.add, window, (1,) * x.ndim, pads)
    return named(x / (bias + alpha * sq) ** beta, name)


local_response_normalization = lrn


def embedding_lookup(
    params: Any,
    ids: Any,
    partition_strategy: str = "mod",
    name: str | None = None,
    validate_indices: bool = True,
    max_norm: Any = None,
) -> Any:
    """``tf.nn.embedding_lookup`` on one table (a list of one table is accepted)."""
    if isinstance(params, list | tuple):
        if len(params) != 1:
            raise NotImplementedError(
                "tf.nn.embedding_lookup: sharded tables (a list of several) are not supported "
                "in tpflax; concatenate the shards in id order (tf.concat) and look up once"
            )
        params = params[0]
    if max_norm is not None:
        raise NotImplementedError("tf.nn.embedding_lookup: max_norm is not supported")
    return named(jnp.take(tensor(params), tensor(ids), axis=0), name)


def _hw(value: Any, data_format: str, who: str) -> tuple[int, int]:
    """TF's ``strides``/``ksize``/``dilations``: an int, 2 numbers, or 4 in data order."""
    v = static_ints([value] if isinstance(value, int) else value, who)
    if len(v) == 1:
        return v[0], v[0]
    if len(v) == 2:
        return v[0], v[1]
    if len(v) == 4:
        return (v[1], v[2]) if data_format == "NHWC" else (v[2], v[3])
    raise ValueError(f"{who}: expected 1, 2 or 4 numbers; got {value!r}")


def _padding(padding: Any, data_format: str, who: str) -> Any:
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{who}: padding must be 'SAME' or 'VALID'; got {padding!r}")
        return padding.upper()
    pads = np.asarray(padding).reshape(4, 2).tolist()
    return pads[1:3] if data_format == "NHWC" else pads[2:4]


def conv2d(
    input: Any,
    filter: Any = None,
    strides: Any = None,
    padding: Any = None,
    use_cudnn_on_gpu: bool = True,
    data_format: str = "NHWC",
    dilations: Any = (1, 1, 1, 1),
    name: str | None = None,
    filters: Any = None,
) -> Any:
    """``tf.nn.conv2d`` (TF1 signature; ``filter`` or ``filters`` in HWIO), float32 at full
    precision."""
    w = tensor(filter if filter is not None else filters)
    fmt = data_format
    dn = (fmt, "HWIO", fmt)
    out = lax.conv_general_dilated(
        tensor(input),
        w,
        _hw(strides, fmt, "tf.nn.conv2d strides"),
        _padding(padding, fmt, "tf.nn.conv2d"),
        rhs_dilation=_hw(dilations, fmt, "tf.nn.conv2d dilations"),
        dimension_numbers=dn,
        precision=lax.Precision.HIGHEST,
    )
    return named(out, name)


def conv2d_transpose(
    value: Any = None,
    filter: Any = None,
    output_shape: Any = None,
    strides: Any = None,
    padding: str = "SAME",
    data_format: str = "NHWC",
    name: str | None = None,
    input: Any = None,
    filters: Any = None,
    dilations: Any = None,
) -> Any:
    """``tf.nn.conv2d_transpose``: the gradient of ``tf.nn.conv2d`` for its input (TF's
    definition), ``filter`` as ``[h, w, out_channels, in_channels]``."""
    x = tensor(value if value is not None else input)
    w = tensor(filter if filter is not None else filters)
    shape = tuple(static_ints(output_shape, "tf.nn.conv2d_transpose output_shape"))
    dil = (1, 1, 1, 1) if dilations is None else dilations

    def forward(y: jax.Array) -> jax.Array:
        return conv2d(y, w, strides, padding, data_format=data_format, dilations=dil)

    _, pullback = jax.vjp(forward, jnp.zeros(shape, x.dtype))
    return named(pullback(x)[0], name)


def depthwise_conv2d(
    input: Any,
    filter: Any,
    strides: Any,
    padding: Any,
    rate: Any = None,
    name: str | None = None,
    data_format: Any = None,
    dilations: Any = None,
) -> Any:
    """``tf.nn.depthwise_conv2d``: ``filter`` ``[h, w, in_channels, multiplier]``, output
    channels ordered channel-major as in TF."""
    fmt = data_format or "NHWC"
    x, w = tensor(input), tensor(filter)
    kh, kw, cin, mult = w.shape
    dil = dilations if dilations is not None else rate
    out = lax.conv_general_dilated(
        x,
        w.reshape(kh, kw, 1, cin * mult),
        _hw(strides, fmt, "tf.nn.depthwise_conv2d strides"),
        _padding(padding, fmt, "tf.nn.depthwise_conv2d"),
        rhs_dilation=_hw(1 if dil is None else dil, fmt, "tf.nn.depthwise_conv2d rate"),
        dimension_numbers=(fmt, "HWIO", fmt),
        feature_group_count=cin,
        precision=lax.Precision.HIGHEST,
    )
    return named(out, name)


def xw_plus_b(x: Any, weights: Any, biases: Any, name: str | None = None) -> Any:
    """``tf.nn.xw_plus_b``: ``x @ weights + biases`` at full float32 precision."""
    y = jnp.matmul(tensor(x), tensor(weights), precision=lax.Precision.HIGHEST)
    return named(jnp.add(*broadcast(y, biases)), name)


def bias_add(value: Any, bias: Any, data_format: Any = None, name: str | None = None) -> Any:
    """``tf.nn.bias_add`` (channels last, or axis 1 for ``'NCHW'``)."""
    x, b = tensor(value), tensor(bias)
    if data_format is not None and data_format.startswith("NC"):
        b = b.reshape((-1,) + (1,) * (x.ndim - 2))
    return named(jnp.add(*broadcast(x, b)), name)


def _pool(value: Any, ksize: Any, strides: Any, padding: Any, data_format: str, who: str) -> Any:
    x = tensor(value)
    kh, kw = _hw(ksize, data_format, f"{who} ksize")
    sh, sw = _hw(strides, data_format, f"{who} strides")
    pad = _padding(padding, data_format, who)
    if data_format == "NHWC":
        return x, (1, kh, kw, 1), (1, sh, sw, 1), pad
    return x, (1, 1, kh, kw), (1, 1, sh, sw), pad


def max_pool(
    value: Any,
    ksize: Any,
    strides: Any,
    padding: Any,
    data_format: str = "NHWC",
    name: str | None = None,
    input: Any = None,
) -> Any:
    """``tf.nn.max_pool``."""
    x, win, st, pad = _pool(
        value if input is None else input, ksize, strides, padding, data_format, "max_pool"
    )
    return named(lax.reduce_window(x, -jnp.inf, lax.max, win, st, pad), name)


def avg_pool(
    value: Any,
    ksize: Any,
    strides: Any,
    padding: Any,
    data_format: str = "NHWC",
    name: str | None = None,
    input: Any = None,
) -> Any:
    """``tf.nn.avg_pool``: with ``'SAME'`` the padding is not counted, as in TF."""
    x, win, st, pad = _pool(
        value if input is None else input, ksize, strides, padding, data_format, "avg_pool"
    )
    total = lax.reduce_window(x, 0.0, lax.add, win, st, pad)
    count = lax.reduce_window(jnp.ones(x.shape, x.dtype), 0.0, lax.add, win, st, pad)
    return named(total / count, name)


def dropout(
    x: Any,
    keep_prob: Any = None,
    noise_shape: Any = None,
    seed: Any = None,
    name: str | None = None,
    rate: Any = None,
) -> Any:
    """``tf.nn.dropout`` (TF1: ``keep_prob`` or ``rate``): always drops, as TF does; the mask
    comes from the model's rng (``apply(..., rng=)``), a fresh key per call."""
    if (keep_prob is None) == (rate is None):
        raise ValueError("tf.nn.dropout: give exactly one of keep_prob and rate")
    keep = 1.0 - float(rate) if rate is not None else float(keep_prob)
    v = tensor(x)
    shape = v.shape
    if noise_shape is not None:  # None entries: x's size there, as in TF
        dims = [d if d is not None else v.shape[k] for k, d in enumerate(noise_shape)]
        shape = tuple(static_ints(dims, "tf.nn.dropout"))
    mask = jax.random.uniform(next_rng_key("tf.nn.dropout"), shape) < keep
    return named(jnp.where(mask, v * (1.0 / keep), jnp.zeros((), v.dtype)), name)


max_pool2d = max_pool
avg_pool2d = avg_pool

__all__ = [
    "avg_pool",
    "avg_pool2d",
    "batch_normalization",
    "bias_add",
    "conv2d",
    "conv2d_transpose",
    "depthwise_conv2d",
    "dropout",
    "elu",
    "embedding_lookup",
    "in_top_k",
    "l2_loss",
    "l2_normalize",
    "leaky_relu",
    "local_response_normalization",
    "log_softmax",
    "lrn",
    "max_pool",
    "max_pool2d",
    "moments",
    "relu",
    "relu6",
    "sigmoid",
    "sigmoid_cross_entropy_with_logits",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "softplus",
    "sparse_softmax_cross_entropy_with_logits",
    "tanh",
    "top_k",
    "weighted_cross_entropy_with_logits",
    "xw_plus_b",
]
