"""The table of checkpoint formats, and what goes through it: ``detect_format``, ``load``,
``save``, ``guess_format``."""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from tpflax.checkpoint import _npz, _orbax, _tf_checkpoint
from tpflax.checkpoint._format import Format
from tpflax.checkpoint._io import name_problem
from tpflax.checkpoint.errors import FormatError

# The one table: every format tpflax reads and writes, in the order they are tried.
FORMATS: Mapping[str, Format] = types.MappingProxyType(
    {f.name: f for f in (_npz.FORMAT, _tf_checkpoint.FORMAT, _orbax.FORMAT)}
)


def detect_format(path: str) -> str:
    """The format of the checkpoint at ``path``: a name in ``tp.checkpoint.FORMATS``
    (``'npz'``, ``'tf'``, ``'orbax'``).

    Raises:
        FileNotFoundError: nothing at ``path`` ("no such file or checkpoint").
        FormatError: something is there, but no format's.

    Example:
        >>> import os, tempfile, numpy as np, tpflax as tp
        >>> path = os.path.join(tempfile.mkdtemp(), 'w.npz')
        >>> _ = tp.checkpoint.save_npz(path, {'w': np.ones(2)})
        >>> tp.checkpoint.detect_format(path)
        'npz'
    """
    path = os.fspath(path)
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt.name
    if not os.path.exists(path) and not os.path.exists(path + ".index"):
        raise FileNotFoundError(f"no such file or checkpoint: {path}")
    expected = "; ".join(f.description for f in FORMATS.values())
    raise FormatError(f"{path}: not a weight file tpflax reads (expected {expected})")


def guess_format(path: str) -> Format:
    """The format a path to write names, by its name alone (the ``tpflax convert`` rule):
    the first format in ``FORMATS`` whose ``names_target`` accepts it (``*.npz``;
    ``*.index``, ``*.ckpt``, ``model-*``), else the one without a rule (orbax).

    Example:
        >>> import tpflax as tp
        >>> [tp.checkpoint.guess_format(p).name for p in ('a.npz', 'log/model-5', 'ckpt/')]
        ['npz', 'tf', 'orbax']
    """
    fallback = None
    for fmt in FORMATS.values():
        if fmt.names_target is None:
            fallback = fallback or fmt
        elif fmt.names_target(path):
            return fmt
    assert fallback is not None, "FORMATS has no format without a names_target"
    return fallback


def _get(name: str) -> Format:
    if name not in FORMATS:
        raise ValueError(f"unknown checkpoint format {name!r}; expected one of {list(FORMATS)}")
    return FORMATS[name]


def load(path: str) -> dict[str, np.ndarray]:
    """Loads a weight file as ``{name: ndarray}``, names without ``:0``.

    Args:
        path: a tensorpack ``.npz`` (keys with or without ``:0``); a TensorFlow checkpoint,
            read without TensorFlow (its prefix ``model-5000``, the ``.index`` file, or a
            directory with a ``checkpoint`` file); or an orbax checkpoint written by
            ``tp.checkpoint.save_orbax``.

    Returns:
        Every numeric tensor, optimizer slots included (``restore`` skips those).

    Raises:
        FileNotFoundError: nothing at ``path`` (or a missing data shard).
        FormatError: a truncated or corrupt file, a bad checksum, pickled objects, sizes
            over the memory budget (SECURITY.md), ...
    """
    flat = FORMATS[detect_format(path)].read(path)
    for name in flat:
        problem = name_problem(name)
        if problem is not None:
            raise FormatError(f"{path}: variable name {name[:200]!r} is {problem}")
    return flat


def save(
    path: str, flat: Mapping[str, Any], format: str | None = None, *, overwrite: bool = False
) -> str:
    """Writes a flat ``{tensorpack name: array}`` (as ``load`` returns it) in any format, every
    dtype kept: the one writer signature of ``FORMATS``.

    Args:
        path: the file, TF checkpoint prefix or orbax directory; missing parent folders are
            made.
        flat: the variables; an orbax checkpoint holds a model's ``(params, state)``, so
            training-only names (optimizer slots, ``global_step``) are left out of it, with
            a log line.
        format: a name in ``FORMATS``; ``None`` guesses it from ``path``
            (``guess_format``).
        overwrite: replace a checkpoint already at ``path`` (atomically); without it that
            is a ``FileExistsError``.

    Returns:
        The format's name.

    Example:
        >>> import os, tempfile, numpy as np, tpflax as tp
        >>> folder = tempfile.mkdtemp()
        >>> tp.checkpoint.save(os.path.join(folder, 'model-1'), {'fc/W': np.ones((2, 3))})
        'tf'
        >>> tp.checkpoint.detect_format(folder)
        'tf'
    """
    fmt = guess_format(path) if format is None else _get(format)
    fmt.write(os.fspath(path), flat, overwrite=overwrite)
    return fmt.name
