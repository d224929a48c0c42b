"""The error every checkpoint reader raises for a file that exists but cannot be read."""

from __future__ import annotations

__all__ = ["FormatError", "MissingShardError"]


class FormatError(ValueError):
    """The bytes are not what the format says they must be.

    Every failure to read a weight file that exists (truncated, corrupt, a bad checksum,
    pickled objects, sizes over the memory budget of SECURITY.md, a file of another format)
    is a ``FormatError`` naming the file and the problem. It is a ``ValueError``.

    Example:
        >>> import tpflax as tp
        >>> issubclass(tp.checkpoint.FormatError, ValueError)
        True
    """


class MissingShardError(FormatError, FileNotFoundError):
    """A TensorFlow checkpoint's index names a data shard that is not there: both a
    ``FormatError`` (the files do not make a checkpoint) and a ``FileNotFoundError``."""
