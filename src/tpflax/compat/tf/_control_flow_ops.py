"""TensorFlow's control flow in model code: ``tf.cond`` and ``tf.while_loop`` on
``jnp.where``/``lax``.

A condition known while tracing (a Python bool, a NumPy value, a concrete array) runs one
branch, as Python would. A traced condition runs both branches and selects the result
(``jnp.where``), so that layers and random ops inside may create variables and draw keys as
they do anywhere in the model; where the branch not taken gives NaN or inf, its gradient can
still poison the result's (guard the input, as with ``jnp.where``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from tpflax.compat.tf._common import is_traced, tensor


def cond(
    pred: Any,
    true_fn: Callable[[], Any] | None = None,
    false_fn: Callable[[], Any] | None = None,
    strict: bool = False,
    name: str | None = None,
    fn1: Callable[[], Any] | None = None,
    fn2: Callable[[], Any] | None = None,
) -> Any:
    """``tf.cond`` (TF1: also ``fn1``/``fn2``): one branch for a static ``pred``, both and
    a select for a traced one."""
    on_true, on_false = true_fn or fn1, false_fn or fn2
    if on_true is None or on_false is None:
        raise ValueError("tf.cond: give true_fn and false_fn")
    if not is_traced(pred):
        return on_true() if bool(jnp.asarray(pred)) else on_false()
    p = tensor(pred)
    a, b = on_true(), on_false()
    return jax.tree.map(lambda x, y: jnp.where(p, tensor(x), tensor(y)), a, b)


def while_loop(
    cond: Callable[..., Any],
    body: Callable[..., Any],
    loop_vars: Any,
    shape_invariants: Any = None,
    parallel_iterations: int = 10,
    back_prop: bool = True,
    swap_memory: bool = False,
    name: str | None = None,
    maximum_iterations: Any = None,
    return_same_structure: bool = False,
) -> Any:
    """``tf.while_loop`` on ``lax``: with a static ``maximum_iterations`` a ``lax.scan`` that
    stops updating once ``cond`` fails (differentiable, as TF's loop); without, a
    ``lax.while_loop`` (no reverse-mode gradient). ``cond`` and ``body`` must not create
    variables or draw random numbers (their tracing is separate from the model's)."""
    bare = not isinstance(loop_vars, list | tuple)  # one tensor, given as itself
    if bare:
        loop_vars = [loop_vars]
    single = len(loop_vars) == 1
    init = tuple(jax.tree.map(tensor, list(loop_vars)))

    def step_body(v: tuple) -> tuple:
        out = body(*v)
        out = tuple(out) if isinstance(out, list | tuple) else (out,)
        return tuple(jax.tree.map(lambda o, x: tensor(o).astype(x.dtype), out, v))

    if maximum_iterations is None:
        result = lax.while_loop(lambda v: jnp.asarray(cond(*v)), step_body, init)
    else:
        n = int(maximum_iterations)

        def scan_step(v: tuple, _: Any) -> tuple:
            go = jnp.asarray(cond(*v))
            new = step_body(v)
            return jax.tree.map(lambda a, b: jnp.where(go, a, b), new, v), None

        result, _ = lax.scan(scan_step, init, None, length=n)
    if bare or (single and not return_same_structure):
        return result[0]
    return list(result)


__all__ = ["cond", "while_loop"]
