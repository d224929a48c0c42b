"""Tensorpack's module paths under ``tpflax.compat.tensorpack``, so that model code's imports
port by one rule (``tensorpack`` -> ``tpflax.compat.tensorpack``):
``from tpflax.compat.tensorpack.tfutils.summary import add_moving_summary``,
``from tpflax.compat.tensorpack.tfutils import summary, gradproc, optimizer``,
``from tpflax.compat.tensorpack.models import regularize_cost``,
``from tpflax.compat.tensorpack.utils import logger``, ...

Each path is a module holding the names tpflax.compat has from tensorpack's module of that
path (registered in ``sys.modules``: they are views, the code lives where it always did).
Also here: tensorpack's ``logger``, ``memoized`` / ``memoized_method``, ``rms`` /
``print_stat``, ``cached_name_scope``, ``get_global_step_var`` and ``get_tf_version_tuple``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp

from tpflax._src.frame import current_frame
from tpflax.compat import tf as _tf

_log = logging.getLogger("tpflax")

# ------------------------------------------------------------------ tensorpack.utils


class _Logger(types.ModuleType):
    """Tensorpack's ``logger`` (``from tensorpack.utils import logger``): its functions on
    the ``tpflax`` logger; ``set_logger_dir`` and ``auto_set_dir`` are training scripts'
    business, not model code's, and raise."""

    def __init__(self, name: str) -> None:
        super().__init__(name, self.__doc__)
        for level in ("debug", "info", "warning", "error", "exception", "critical"):
            setattr(self, level, getattr(_log, level))
        self.warn = _log.warning

    @staticmethod
    def set_logger_dir(*args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "logger.set_logger_dir: tpflax writes a run's logs where tp.train.fit(logdir=...) "
            "says; call fit with logdir instead"
        )

    auto_set_dir = set_logger_dir


def memoized(func: Callable[..., Any]) -> Callable[..., Any]:
    """Tensorpack's ``memoized``: ``functools.lru_cache(maxsize=None)``."""
    return functools.lru_cache(maxsize=None)(func)


def memoized_method(func: Callable[..., Any]) -> Callable[..., Any]:
    """Tensorpack's ``memoized_method``: caches a method's result on its instance, by its
    arguments (GAN.py's ``get_optimizer``)."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        cache = self.__dict__.setdefault("_MEMOIZED_CACHE", {})
        key = (func, *args, *sorted(kwargs.items()))
        if key not in cache:
            cache[key] = func(self, *args, **kwargs)
        return cache[key]

    return wrapper


# ------------------------------------------------------- tensorpack.tfutils helpers


def rms(x: Any, name: str | None = None) -> jax.Array:
    """Tensorpack's ``symbolic_functions.rms``: ``sqrt(mean(x ** 2))``, named ``name`` (by
    default ``<x's name>/rms``, as tensorpack names it)."""
    value = jnp.sqrt(jnp.mean(jnp.square(jnp.asarray(x))))
    if name is None:
        from tpflax.compat.tf._naming import name_of

        base = name_of(x)
        if base is None:
            return value
        with _tf.name_scope(None):
            return _tf.identity(value, name=f"{base}/rms")
    return _tf.identity(value, name=name)


def print_stat(x: Any, message: str | None = None) -> Any:
    """Tensorpack's ``symbolic_functions.print_stat``: prints ``x``'s shape, mean and rms
    each time the model runs; returns ``x``."""
    value = jnp.asarray(x)
    jax.debug.print(
        (message or "") + " shape={} mean={} rms={}",
        jnp.asarray(value.shape),
        jnp.mean(value),
        jnp.sqrt(jnp.mean(jnp.square(value))),
    )
    return value


@contextlib.contextmanager
def cached_name_scope(name: str, top_level: bool = True) -> Iterator[str]:
    """Tensorpack's ``cached_name_scope``: re-enters one name scope ``name`` (at the top
    level, or under the current name scope) every time, instead of ``name_1``, ..."""
    frame = current_frame(f"cached_name_scope({name!r})")
    full = name if top_level or not frame.name_scope[-1] else f"{frame.name_scope[-1]}/{name}"
    with _tf.name_scope(f"{full}/") as scope:
        yield scope


def get_global_step_var() -> Any:
    """Tensorpack's ``get_global_step_var``: ``tf.train.get_or_create_global_step()``."""
    return _tf.train.get_or_create_global_step()


def get_tf_version_tuple() -> tuple[int, int]:
    """Tensorpack's ``get_tf_version_tuple``: TensorFlow 2.21, whose semantics tpflax.compat
    follows (its fixtures come from it)."""
    return (2, 21)


def _no_dataflow(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"tensorpack.dataflow.{name} is not in tpflax.compat: data loading is not model code. "
        "tp.train takes any iterable of NumPy batches (data(step) -> batch, or "
        "tp.train.epoch_batches); load the data outside the model"
    )


# -------------------------------------------------------------------- the modules


def _module(name: str, doc: str, names: dict[str, Any]) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__dict__.update(names)
    module.__all__ = sorted(k for k in names if not k.startswith("_"))  # type: ignore[attr-defined]
    sys.modules[name] = module
    return module


