"""TensorFlow's graph-level names in model code: ``tf.control_dependencies``, ``tf.group``,
``tf.no_op``, ``tf.Print`` / ``tf.print``, ``tf.check_numerics``, ``tf.map_fn`` and
``tf.clip_by_global_norm``; and the TF names that have no meaning in a traced JAX function
(``tf.Variable``, ``tf.Session``, ``tf.py_func``, ``tf.get_default_graph``), which raise with
what to write instead.

A JAX model is a pure function: every value it returns depends on what it was computed
from, and state updates (BatchNorm's EMA, ``tf.assign`` on non-trainable variables) go to
``new_state`` whatever the order of the code. So ``control_dependencies`` has nothing to
order, and ``group`` / ``no_op`` give ``None`` (an op with no output).
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from tpflax.compat.tf._common import tensor, unsupported
from tpflax.compat.tf._naming import named

_log = logging.getLogger("tpflax")

__all__ = [
    "Print",
    "Session",
    "Variable",
    "check_numerics",
    "clip_by_global_norm",
    "control_dependencies",
    "get_default_graph",
    "group",
    "map_fn",
    "no_op",
    "print",
    "py_func",
    "py_function",
    "test",
]


@contextlib.contextmanager
def control_dependencies(control_inputs: Any) -> Iterator[None]:
    """``tf.control_dependencies``: runs the block as written. In JAX, data flow orders the
    computation and tpflax applies state updates (``UPDATE_OPS``, ``tf.assign``) itself, so
    there is nothing to add (``tf.identity(x)`` inside stays ``x``).

    One difference: in TensorFlow a variable read inside the block sees the new value of a
    ``tf.assign`` among ``control_inputs`` (BEGAN's ``kt``); here the array read is the one
    ``tf.get_variable`` returned, the old value. A warning names the variable: use the value
    ``tf.assign`` returns instead."""
    from tpflax.compat.tf._scopes import assigned_variable

    for value in control_inputs if isinstance(control_inputs, list | tuple) else [control_inputs]:
        name = assigned_variable(value)
        if name is not None:
            _log.warning(
                "tf.control_dependencies([tf.assign(%s, ...)]): a read of '%s' inside the block "
                "sees its old value in tpflax, its new one in TensorFlow; use the value "
                "tf.assign returns (new = tf.assign(...); ... new * x)",
                name,
                name,
            )
    yield


def group(*inputs: Any, name: str | None = None) -> None:
    """``tf.group``: ``None`` (see :func:`control_dependencies`)."""
    del inputs, name


def no_op(name: str | None = None) -> None:
    """``tf.no_op``: ``None``."""
    del name


def Print(
    input_: Any,
    data: Any,
    message: str | None = None,
    first_n: Any = None,
    summarize: int | None = None,
    name: str | None = None,
) -> Any:
    """``tf.Print``: prints ``message`` and ``data`` each time the model runs
    (``jax.debug.print``, also under ``jit``) and returns ``input_``."""
    del first_n, summarize
    values = [tensor(d) for d in data]
    fmt = (message or "") + " ".join("{}" for _ in values)
    jax.debug.print(fmt, *values)
    return named(tensor(input_), name)


def print(*inputs: Any, sep: str = " ", end: str = "\n", **kwargs: Any) -> None:
    """``tf.print``: prints ``inputs`` each time the model runs (``jax.debug.print``);
    strings print as they are."""
    kwargs.pop("output_stream", None)
    kwargs.pop("summarize", None)
    kwargs.pop("name", None)
    if kwargs:
        raise TypeError(f"tf.print: unknown arguments {sorted(kwargs)}")
    parts, values = [], []
    for x in inputs:
        if isinstance(x, str):
            parts.append(x.replace("{", "{{").replace("}", "}}"))
        else:
            parts.append("{}")
            values.append(tensor(x))
    jax.debug.print(sep.join(parts) + end.rstrip("\n"), *values)


def check_numerics(tensor_: Any, message: str, name: str | None = None) -> Any:
    """``tf.check_numerics``: ``tensor_`` itself, printing ``message`` when it holds a NaN or
    an infinity (``jax.debug.print``; an XLA program cannot stop itself; turn on
    ``jax_debug_nans`` to raise)."""
    x = tensor(tensor_)
    bad = jnp.logical_not(jnp.all(jnp.isfinite(x)))
    jax.lax.cond(
        bad,
        lambda: jax.debug.print("tf.check_numerics: {} (NaN or Inf found)", message),
        lambda: None,
    )
    return named(x, name)


def map_fn(
    fn: Callable[..., Any],
    elems: Any,
    dtype: Any = None,
    parallel_iterations: Any = None,
    back_prop: bool = True,
    swap_memory: bool = False,
    infer_shape: bool = True,
    name: str | None = None,
    fn_output_signature: Any = None,
) -> Any:
    """``tf.map_fn``: ``fn`` over the first axis of ``elems`` (a tensor or a nest of them),
    with ``lax.map``. ``fn`` must not create variables or draw random numbers (its tracing is
    separate from the model's)."""
    del dtype, parallel_iterations, back_prop, swap_memory, infer_shape, fn_output_signature
    xs = jax.tree.map(tensor, elems)
    return named(lax.map(fn, xs), name)


def clip_by_global_norm(
    t_list: Any, clip_norm: Any, use_norm: Any = None, name: str | None = None
) -> tuple[list[Any], jax.Array]:
    """``tf.clip_by_global_norm``: each tensor times ``clip_norm / max(global_norm,
    clip_norm)``; returns the clipped list and the global norm (``None`` entries stay
    ``None``)."""
    del name
    values = [None if t is None else tensor(t) for t in t_list]
    present = [v for v in values if v is not None]
    if use_norm is None:
        total = sum((jnp.sum(jnp.square(v.astype(jnp.float32))) for v in present), jnp.zeros(()))
        use_norm = jnp.sqrt(total)
    norm = tensor(use_norm).astype(jnp.float32)
    clip = tensor(clip_norm).astype(jnp.float32)
    scale = clip * jnp.minimum(1.0 / norm, 1.0 / clip)
    clipped = [None if v is None else (v * scale.astype(v.dtype)) for v in values]
    return clipped, norm


def Variable(*args: Any, **kwargs: Any) -> Any:
    """``tf.Variable``: raises (a tpflax model's variables have names and live in its
    params/state)."""
    raise unsupported(
        "tf.Variable",
        "a tpflax model's variables are created by name so that init can make them and apply "
        "can read them",
        "tf.get_variable(name, shape, initializer=...) (trainable=False for state)",
    )


def Session(*args: Any, **kwargs: Any) -> Any:
    """``tf.Session``: raises (there is no graph to run)."""
    raise unsupported(
        "tf.Session",
        "a tpflax model is a function, not a graph",
        "model = tp.transform(fn); params, state = model.init(key, x); "
        "model.apply(params, state, x) (jax.jit(model.apply) to compile)",
    )


def get_default_graph() -> Any:
    """``tf.get_default_graph``: raises (there is no graph)."""
    raise unsupported(
        "tf.get_default_graph",
        "a tpflax model is a function, not a graph",
        "fetch tensors by name with capture=[...] (tf.identity(x, name=...)); read variables "
        "with tf.trainable_variables() / tf.global_variables()",
    )


def py_func(*args: Any, **kwargs: Any) -> Any:
    """``tf.py_func``: raises (XLA cannot call Python while running the model)."""
    raise unsupported(
        "tf.py_func / tf.py_function",
        "a jit-compiled model cannot call back into Python as a graph op",
        "jax.pure_callback(f, jax.ShapeDtypeStruct(shape, dtype), x) (no gradient), or "
        "write f with jax.numpy",
    )


py_function = py_func


def _gpu_available(cuda_only: bool = False, min_cuda_compute_capability: Any = None) -> bool:
    """``tf.test.is_gpu_available``: whether JAX's default backend is a GPU."""
    del cuda_only, min_cuda_compute_capability
    return jax.default_backend() == "gpu"


# ``tf.test``: what model code asks of it (cifar-convnet picks its data format by it).
test = types.SimpleNamespace(
    is_gpu_available=_gpu_available,
    is_built_with_cuda=lambda: jax.default_backend() == "gpu",
    is_built_with_gpu_support=lambda: jax.default_backend() == "gpu",
)
