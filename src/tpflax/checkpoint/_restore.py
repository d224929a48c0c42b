"""``restore``: loads tensorpack-named values into a model's ``(params, state)``, with
tensorpack's rules (``SessionInit`` / ``DictRestore``)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from tpflax._src.tree import flatten, is_training_name, rebuild, strip_suffix
from tpflax.checkpoint._load import load

log = logging.getLogger("tpflax")


# How each list of names in a report reads, in tensorpack's words, and whether ``restore``
# logs it as a warning (names in only one of the checkpoint and the model, as tensorpack).
_NAME_LINES = (
    ("missing", "Variable {} in the graph not found in checkpoint!", True),
    ("unexpected", "Variable {} in checkpoint not found in the graph!", True),
    ("skipped", "Skipped training-only variable {} in checkpoint.", False),
    ("ignored", "Ignored variable {} in checkpoint (ignore=).", False),
)


@dataclasses.dataclass
class RestoreReport:
    """What ``restore`` did, name by name; ``str(report)`` prints like tensorpack's log."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    reshaped: list[tuple[str, tuple, tuple]] = dataclasses.field(default_factory=list)
    cast: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Restoring {len(self.loaded)} variables from checkpoint."]
        for field, line, _ in _NAME_LINES:
            lines += [line.format(name) for name in getattr(self, field)]
        lines += [
            f"Variable {n} is reshaped {list(a)} -> {list(b)} during assignment"
            for n, a, b in self.reshaped
        ]
        lines += [f"Variable {n} is cast {a} -> {b} during assignment" for n, a, b in self.cast]
        return "\n".join(lines)


def _load_source(source: Any) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return flatten(source)  # flat names as they are; a nested tree becomes flat names
    if isinstance(source, (str, os.PathLike)):
        return dict(load(os.fspath(source)))
    raise TypeError(
        "tp.checkpoint.restore: source must be a flat dict of tensorpack names or a path (.npz, "
        f"TensorFlow checkpoint, orbax directory); got {type(source).__name__}"
    )


def _rename(
    name: str,
    strip_prefix: str | None,
    add_prefix: str | None,
    rename: Mapping[str, str],
) -> str:
    if strip_prefix and name.startswith(strip_prefix):
        name = name[len(strip_prefix) :]
    name = rename.get(name, name)
    if add_prefix:
        name = add_prefix + name
    return name


def _convert(name: str, value: Any, like: Any, report: RestoreReport) -> Any:
    value = np.asarray(value)
    want_shape, want_dtype = tuple(like.shape), np.dtype(like.dtype)
    if tuple(value.shape) != want_shape:
        if value.size != int(np.prod(want_shape)):
            raise ValueError(
                f"tp.checkpoint.restore: variable '{name}' has shape {list(value.shape)} in the "
                f"checkpoint but {list(want_shape)} in the model"
            )
        log.warning(
            "Variable %s is reshaped %s -> %s during assignment",
            name,
            list(value.shape),
            list(want_shape),
        )
        report.reshaped.append((name, tuple(value.shape), want_shape))
        value = value.reshape(want_shape)
    if value.dtype != want_dtype:
        float_pair = np.issubdtype(value.dtype, np.floating) and np.issubdtype(
            want_dtype, np.floating
        )
        int_widen = (
            np.issubdtype(value.dtype, np.integer)
            and np.issubdtype(want_dtype, np.integer)
            and np.can_cast(value.dtype, want_dtype, "safe")
        )
        if not (float_pair or int_widen):
            raise ValueError(
                f"tp.checkpoint.restore: variable '{name}' is {value.dtype} in the checkpoint "
                f"but {want_dtype} in the model; only float<->float casts and integer widening "
                "are allowed"
            )
        if float_pair:
            log.warning(
                "Variable %s is cast %s -> %s during assignment", name, value.dtype, want_dtype
            )
        report.cast.append((name, str(value.dtype), str(want_dtype)))
        value = value.astype(want_dtype)
    return jnp.asarray(value)


def restore(
    source: Any,
    params: Mapping[str, Any],
    state: Mapping[str, Any] | None = None,
    strict: bool = True,
    *,
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    rename: Mapping[str, str] | None = None,
    ignore: Iterable[str] = (),
) -> tuple[dict[str, Any], dict[str, Any], RestoreReport]:
    """Loads tensorpack-named values into a model's ``(params, state)``.

    Names may end in ``:0``. A value of the same size but another shape is reshaped with a
    warning; float values are cast to the model's float dtype with a warning; integers are only
    widened; anything else is an error naming the variable. Optimizer slots, ``global_step``
    and other training-only names are skipped and reported.

    Args:
        source: a flat dict ``{name: array}`` (or a nested tree of them), or a path
            ``tp.checkpoint.load`` reads (``.npz``, TensorFlow checkpoint, orbax directory).
        params: the model's params (from ``init``), giving names, shapes and dtypes.
        state: the model's state.
        strict: missing or unexpected names are one error listing them all; with ``False``
            they are only reported (tensorpack's ``ignore_mismatch``, e.g. fine-tuning with
            another class count) and missing variables keep their current values. Names
            tensorpack never saves (``add_moving_summary``'s ``EMA/cost/biased``, local
            variables there) may be missing either way: they keep their current values and
            are listed in ``report.missing``.
        strip_prefix: removed from the checkpoint's names that start with it (``'tower0/'``).
        add_prefix: put before every checkpoint name (after stripping and renaming).
        rename: ``{checkpoint name: model name}``, applied after ``strip_prefix``.
        ignore: regular expressions (full match) of checkpoint names to leave out, as if
            absent (``'linear/.*'`` to re-initialize a classifier); they are reported.

    Returns:
        ``(params, state, report)``.

    Raises:
        ValueError: strict mismatch, incompatible shape or dtype, or duplicate names.
    """
    patterns = [re.compile(p) for p in ignore]
    report = RestoreReport()
    flat_source: dict[str, Any] = {}
    for key, value in _load_source(source).items():
        original = strip_suffix(key)
        if any(p.fullmatch(original) for p in patterns):
            report.ignored.append(original)
            continue
        name = _rename(original, strip_prefix, add_prefix, rename or {})
        if name in flat_source:
            raise ValueError(f"tp.checkpoint.restore: the checkpoint has '{name}' twice")
        flat_source[name] = value
    template = flatten(params, state or {})
    for name in sorted(flat_source):
        if name not in template:
            (report.skipped if is_training_name(name) else report.unexpected).append(name)
    report.missing = sorted(n for n in template if n not in flat_source)
    # what tensorpack never saves (add_moving_summary's EMA/<name>/... are local variables)
    # keeps its initial value, strict or not
    required = [n for n in report.missing if not is_training_name(n)]
    if strict and (required or report.unexpected):
        parts = []
        if required:
            parts.append(f"missing from the checkpoint: {', '.join(required)}")
        if report.unexpected:
            parts.append(f"not in the model: {', '.join(report.unexpected)}")
        raise ValueError(
            "tp.checkpoint.restore(strict=True): " + "; ".join(parts) + ". Pass strict=False "
            "to load the matching names only"
        )
    merged: dict[str, Any] = {}
    for name, like in template.items():
        if name in flat_source:
            merged[name] = _convert(name, flat_source[name], like, report)
            report.loaded.append(name)
        else:
            merged[name] = like
    for field, line, warn in _NAME_LINES:
        for name in getattr(report, field) if warn else ():
            log.warning(line.format(name))
    log.info("Restoring %d variables from checkpoint.", len(report.loaded))
    return rebuild(params, merged), rebuild(state or {}, merged), report
