"""Batch normalization: pure ops, tensorpack's ``BatchNorm`` and ``BNReLU``.

Tensorpack 0.11 takes one of three paths, and their numbers differ slightly:

* 4-D input, no ``sync_statistics``, no ``virtual_batch_size``: TensorFlow's fused kernel.
  It normalizes with the biased batch variance but feeds the *unbiased* one
  (``n / (n - 1)``, ``n = N*H*W``) to the EMA.
* 2-D input, same options: Keras' non-fused layer; the EMA gets the biased variance.
* ``sync_statistics`` or ``virtual_batch_size``: tensorpack's own code, biased variance;
  Ghost BN's EMA uses the statistics of the first virtual batch only.

``epsilon`` is used as given on every path (TF 2.21 no longer clamps it to 1.001e-5 in the
fused kernel). The fused kernel normalizes as ``(x - mean) * inv + beta`` (with one value per
channel it returns ``beta`` exactly); the other paths as ``tf.nn.batch_normalization`` does,
``x * inv + (beta - mean * inv)``; see :func:`normalize`.

A BatchNorm reused in one training step (a GAN's discriminator on real and on fake images)
updates its EMA once per call, and the updates add: every call's delta is computed from the
EMA as the step began. Tensorpack runs those updates unordered, so TensorFlow usually gives
this and sometimes applies them one after another. Every one of these rules is pinned by
golden fixtures from real tensorpack.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tpflax._src import initializers, utils
from tpflax._src.frame import assign_sub_state, get_variable, is_training
from tpflax._src.registry import layer_context, layer_register

_EMA_MODES = ("default", "collection", "internal", "skip")


def moments(
    x: jax.Array, axes: tuple[int, ...], axis_name: Any = None
) -> tuple[jax.Array, jax.Array]:
    """Batch mean and biased variance over ``axes`` (kept), in float32.

    The sums run over ``x - s``, ``s`` being each channel's first value: that subtraction
    is exact for values close together, so a large mean with a small variance (``50 +
    0.01 * randn``) keeps its digits, as TensorFlow's kernels do; the mean is rounded once.
    The gradient is that of ``mean(x)`` and ``mean((x - mean)^2)``.

    With ``axis_name``, each device's ``E[x]`` and ``E[x^2]`` are averaged across that named
    axis (``shard_map``/``pmap``) and ``var = E[x^2] - E[x]^2``, as tensorpack's SyncBN does.
    """
    x = x.astype(jnp.float32)
    if axis_name is None and math.prod(x.shape[a] for a in axes) == 1:
        # one value per channel: the mean is the value itself, as in TensorFlow
        return x, jnp.zeros_like(x)
    if axis_name is None:
        first = tuple(slice(0, 1) if a in axes else slice(None) for a in range(x.ndim))
        shift = lax.stop_gradient(x[first])
        d = x - shift
        mean_d = jnp.mean(d, axes, keepdims=True)
        var = jnp.mean(jnp.square(d - lax.stop_gradient(mean_d)), axes, keepdims=True)
        return shift + mean_d, var
    mean = lax.pmean(jnp.mean(x, axes, keepdims=True), axis_name)
    mean_sq = lax.pmean(jnp.mean(jnp.square(x), axes, keepdims=True), axis_name)
    return mean, mean_sq - jnp.square(mean)


def normalize(
    x: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    gamma: jax.Array | None,
    beta: jax.Array | None,
    epsilon: float,
    *,
    centered: bool = False,
) -> jax.Array:
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta``; statistics broadcast against ``x``,
    computed in float32 and returned in ``x``'s dtype.

    The two forms round differently, and each follows one TensorFlow kernel:

    * ``centered=False``: ``x * inv + (beta - mean * inv)`` with ``inv = rsqrt(var + eps) *
      gamma``, as ``tf.nn.batch_normalization`` (Keras' non-fused layer, tensorpack's
      SyncBN/Ghost BN, LayerNorm, InstanceNorm).
    * ``centered=True``: ``(x - mean) * inv + beta``, as TensorFlow's fused CPU kernel (4-D
      BatchNorm, training and inference). With one value per channel it returns ``beta``
      exactly, and it keeps the digits of inputs with a large mean and a small variance.
    """
    inv = lax.rsqrt(var + jnp.asarray(epsilon, jnp.float32))
    if gamma is not None:
        inv = inv * gamma
    x32 = x.astype(jnp.float32)
    if centered:
        y = (x32 - mean) * inv
        return (y if beta is None else y + beta).astype(x.dtype)
    shift = -mean * inv
    if beta is not None:
        shift = shift + beta
    return (x32 * inv + shift).astype(x.dtype)


def ema_delta(old: jax.Array, new: jax.Array, momentum: float) -> jax.Array:
    """What TensorFlow's ``assign_moving_average`` (no debiasing) subtracts from ``old``:
    ``(old - new) * (1 - momentum)``."""
    decay = jnp.asarray(1.0 - momentum, jnp.float32)
    return (old - lax.stop_gradient(new).astype(old.dtype)) * decay


