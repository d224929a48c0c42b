"""``tf.distributions`` (TF1): ``Categorical`` and ``Normal`` with TensorFlow's formulas
(``log_prob``, ``prob``, ``entropy``, ``mean``, ``mode``, ``stddev``), and ``sample``
drawing from the model's rng as ``tf.random_*`` do.

The methods' ``name=`` opens a name scope in TensorFlow (``cat/cat_entropy/Neg``); tpflax
does not record those names, so fetch or summarize such a result through
``tf.identity(x, name=...)``. ``validate_args`` and ``allow_nan_stats`` are accepted; the
values are not checked (XLA cannot raise on data).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src.frame import next_rng_key
from tpflax.compat.tf._common import as_dtype, static_ints, tensor

__all__ = ["Categorical", "Normal"]


def _tf_broadcasting(method: Callable[..., Any]) -> Callable[..., Any]:
    """Runs ``method`` with TensorFlow's broadcasting (ranks promoted), whatever
    ``jax_numpy_rank_promotion`` says, as the other compat ops do."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with jax.numpy_rank_promotion("allow"):
            return method(*args, **kwargs)

    return wrapper


def _sample_shape(sample_shape: Any, who: str) -> tuple[int, ...]:
    if isinstance(sample_shape, int) or (hasattr(sample_shape, "ndim") and sample_shape.ndim == 0):
        return (int(sample_shape),)
    return tuple(static_ints(list(sample_shape), who))


class _Distribution:
    """What every distribution derives from its ``log_prob``."""

    def log_prob(self, value: Any, name: str = "log_prob") -> jax.Array:
        raise NotImplementedError

    @_tf_broadcasting
    def prob(self, value: Any, name: str = "prob") -> jax.Array:
        """``p(value)``."""
        return jnp.exp(self.log_prob(value, name))


class Categorical(_Distribution):
    """``tf.distributions.Categorical(logits=None, probs=None, dtype=tf.int32, ...)``: a
    distribution over ``0 .. K-1`` per batch element (``logits``/``probs`` ``[..., K]``)."""

    def __init__(
        self,
        logits: Any = None,
        probs: Any = None,
        dtype: Any = jnp.int32,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "Categorical",
    ) -> None:
        del validate_args, allow_nan_stats
        if (logits is None) == (probs is None):
            raise ValueError(f"tf.distributions.Categorical({name!r}): give logits or probs")
        given = tensor(logits if logits is not None else probs)
        if given.ndim < 1:
            raise ValueError(
                f"tf.distributions.Categorical({name!r}): logits/probs need a class axis; got "
                f"shape {list(given.shape)}"
            )
        if logits is not None:
            self.logits = given
            self.probs = jax.nn.softmax(self.logits, axis=-1)
        else:
            self.probs = given
            self.logits = jnp.log(self.probs)
        self.dtype = as_dtype(dtype)
        self.name = name

    @property
    def event_size(self) -> int:
        """The number of classes ``K``."""
        return int(self.logits.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The shape of the batch of distributions (``logits``' without the class axis)."""
        return tuple(self.logits.shape[:-1])

    @_tf_broadcasting
    def log_prob(self, value: Any, name: str = "log_prob") -> jax.Array:
        """``log p(value)``: TensorFlow's negated sparse softmax cross entropy, ``value``
        broadcast against the batch."""
        del name
        k = tensor(value).astype(jnp.int32)
        shape = jnp.broadcast_shapes(k.shape, self.batch_shape)
        logits = jnp.broadcast_to(self.logits, (*shape, self.event_size))
        k = jnp.broadcast_to(k, shape)
        log_softmax = jax.nn.log_softmax(logits, axis=-1)
        return jnp.take_along_axis(log_softmax, k[..., None], axis=-1)[..., 0]

    @_tf_broadcasting
    def entropy(self, name: str = "entropy") -> jax.Array:
        """``-sum(probs * log_softmax(logits))`` over the classes."""
        del name
        return -jnp.sum(jax.nn.log_softmax(self.logits, axis=-1) * self.probs, axis=-1)

    @_tf_broadcasting
    def mode(self, name: str = "mode") -> jax.Array:
        """The most likely class."""
        del name
        return jnp.argmax(self.logits, axis=-1).astype(self.dtype)

    @_tf_broadcasting
    def sample(self, sample_shape: Any = (), seed: Any = None, name: str = "sample") -> jax.Array:
        """Classes drawn from the model's rng: shape ``sample_shape + batch_shape``
        (``seed=`` is ignored, as for ``tf.random_*``)."""
        del seed, name
        shape = _sample_shape(sample_shape, "Categorical.sample")
        key = next_rng_key("tf.distributions.Categorical.sample")
        draws = jax.random.categorical(key, self.logits, axis=-1, shape=(*shape, *self.batch_shape))
        return draws.astype(self.dtype)


class Normal(_Distribution):
    """``tf.distributions.Normal(loc, scale, ...)``: TensorFlow's formulas, ``z = (x - loc) /
    scale``, ``log_prob = -z**2 / 2 - (log(2 pi) / 2 + log(scale))``."""

    def __init__(
        self,
        loc: Any,
        scale: Any,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "Normal",
    ) -> None:
        del validate_args, allow_nan_stats
        self.loc = tensor(loc)
        self.scale = tensor(scale).astype(self.loc.dtype)
        self.name = name

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The broadcast shape of ``loc`` and ``scale``."""
        return tuple(jnp.broadcast_shapes(self.loc.shape, self.scale.shape))

    @_tf_broadcasting
    def log_prob(self, value: Any, name: str = "log_prob") -> jax.Array:
        """``log p(value)``."""
        del name
        z = (tensor(value) - self.loc) / self.scale
        return -0.5 * jnp.square(z) - (0.5 * math.log(2.0 * math.pi) + jnp.log(self.scale))

    @_tf_broadcasting
    def entropy(self, name: str = "entropy") -> jax.Array:
        """``log(2 pi e) / 2 + log(scale)``, over the batch shape."""
        del name
        scale = self.scale * jnp.ones_like(self.loc)
        return 0.5 * math.log(2.0 * math.pi * math.e) + jnp.log(scale)

    @_tf_broadcasting
    def mean(self, name: str = "mean") -> jax.Array:
        """``loc`` over the batch shape."""
        del name
        return self.loc * jnp.ones_like(self.scale)

    @_tf_broadcasting
    def mode(self, name: str = "mode") -> jax.Array:
        """The mean."""
        return self.mean(name)

    @_tf_broadcasting
    def stddev(self, name: str = "stddev") -> jax.Array:
        """``scale`` over the batch shape."""
        del name
        return self.scale * jnp.ones_like(self.loc)

    @_tf_broadcasting
    def variance(self, name: str = "variance") -> jax.Array:
        """``scale ** 2`` over the batch shape."""
        return jnp.square(self.stddev(name))

    @_tf_broadcasting
    def sample(self, sample_shape: Any = (), seed: Any = None, name: str = "sample") -> jax.Array:
        """``loc + scale * N(0, 1)`` from the model's rng: shape ``sample_shape +
        batch_shape``."""
        del seed, name
        shape = (*_sample_shape(sample_shape, "Normal.sample"), *self.batch_shape)
        noise = jax.random.normal(
            next_rng_key("tf.distributions.Normal.sample"), shape, self.loc.dtype
        )
        return self.loc + self.scale * noise
