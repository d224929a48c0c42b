"""The pieces of ``tp.train.GANTrainer``: nested dicts by variable name, tensorpack's
``SeparateGANTrainer`` schedule, the model's two costs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from tpflax.train import tf_optimizers as tfo

Tree = Any
_WHO = "tp.train.GANTrainer"


# ---------------------------------------------------------------- nested dicts by name
def _flat(tree: Tree, prefix: str = "") -> dict[str, Any]:
    """``{'gen/fc0/W': leaf}`` from a nested dict."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _select(tree: Tree, names: Any, prefix: str = "") -> dict[str, Any]:
    """The nested dict of ``tree``'s leaves whose names are in ``names`` (empty dicts left
    out)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            sub = _select(value, names, f"{prefix}{key}/")
            if sub:
                out[key] = sub
        elif f"{prefix}{key}" in names:
            out[key] = value
    return out


def _merge(base: Tree, sub: Tree) -> dict[str, Any]:
    """``base`` with the leaves of ``sub`` (a subset of its names) replaced."""
    out = dict(base)
    for key, value in sub.items():
        out[key] = _merge(base[key], value) if isinstance(value, Mapping) else value
    return out


def _named(tree: Tree, fn: Callable[[str, Any], Any], prefix: str = "") -> dict[str, Any]:
    """``tree`` with each leaf replaced by ``fn(name, leaf)``."""
    return {
        key: _named(value, fn, f"{prefix}{key}/")
        if isinstance(value, Mapping)
        else fn(f"{prefix}{key}", value)
        for key, value in tree.items()
    }


def _tf_states(opt_state: Any, fn: Callable[[Any], Any]) -> Any:
    """``opt_state`` with ``fn`` applied to each state of ``tp.train.tf_optimizers``."""
    return jax.tree.map(
        lambda x: fn(x) if isinstance(x, tfo._STATES) else x,
        opt_state,
        is_leaf=lambda x: isinstance(x, tfo._STATES),
    )


def _at_step(opt_state: Any, step: jax.Array) -> Any:
    """TF optimizers' schedule step set to the TrainState's (TF's ``global_step``)."""
    return _tf_states(opt_state, lambda s: dataclasses.replace(s, step=step))


def separate_schedule(d_period: int, g_period: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which update each ``sess.run`` of tensorpack's ``SeparateGANTrainer`` makes, as
    ``(prefix, cycle)``: run ``k`` makes ``prefix[k]``, or ``cycle[(k - len(prefix)) %
    len(cycle)]`` past the prefix (``'d'`` or ``'g'``). Found by running its loop: an
    iteration checks ``global_step % d_period`` (runs ``d``, ``global_step += 1``), then
    ``global_step % g_period`` (runs ``g``, ``global_step += 1``)."""
    period = d_period * g_period
    runs: list[str] = []
    seen: dict[tuple[int, str], int] = {}
    gs, check = 0, "d"
    while (gs % period, check) not in seen:
        seen[(gs % period, check)] = len(runs)
        if gs % (d_period if check == "d" else g_period) == 0:
            runs.append(check)
            gs += 1
        check = "g" if check == "d" else "d"
    start = seen[(gs % period, check)]
    return tuple(runs[:start]), tuple(runs[start:])


def _describe(value: Any) -> str:
    """``'an array of shape (2,) float32'``, ``'a tuple of length 3'``, or the type."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"an array of shape {tuple(value.shape)} {value.dtype}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    return type(value).__name__


def _split_costs(out: Any) -> tuple[jax.Array, jax.Array, dict[str, Any]]:
    if isinstance(out, (tuple, list)) and len(out) == 3 and isinstance(out[2], Mapping):
        g_loss, d_loss, metrics = out
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        (g_loss, d_loss), metrics = out, {}
    else:
        raise TypeError(
            f"{_WHO}: the model must return (g_loss, d_loss) or (g_loss, d_loss, "
            f"{{name: metric}}); got {_describe(out)}"
        )
    for name, loss in (("g_loss", g_loss), ("d_loss", d_loss)):
        if not (
            hasattr(loss, "shape") and loss.shape == () and jnp.issubdtype(loss.dtype, jnp.floating)
        ):
            raise TypeError(f"{_WHO}: {name} must be a floating scalar; got {_describe(loss)}")
    return g_loss, d_loss, dict(metrics)


def _desc_model(desc: Any) -> Callable[..., tuple[Any, Any]]:
    """A ``GANModelDesc``'s ``build_graph`` as a model returning ``(g_loss, d_loss)``."""

    def model(*inputs: Any) -> tuple[Any, Any]:
        desc.g_loss = desc.d_loss = None
        desc.build_graph(*inputs)
        g_loss, d_loss = desc.g_loss, desc.d_loss
        desc.g_loss = desc.d_loss = None  # no traced values left on the object
        if g_loss is None or d_loss is None:
            raise TypeError(
                f"{_WHO}.from_model_desc: {type(desc).__name__}.build_graph must set "
                "self.g_loss and self.d_loss (GANModelDesc.build_losses does)"
            )
        return g_loss, d_loss

    return model