def ema(old: jax.Array, new: jax.Array, momentum: float) -> jax.Array:
    """TensorFlow's ``assign_moving_average`` without debiasing:
    ``old - (old - new) * (1 - momentum)``."""
    return old - ema_delta(old, new, momentum)


def _channel_shape(ndim: int, axis: int, channels: int) -> tuple[int, ...]:
    shape = [1] * ndim
    shape[axis] = channels
    return tuple(shape)


def _training_flag(training: Any, who: str) -> bool:
    if training is None:
        return is_training()
    if isinstance(training, (bool, np.bool_)):
        return bool(training)
    if isinstance(training, (int,)) and training in (0, 1):
        return bool(training)
    raise TypeError(
        f"{who}: training must be None or a Python bool (it chooses the code path, as in "
        f"tensorpack); got {type(training).__name__}"
    )


# tensorpack's old names for the normalization layers' arguments (BatchNorm, BatchRenorm)
NORM_ALIASES = {
    "use_bias": "center",
    "use_scale": "scale",
    "gamma_init": "gamma_initializer",
    "decay": "momentum",
}


@layer_register(positional=(), aliases={**NORM_ALIASES, "use_local_stat": "training"})
def BatchNorm(
    inputs: jax.Array,
    axis: int | None = None,
    *,
    training: bool | None = None,
    momentum: float = 0.9,
    epsilon: float = 1e-5,
    center: bool = True,
    scale: bool = True,
    beta_initializer: Any = None,
    gamma_initializer: Any = None,
    virtual_batch_size: int | None = None,
    data_format: str = "channels_last",
    ema_update: str = "default",
    sync_statistics: Any = None,
) -> jax.Array:
    """Batch normalization, tensorpack's ``BatchNorm``.

    In training (``tp.is_training()``, or ``training=True``) it normalizes with batch
    statistics and writes the EMA update into ``new_state``; otherwise it uses the EMA.
    Unlike flax, the default momentum is 0.9 and epsilon 1e-5, and the EMA is not debiased.

    Reused in one step (``reuse=True``, ``tp.auto_reuse_variable_scope``), every call in
    training contributes ``(EMA - batch_stat) * (1 - momentum)``, computed from the EMA as
    the step began, and the contributions add: ``EMA - delta_1 - delta_2 ...``. That is
    tensorpack's usual result (10 of 10 runs of its DCGAN and pix2pix discriminators), but
    tensorpack does not guarantee it: its update ops race, and TensorFlow sometimes applies
    them one after another (a bare 2-D BatchNorm reused on independent inputs mostly does).
    tpflax is deterministic. ``ema_update='internal'`` races the same way in tensorpack and
    follows the same rule here; a call with ``ema_update='skip'`` contributes nothing.

    Args:
        inputs: ``[N, C]`` or a 4-D feature map in ``data_format``.
        axis: the channel axis; by default 1 for 2-D, else from ``data_format``.
        training: overrides ``tp.is_training()`` for this layer (alias ``use_local_stat``).
        momentum: EMA momentum (alias ``decay``).
        epsilon: added to the variance.
        center: create ``beta`` (alias ``use_bias``).
        scale: create ``gamma`` (alias ``use_scale``).
        beta_initializer: zeros by default.
        gamma_initializer: ones by default (alias ``gamma_init``).
        virtual_batch_size: Ghost BN: normalize each group of this many samples separately
            (training only; must divide the batch). The EMA uses the first group.
        data_format: layout of a 4-D input.
        ema_update: ``'default'`` / ``'collection'`` (update the EMA in ``new_state`` when
            the model runs with ``is_training=True``), ``'internal'`` (update whenever this
            layer uses batch statistics, even with ``is_training=False``), or ``'skip'``.
            As in tensorpack, whose inference tower drops the ``UPDATE_OPS`` collection.
        sync_statistics: a JAX axis name (e.g. ``'batch'``): average the statistics across
            devices under ``shard_map``/``pmap``.

    Returns:
        The normalized array, named ``<name>/output``.

    Variable names:
        ``beta``, ``gamma`` (params); ``mean/EMA``, ``variance/EMA`` (state).

    Example:
        >>> import jax, jax.numpy as jnp, tpflax as tp
        >>> x = jnp.arange(8.0).reshape(4, 2)
        >>> params, state = tp.BatchNorm.init(jax.random.key(0), x)
        >>> y, new_state = tp.BatchNorm.apply(params, state, x, is_training=True)
        >>> new_state['mean']['EMA']
        Array([0.3, 0.4], dtype=float32)
    """
    who = layer_context("BatchNorm")
    utils.check_rank(inputs, (2, 4), who=who)
    utils.check_floating(inputs, who=who)
    training = _training_flag(training, who)
    fmt = utils.data_format(data_format, who=who)
    ndim = inputs.ndim
    if axis is None:
        axis = 1 if ndim == 2 else (1 if fmt == "NCHW" else 3)
    if axis not in ((1,) if ndim == 2 else (1, 3)):
        allowed = "1" if ndim == 2 else "1 or 3"
        raise ValueError(f"{who}: axis must be {allowed} for a {ndim}-D input; got {axis!r}")
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not epsilon >= 0:
        raise ValueError(f"{who}: epsilon must be a number >= 0; got {epsilon!r}")
    if ema_update not in _EMA_MODES:
        raise ValueError(f"{who}: ema_update must be one of {_EMA_MODES}; got {ema_update!r}")
    if isinstance(sync_statistics, str) and sync_statistics.lower() in ("nccl", "horovod"):
        raise ValueError(
            f"{who}: sync_statistics={sync_statistics!r} is TensorFlow-specific; pass the JAX "
            "axis name your shard_map/pmap uses instead, e.g. sync_statistics='batch'"
        )
    if virtual_batch_size is not None:
        virtual_batch_size = utils.positive_int(
            virtual_batch_size, who=who, arg="virtual_batch_size"
        )
    if sync_statistics is not None and virtual_batch_size is not None:
        raise ValueError(f"{who}: cannot use sync_statistics and virtual_batch_size together")
    channels = utils.static_dim(inputs, axis, who=who)

    dtype = jnp.float32
    beta = gamma = None
    if center:
        beta = get_variable(
            "beta",
            (channels,),
            initializers.resolve(
                beta_initializer, initializers.zeros, who=who, arg="beta_initializer"
            ),
            dtype=dtype,
            who=who,
        )
    if scale:
        gamma = get_variable(
            "gamma",
            (channels,),
            initializers.resolve(
                gamma_initializer, initializers.ones, who=who, arg="gamma_initializer"
            ),
            dtype=dtype,
            who=who,
        )
    moving_mean = get_variable(
        "mean/EMA", (channels,), initializers.zeros, dtype=dtype, trainable=False, who=who
    )
    moving_var = get_variable(
        "variance/EMA", (channels,), initializers.ones, dtype=dtype, trainable=False, who=who
    )

    cshape = _channel_shape(ndim, axis, channels)
    affine = (
        None if gamma is None else gamma.reshape(cshape),
        None if beta is None else beta.reshape(cshape),
    )
    own_path = sync_statistics is not None or virtual_batch_size is not None
    fused = ndim == 4 and not own_path
    eps = float(epsilon)
    if not training:
        return normalize(
            inputs,
            moving_mean.reshape(cshape),
            moving_var.reshape(cshape),
            *affine,
            eps,
            centered=ndim == 4,  # tensorpack's own paths are for batch statistics only
        )

    reduce_axes = tuple(a for a in range(ndim) if a != axis)
    if any(inputs.shape[a] == 0 for a in reduce_axes):
        raise ValueError(
            f"{who}: batch statistics need at least one value per channel; got an input of "
            f"shape {list(inputs.shape)} in training"
        )
    if virtual_batch_size is not None:
        batch = int(inputs.shape[0])
        if batch % virtual_batch_size:
            raise ValueError(
                f"{who}: virtual_batch_size (={virtual_batch_size}) must divide the batch "
                f"size (={batch})"
            )
        grouped = inputs.reshape(-1, virtual_batch_size, *inputs.shape[1:])
        g_axes = tuple(a + 1 for a in reduce_axes)
        mean, var = moments(grouped, g_axes)
        gamma_g, beta_g = (None if p is None else p[None] for p in affine)
        y = normalize(grouped, mean, var, gamma_g, beta_g, eps).reshape(inputs.shape)
        ema_mean, ema_var = mean[0].reshape(channels), var[0].reshape(channels)
    else:
        mean, var = moments(inputs, reduce_axes, sync_statistics)
        y = normalize(inputs, mean, var, *affine, eps, centered=fused)
        ema_mean, ema_var = mean.reshape(channels), var.reshape(channels)
        if fused:
            n = inputs.size // channels
            ema_var = ema_var * (n / max(n - 1, 1))
    # Tensorpack's inference TowerContext freezes UPDATE_OPS, so a BN forced into training
    # there updates its EMA only with ema_update='internal' (control dependencies).
    if ema_update == "internal" or (ema_update != "skip" and is_training()):
        for name, old, new in (
            ("mean/EMA", moving_mean, ema_mean),
            ("variance/EMA", moving_var, ema_var),
        ):
            assign_sub_state(name, old, ema_delta(old, new, momentum), who=who)
    return y


@layer_register(use_scope=None)
def BNReLU(x: jax.Array, name: str | None = None) -> jax.Array:
    """``BatchNorm('bn', x)`` followed by ReLU, tensorpack's ``BNReLU``.

    Called without a name (e.g. as ``activation=tp.BNReLU``), its variables live in the
    calling scope: ``conv1/bn/gamma``. With a name, ``name/bn/gamma``.

    Variable names:
        ``bn/beta``, ``bn/gamma``, ``bn/mean/EMA``, ``bn/variance/EMA``.
    """
    del name  # tensorpack's deprecated output name; outputs here have no graph names
    return jax.nn.relu(BatchNorm("bn", x))
