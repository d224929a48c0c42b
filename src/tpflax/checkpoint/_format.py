"""``Format``: what tpflax knows about one checkpoint format, as one table entry.

Each format module (``_npz``, ``_tf_checkpoint``, ``_orbax``) defines its ``FORMAT``;
``_load.FORMATS`` lists them. ``load``, ``detect_format``, ``save`` and the ``tpflax`` command
go through the table only, so a new format is one module and one line in the table.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np


def _nothing_left_out(path: str) -> list[str]:
    return []


@dataclasses.dataclass(frozen=True)
class Format:
    """One checkpoint format: how to recognise, read and write it, and how the ``tpflax``
    command guesses it from a path that does not exist yet.

    Attributes:
        name: the short name: ``detect_format``'s answer and the command's ``--format``.
        description: the format in a few words (messages, help).
        detect: ``detect(path) -> bool``: an existing ``path`` is of this format.
        read: ``read(path) -> {tensorpack name: ndarray}``, names without ``:0``.
            Raises ``FileNotFoundError`` or ``FormatError``.
        write: ``write(path, flat, *, overwrite=False)``, the same for every format:
            ``flat`` is ``{tensorpack name: array}`` as ``read`` returns it; an existing
            checkpoint at ``path`` is replaced (atomically) only with ``overwrite=True``,
            else ``FileExistsError``.
        names_target: ``names_target(path) -> bool``: a path to write to names this format
            (``'out.npz'``); ``None`` for the format taken when no other one's does.
        target_rule: ``names_target`` in words, for the command's help.
        exists: ``exists(path) -> bool``: a checkpoint of this format is at the target
            ``path`` (for a TF checkpoint, its ``.index``).
        left_out: ``left_out(path) -> [item]``: what the file holds besides the variables
            ``read`` returns (an orbax checkpoint's ``opt_state`` and ``step``).

    Example:
        >>> import tpflax as tp
        >>> fmt = tp.checkpoint.FORMATS['npz']
        >>> fmt.names_target('out/model.npz'), tp.checkpoint.guess_format('out/ckpt').name
        (True, 'orbax')
    """

    name: str
    description: str
    detect: Callable[[str], bool] = dataclasses.field(repr=False)
    read: Callable[[str], dict[str, np.ndarray]] = dataclasses.field(repr=False)
    write: Callable[..., None] = dataclasses.field(repr=False)
    names_target: Callable[[str], bool] | None = dataclasses.field(repr=False)
    target_rule: str
    exists: Callable[[str], bool] = dataclasses.field(default=os.path.exists, repr=False)
    left_out: Callable[[str], list[str]] = dataclasses.field(default=_nothing_left_out, repr=False)


def target_name(path: str) -> str:
    """The last component of a target path (``'out/ckpt/'`` -> ``'ckpt'``)."""
    return os.path.basename(os.fspath(path).rstrip("/"))


def refuse_existing(fmt: Format, path: str, overwrite: bool) -> None:
    """``FileExistsError`` when a checkpoint of ``fmt`` is at ``path`` and not ``overwrite``."""
    if not overwrite and fmt.exists(path):
        raise FileExistsError(
            f"{path}: a checkpoint ({fmt.name}) is already there; pass overwrite=True to replace it"
        )
