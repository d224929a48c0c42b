"""A convolution's epilogue in oneDNN's pass: BatchNorm's inference affine and ReLU fused.

``Conv2D('conv1', x, 64, 3, activation=tp.BNReLU)`` in inference computes the convolution,
then BatchNorm's ``(y - mean) * inv + beta`` and the ReLU, each a pass over the output. Where
the convolution runs on oneDNN without being differentiated (``tp.conv_impl``: its inference
lowering), oneDNN can apply those steps to each result before storing it (post-ops), which
saves the passes (ResNet-50 inference spent 10% of its time in them; fused, it ran 1.02-1.10x
faster, benchmarks/RESULTS.md).

How. The ``Conv2D`` layer offers its output to its own ``activation`` (:func:`offered`). Inside,
when BatchNorm in inference normalizes exactly that output (:func:`normalize`), or a ReLU
takes it (:func:`relu`), the convolution is issued again with the steps so far as post-ops,
and its result is offered in turn. The earlier calls' results are then unused, and XLA drops
them (an FFI call without side effects): one convolution runs. The values are the same sums
and the same float32 steps in the same order (TensorFlow's fused BatchNorm rounding,
:func:`tpflax._src.norm_ops.normalize_steps`): ResNet-50's logits came out bitwise equal
(oneDNN may contract a multiply and an add, one rounding, which tests/test_epilogue.py allows).

It applies only where nothing else can see the unfused output, so that dropping it is
certain: under ``jax.jit`` (traced, not eager: eagerly nothing is dropped), not under
``vmap`` or a derivative's tracing, to float32 per-channel operands of the same trace.
Differentiated, a fused call takes its derivative from the unfused steps, the convolution's
by the training table, as without fusion. An ``activation`` that uses its input besides
passing it to BatchNorm or a ReLU still gets the right values, at the cost of running the
convolution twice; capturing the intermediate BatchNorm output of ``BNReLU``
(``capture=['conv1/bn/output']``) does the same.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src import layout, onednn
from tpflax._src.norm_ops import Steps, apply_steps

try:  # the tracer of jax.jit's tracing; without it nothing is fused
    from jax._src.interpreters.partial_eval import DynamicJaxprTracer as _JitTracer
except ImportError:  # pragma: no cover - a JAX that moved it
    _JitTracer = None  # type: ignore[assignment,misc]

RELU: Steps = (("relu", None),)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to compute a convolution's output again with post-ops.

    Attributes:
        x: the convolution's input, in ``data_format``.
        W: its ``[kh, kw, C // groups, filters]`` weights.
        options: ``onednn.conv``'s keywords (``strides``, ``padding``, ``dilation``,
            ``groups``).
        data_format: ``'NHWC'`` or ``'NCHW'``.
        conv: the unfused convolution ``(x, W) -> y`` for derivatives (the ``conv2d`` op).
        steps: the steps so far, on the convolution's float32 output; operands ``[O]``.
    """

    x: jax.Array
    W: jax.Array
    options: dict[str, Any]
    data_format: str
    conv: Callable[[jax.Array, jax.Array], jax.Array]
    steps: tuple[tuple[str, jax.Array | None], ...] = ()

    def run(self) -> jax.Array:
        """The convolution and its steps, in one oneDNN call."""
        post = tuple(op for op, _ in self.steps)
        axis = 1 if self.data_format == "NCHW" else 3

        def reference(x: jax.Array, W: jax.Array, *vectors: jax.Array) -> jax.Array:
            rest = iter(vectors)
            steps = tuple(
                (op, None if op == "relu" else layout.per_channel(next(rest), 4, axis))
                for op in post
            )
            return apply_steps(self.conv(x, W), steps)

        @jax.custom_jvp
        def fused(x: jax.Array, W: jax.Array, *vectors: jax.Array) -> jax.Array:
            nhwc = x if self.data_format == "NHWC" else x.transpose(0, 2, 3, 1)
            y = onednn.conv_post(nhwc, W, post, vectors, **self.options)
            return y if self.data_format == "NHWC" else y.transpose(0, 3, 1, 2)

        @fused.defjvp
        def fused_jvp(primals: tuple, tangents: tuple) -> tuple:
            return jax.jvp(reference, primals, tangents)

        vectors = tuple(v for op, v in self.steps if op != "relu")
        return fused(self.x, self.W, *vectors)


_OFFER: contextvars.ContextVar[tuple[jax.Array, Recipe] | None] = contextvars.ContextVar(
    "tpflax_epilogue", default=None
)
_ENABLED = contextvars.ContextVar("tpflax_epilogue_enabled", default=True)


@contextlib.contextmanager
def fusing(enabled: bool) -> Iterator[None]:
    """Turns the fusion on or off for functions traced inside (benchmarks/vs_tensorpack.py
    measures both)."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def _staged(y: Any) -> bool:
    return _JitTracer is not None and isinstance(y, _JitTracer)


@contextlib.contextmanager
def offered(y: jax.Array, recipe: Recipe | None) -> Iterator[None]:
    """While open, :func:`normalize` and :func:`relu` on ``y`` (and then on their own fused
    results) fuse into ``recipe``'s convolution. ``None`` (or an eager ``y``) offers nothing."""
    if recipe is None or not _staged(y) or not _ENABLED.get():
        token = _OFFER.set(None)
    else:
        token = _OFFER.set((y, recipe))
    try:
        yield
    finally:
        _OFFER.reset(token)


def _fuse(x: jax.Array, steps: Steps) -> jax.Array | None:
    """The offered convolution with ``steps`` appended, or ``None`` when ``x`` is not the
    offered output or an operand is not a float32 per-channel array of the same trace."""
    offer = _OFFER.get()
    if offer is None or offer[0] is not x:
        return None
    recipe = offer[1]
    channels = x.shape[1] if recipe.data_format == "NCHW" else x.shape[3]
    axis = 1 if recipe.data_format == "NCHW" else 3
    trace = x._trace  # type: ignore[attr-defined]
    added = []
    for op, operand in steps:
        if operand is None:
            added.append((op, None))
            continue
        if (
            operand.dtype != jnp.float32
            or operand.shape != layout.channel_shape(4, axis, channels)
            or (isinstance(operand, jax.core.Tracer) and operand._trace is not trace)
        ):
            return None
        added.append((op, operand.reshape(channels)))
    recipe = dataclasses.replace(recipe, steps=recipe.steps + tuple(added))
    y = recipe.run()
    _OFFER.set((y, recipe))
    return y


def normalize(x: jax.Array, steps: Steps) -> jax.Array:
    """``norm_ops.normalize``'s steps on ``x`` (in float32, returned in ``x``'s dtype): fused
    into the convolution when ``x`` is the offered output."""
    fused = _fuse(x, steps)
    if fused is not None:
        return fused
    return apply_steps(x.astype(jnp.float32), steps).astype(x.dtype)


def relu(x: jax.Array) -> jax.Array:
    """``jax.nn.relu(x)``: fused into the convolution when ``x`` is the offered output."""
    fused = _fuse(x, RELU)
    return jax.nn.relu(x) if fused is None else fused
