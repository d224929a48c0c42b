"""``tf.gradients`` on a traced model: the part of the graph from ``xs`` to ``ys``, replayed as
a function of ``xs`` and differentiated with ``jax.vjp``.

TensorFlow differentiates the graph it has built. Under ``jax.jit`` the model code builds a
graph too: every value is a tracer that knows the equation that made it (its ``parent``) and
that equation's inputs. ``gradients`` walks those links back from ``ys``, keeps the equations
that depend on ``xs``, and runs them again on new inputs inside ``jax.vjp``; every other value
(the variables, the data) enters as it is. The result is part of the same traced program, so
an outer ``jax.grad`` (the optimizer's) differentiates through it, as TensorFlow's
second-order gradients do (Improved-WGAN's gradient penalty).

``tp.transform``'s ``init`` always runs model code in such a trace. When ``apply`` runs it
outside one (eagerly, or under ``jax.grad`` or ``jax.vmap``), ``tf.gradients`` raises
``NeedsGraph`` and ``apply`` runs that model again inside ``jax.jit``, then and from then on.
The walk reads JAX's tracing internals (``DynamicJaxprTracer.parent``, ``TracingEqn``); a JAX
whose tracers lack them makes ``tf.gradients`` raise rather than guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax._src import core
from jax._src.interpreters import partial_eval as pe

from tpflax._src.frame import maybe_frame
from tpflax._src.transform import NeedsGraph
from tpflax.compat.tf._common import tensor


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _graph_tracer(value: Any, what: str, trace: Any) -> Any:
    """``value`` as a tracer of the running graph ``trace``, or a clear error; in a model
    that ``apply`` runs outside a graph, :class:`NeedsGraph` (``apply`` runs it again
    traced)."""
    graph = isinstance(value, pe.DynamicJaxprTracer) and hasattr(value, "parent")
    frame = maybe_frame()
    if not graph and isinstance(value, jax.Array) and frame is not None and frame.mode == "apply":
        raise NeedsGraph(f"tf.gradients: {what} is not a tensor of a traced graph")
    if not graph:
        raise NotImplementedError(
            f"tf.gradients: {what} is not a tensor of a traced graph (got "
            f"{type(value).__name__}). It differentiates the graph jax.jit traces: call it "
            "inside model code run by tp.transform's apply or init (which trace it when it "
            "does) or inside a function under jax.jit; elsewhere write the part from xs to ys "
            "as a function and take jax.grad of it"
        )
    if value._trace is not trace:
        raise NotImplementedError(
            f"tf.gradients: {what} belongs to another trace than the running model (a "
            "tensor from outside a jax.jit function, or from a finished call); give it "
            "tensors computed in the same model call"
        )
    return value


def _equations(ys: Sequence[Any], xs: Sequence[Any]) -> list[Any]:
    """The equations on a path from ``xs`` to ``ys``, in the order they ran."""
    x_vars = {id(x.val) for x in xs}
    depends: dict[int, bool] = {}  # id(var) -> whether it depends on xs
    order: list[Any] = []  # equations that depend on xs, inputs before users
    seen: set[int] = set()
    # Iterative post-order walk: a deep model's graph is deeper than Python's recursion limit.
    stack: list[tuple[Any, bool]] = [(y, False) for y in ys]
    while stack:
        tracer, expanded = stack.pop()
        var = id(tracer.val)
        if var in depends and not expanded:
            continue
        if var in x_vars:
            depends[var] = True
            continue
        eqn = tracer.parent
        if eqn is None:
            depends[var] = False
            continue
        if not expanded:
            stack.append((tracer, True))
            stack.extend((t, False) for t in eqn.in_tracers if id(t.val) not in depends)
            continue
        hit = any(depends.get(id(t.val), False) for t in eqn.in_tracers)
        for outvar in eqn.outvars:
            depends[id(outvar)] = hit
        if hit and id(eqn) not in seen:
            seen.add(id(eqn))
            order.append(eqn)
    return order


def _replay(eqns: Sequence[Any], xs: Sequence[Any], ys: Sequence[Any]) -> Any:
    """A function of new ``xs`` giving ``ys``: ``eqns`` bound again on the new values."""

    def f(*new_xs: Any) -> tuple[Any, ...]:
        env: dict[int, Any] = {id(x.val): v for x, v in zip(xs, new_xs, strict=True)}
        for eqn in eqns:
            args = [env.get(id(t.val), t) for t in eqn.in_tracers]
            params = eqn.primitive.get_bind_params(eqn.params)
            subfuns: tuple = ()
            if isinstance(params, tuple):  # JAX before 0.7: (subfuns, params)
                subfuns, params = params
            with eqn.ctx.manager:
                out = eqn.primitive.bind(*subfuns, *args, **params)
            outs = out if eqn.primitive.multiple_results else [out]
            for var, value in zip(eqn.outvars, outs, strict=True):
                env[id(var)] = value
        return tuple(env.get(id(y.val), y) for y in ys)

    return f


def gradients(
    ys: Any,
    xs: Any,
    grad_ys: Any = None,
    name: str = "gradients",
    colocate_gradients_with_ops: bool = False,
    gate_gradients: bool = False,
    aggregation_method: Any = None,
    stop_gradients: Any = None,
    unconnected_gradients: str = "none",
) -> list[Any]:
    """``tf.gradients(ys, xs, grad_ys=None)``: the derivatives of ``sum(ys)`` (each weighted by
    its ``grad_ys``, ones by default) with respect to each of ``xs``, as a list.

    Differentiates the graph traced so far (see the module docstring): ``ys`` and ``xs`` are
    tensors of the running model, ``xs`` computed before ``ys``. An ``x`` that ``ys`` does not
    depend on gets ``None`` (``unconnected_gradients='zero'``: zeros), as in TensorFlow.
    ``stop_gradients`` is not supported (``tf.stop_gradient`` in the model is).
    ``colocate_gradients_with_ops``, ``gate_gradients`` and ``aggregation_method`` only
    place or schedule TensorFlow's ops and are accepted and ignored.

    Raises:
        NotImplementedError: outside a traced graph, or with ``stop_gradients``.
    """
    del name, colocate_gradients_with_ops, gate_gradients, aggregation_method
    if stop_gradients is not None:
        raise NotImplementedError(
            "tf.gradients: stop_gradients= is not supported; apply tf.stop_gradient to those "
            "tensors in the model instead"
        )
    if unconnected_gradients not in ("none", "zero"):
        raise ValueError(
            "tf.gradients: unconnected_gradients must be 'none' or 'zero'; "
            f"got {unconnected_gradients!r}"
        )
    y_list, x_list = _as_list(ys), _as_list(xs)
    trace = core.trace_ctx.trace
    y_list = [_graph_tracer(y, f"ys[{i}]", trace) for i, y in enumerate(y_list)]
    x_list = [_graph_tracer(x, f"xs[{i}]", trace) for i, x in enumerate(x_list)]
    if grad_ys is None:
        cotangents = [jnp.ones(y.shape, y.dtype) for y in y_list]
    else:
        given = _as_list(grad_ys)
        if len(given) != len(y_list):
            raise ValueError(
                f"tf.gradients: {len(given)} grad_ys for {len(y_list)} ys; give one per y"
            )
        cotangents = [
            jnp.ones(y.shape, y.dtype) if g is None else jnp.broadcast_to(tensor(g), y.shape)
            for g, y in zip(given, y_list, strict=True)
        ]
    eqns = _equations(y_list, x_list)
    outs, pullback = jax.vjp(_replay(eqns, x_list, y_list), *x_list)
    # Every equation the walk kept lies on a path to ys, so an x reaches ys exactly when it
    # is one of them or an input of one of them (TensorFlow gives None for the others).
    used = {id(t.val) for eqn in eqns for t in eqn.in_tracers} | {id(y.val) for y in y_list}
    connected = [id(x.val) in used for x in x_list]
    grads = pullback(tuple(c.astype(o.dtype) for c, o in zip(cotangents, outs, strict=True)))
    return [
        g if ok else (jnp.zeros_like(x) if unconnected_gradients == "zero" else None)
        for g, x, ok in zip(grads, x_list, connected, strict=True)
    ]


__all__ = ["gradients"]