def _pick(source: Any, names: list[str]) -> dict[str, Any]:
    """The ``names`` that ``source`` (a module or dict) has."""
    table = source if isinstance(source, dict) else vars(source)
    return {n: table[n] for n in names if n in table}


def install(package: types.ModuleType) -> dict[str, types.ModuleType]:
    """Registers tensorpack's module paths under ``package`` (``tpflax.compat.tensorpack``)
    and returns the modules ``from tensorpack import *`` also gives (``summary``,
    ``optimizer``, ``gradproc``, ``varreplace``, ``tower``, ``logger``)."""
    from tpflax.train import _gradproc, tf_optimizers

    training = {**vars(_gradproc), **vars(tf_optimizers)}

    root = package.__name__
    ns = vars(package)
    layers = [n for n in getattr(package, "__all__", []) if n[:1].isupper()]

    summary = _module(
        f"{root}.tfutils.summary",
        "tensorpack.tfutils.summary",
        _pick(
            ns,
            [
                "add_moving_summary",
                "add_param_summary",
                "add_tensor_summary",
                "add_activation_summary",
            ],
        ),
    )
    varreplace = _module(
        f"{root}.tfutils.varreplace",
        "tensorpack.tfutils.varreplace",
        _pick(ns, ["remap_variables", "freeze_variables", "custom_getter_scope"]),
    )
    scope_utils = _module(
        f"{root}.tfutils.scope_utils",
        "tensorpack.tfutils.scope_utils",
        {
            **_pick(ns, ["auto_reuse_variable_scope", "under_name_scope"]),
            "cached_name_scope": cached_name_scope,
        },
    )
    symbf = _module(
        f"{root}.tfutils.symbolic_functions",
        "tensorpack.tfutils.symbolic_functions",
        {"rms": rms, "print_stat": print_stat},
    )
    common = _module(
        f"{root}.tfutils.common",
        "tensorpack.tfutils.common",
        {"get_global_step_var": get_global_step_var, "get_tf_version_tuple": get_tf_version_tuple},
    )
    tower = _module(
        f"{root}.tfutils.tower",
        "tensorpack.tfutils.tower",
        _pick(ns, ["get_current_tower_context", "TowerContextInfo"]),
    )
    argscope_names = [
        "argscope",
        "get_arg_scope",
        "enable_argscope_for_module",
        "enable_argscope_for_function",
    ]
    argscope = _module(
        f"{root}.tfutils.argscope", "tensorpack.tfutils.argscope", _pick(ns, argscope_names)
    )
    gradproc_names = [
        "GradientProcessor",
        "FilterNoneGrad",
        "GlobalNormClip",
        "MapGradient",
        "SummaryGradient",
        "PrintGradient",
        "CheckGradient",
        "ScaleGradient",
    ]
    gradproc = _module(
        f"{root}.tfutils.gradproc",
        "tensorpack.tfutils.gradproc",
        _pick(training, gradproc_names),
    )
    optimizer = _module(
        f"{root}.tfutils.optimizer",
        "tensorpack.tfutils.optimizer",
        _pick(training, ["apply_grad_processors", "AccumGradOptimizer"]),
    )
    tfutils = _module(
        f"{root}.tfutils",
        "tensorpack.tfutils",
        {
            "summary": summary,
            "varreplace": varreplace,
            "scope_utils": scope_utils,
            "symbolic_functions": symbf,
            "common": common,
            "tower": tower,
            "gradproc": gradproc,
            "optimizer": optimizer,
            **_pick(ns, ["get_current_tower_context", "TowerContextInfo", *argscope_names]),
            "get_global_step_var": get_global_step_var,
        },
    )
    tfutils.__dict__["argscope"] = ns["argscope"]  # tensorpack's tfutils.argscope: the function
    del argscope  # registered in sys.modules for `from ...tfutils.argscope import argscope`
    regularize_names = [
        "regularize_cost",
        "regularize_cost_from_collection",
        "l1_regularizer",
        "l2_regularizer",
    ]
    regularize = _module(
        f"{root}.models.regularize", "tensorpack.models.regularize", _pick(ns, regularize_names)
    )
    _module(
        f"{root}.models",
        "tensorpack.models",
        {
            **_pick(ns, [*layers, *regularize_names, "layer_register"]),
            "regularize": regularize,
        },
    )
    dataflow = types.ModuleType(f"{root}.dataflow", "tensorpack.dataflow: not model code")
    setattr(dataflow, "__getattr__", _no_dataflow)  # noqa: B010 (PEP 562 hook)
    sys.modules[dataflow.__name__] = dataflow
    logger = _Logger(f"{root}.utils.logger")
    sys.modules[logger.__name__] = logger
    argtools = _module(
        f"{root}.utils.argtools",
        "tensorpack.utils.argtools",
        {"memoized": memoized, "memoized_method": memoized_method, "graph_memoized": memoized},
    )
    _module(f"{root}.utils", "tensorpack.utils", {"logger": logger, "argtools": argtools})
    return {
        "summary": summary,
        "optimizer": optimizer,
        "gradproc": gradproc,
        "varreplace": varreplace,
        "tower": tower,
        "logger": logger,
        "tfutils": tfutils,
    }
