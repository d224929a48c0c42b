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

On CPU with tpflax's native library, the fused kernel's training path runs on oneDNN's batch
normalization, the kernel TensorFlow itself runs there (``tp.conv_impl``: 'auto' for large
inputs, measured; tpflax/_src/onednn_batch_norm.py); elsewhere XLA computes it from
:func:`moments` and :func:`normalize`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tpflax._src import conv_impl, epilogue, initializers, layout, onednn_batch_norm, utils
from tpflax._src.frame import Initializer, assign_sub_state, get_variable, is_training
from tpflax._src.norm_ops import (
    NORM_ALIASES,
    affine_variables,
    ema_delta,
    moments,
    normalize,
    normalize_steps,
)
from tpflax._src.registry import layer_context, layer_register

_EMA_MODES = ("default", "collection", "internal", "skip")


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
    beta_initializer: Initializer | None = None,
    gamma_initializer: Initializer | None = None,
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
    args = _check_arguments(
        inputs,
        axis,
        training,
        epsilon,
        ema_update,
        sync_statistics,
        virtual_batch_size,
        data_format,
        who,
    )
    channels, ndim = args.channels, inputs.ndim
    gamma, beta = affine_variables(
        center, scale, channels, gamma_initializer, who, beta_initializer=beta_initializer
    )
    moving_mean = get_variable(
        "mean/EMA", (channels,), initializers.zeros, trainable=False, who=who
    )
    moving_var = get_variable(
        "variance/EMA", (channels,), initializers.ones, trainable=False, who=who
    )
    affine = (
        layout.per_channel(gamma, ndim, args.axis),
        layout.per_channel(beta, ndim, args.axis),
    )
    if not args.training:  # fused into the convolution before it where it can be (epilogue)
        steps = normalize_steps(
            layout.per_channel(moving_mean, ndim, args.axis),
            layout.per_channel(moving_var, ndim, args.axis),
            *affine,
            args.epsilon,
            centered=ndim == 4,  # tensorpack's own paths are for batch statistics only
        )
        return epilogue.normalize(inputs, steps)
    y, ema_mean, ema_var = _batch_normalize(inputs, affine, args, sync_statistics, who)
    # Tensorpack's inference TowerContext freezes UPDATE_OPS, so a BN forced into training
    # there updates its EMA only with ema_update='internal' (control dependencies).
    if ema_update == "internal" or (ema_update != "skip" and is_training()):
        for name, old, new in (
            ("mean/EMA", moving_mean, ema_mean),
            ("variance/EMA", moving_var, ema_var),
        ):
            delta = ema_delta(old, new, momentum, fused=args.fused)
            assign_sub_state(name, old, delta, who=who)
    return y


@dataclasses.dataclass(frozen=True)
class _Arguments:
    """BatchNorm's checked arguments."""

    axis: int
    channels: int
    training: bool
    epsilon: float
    virtual_batch_size: int | None
    fused: bool  # TensorFlow's fused kernel: 4-D, no sync_statistics, no virtual batches


def _check_arguments(
    inputs: jax.Array,
    axis: int | None,
    training: Any,
    epsilon: Any,
    ema_update: Any,
    sync_statistics: Any,
    virtual_batch_size: Any,
    data_format: str,
    who: str,
) -> _Arguments:
    utils.check_rank(inputs, (2, 4), who=who)
    utils.check_floating(inputs, who=who)
    training = _training_flag(training, who)
    ndim = inputs.ndim
    if axis is None:
        axis = layout.channel_axis(ndim, data_format, who=who)
    else:
        utils.data_format(data_format, who=who)
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
    own_path = sync_statistics is not None or virtual_batch_size is not None
    return _Arguments(
        axis, channels, training, float(epsilon), virtual_batch_size, ndim == 4 and not own_path
    )


def _batch_normalize(
    inputs: jax.Array,
    affine: tuple[jax.Array | None, jax.Array | None],
    args: _Arguments,
    sync_statistics: Any,
    who: str,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training: ``(output, mean, variance)``, the statistics as the EMA takes them (``[C]``;
    the fused kernel's variance unbiased, Ghost BN's from the first virtual batch)."""
    reduce_axes = tuple(a for a in range(inputs.ndim) if a != args.axis)
    if any(inputs.shape[a] == 0 for a in reduce_axes):
        raise ValueError(
            f"{who}: batch statistics need at least one value per channel; got an input of "
            f"shape {list(inputs.shape)} in training"
        )
    channels, eps, vbs = args.channels, args.epsilon, args.virtual_batch_size
    if vbs is not None:
        batch = int(inputs.shape[0])
        if batch % vbs:
            raise ValueError(
                f"{who}: virtual_batch_size (={vbs}) must divide the batch size (={batch})"
            )
        grouped = inputs.reshape(-1, vbs, *inputs.shape[1:])
        mean, var = moments(grouped, tuple(a + 1 for a in reduce_axes))
        gamma_g, beta_g = (None if p is None else p[None] for p in affine)
        y = normalize(grouped, mean, var, gamma_g, beta_g, eps).reshape(inputs.shape)
        return y, mean[0].reshape(channels), var[0].reshape(channels)
    if args.fused and conv_impl.use_onednn_batch_norm(inputs, args.axis):
        gamma, beta = (
            jnp.full((channels,), fill, jnp.float32) if p is None else p.reshape(channels)
            for p, fill in zip(affine, (1.0, 0.0), strict=True)
        )
        y, mean, var = onednn_batch_norm.batch_norm(
            inputs,
            gamma,
            beta,
            eps,
            nchw=args.axis == 1,
            xla_unless_differentiated=conv_impl.undifferentiated_batch_norm_on_xla(),
        )
    else:
        mean, var = moments(inputs, reduce_axes, sync_statistics)
        y = normalize(inputs, mean, var, *affine, eps, centered=args.fused)
    ema_var = var.reshape(channels)
    if args.fused:
        n = inputs.size // channels
        ema_var = ema_var * (n / max(n - 1, 1))
    return y, mean.reshape(channels), ema_var


@layer_register(use_scope=None)
def BNReLU(x: jax.Array, name: str | None = None) -> jax.Array:
    """``BatchNorm('bn', x)`` followed by ReLU, tensorpack's ``BNReLU``.

    Called without a name (e.g. as ``activation=tp.BNReLU``), its variables live in the
    calling scope: ``conv1/bn/gamma``. With a name, ``name/bn/gamma``.

    Variable names:
        ``bn/beta``, ``bn/gamma``, ``bn/mean/EMA``, ``bn/variance/EMA``.
    """
    del name  # tensorpack's deprecated output name; outputs here have no graph names
    return epilogue.relu(BatchNorm("bn", x))
