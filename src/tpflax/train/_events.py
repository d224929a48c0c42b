"""TensorBoard event files and tensorpack's ``stats.json``, written without TensorFlow.

An event file is TensorFlow's record format (each record: its length, the length's masked
CRC-32C, the bytes, their masked CRC-32C) holding ``Event`` protocol buffers: a version
record, then one per step with the summaries (scalars, PNG images, histograms). The few
fields used are encoded here by hand (with the checkpoint writer's CRC-32C and varints,
``tpflax/_src/wire.py``; Pillow encodes the PNGs), so TensorBoard reads training logs with
no new dependency.
``stats.json`` is tensorpack's ``JSONWriter`` file: a list of ``{name: value,
'global_step': step}``, rewritten atomically at each log.

Both name scalars as tensorpack's monitors do: ``towerN/`` is dropped and so is the
``-summary`` suffix of ``add_moving_summary``'s tags, so its moving average of ``cost`` is
logged as ``cost`` (where it takes the place of the trainer's own ``cost`` metric, the
step's raw value, as in tensorpack's logs, which have only the average).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from tpflax._src.wire import crc32c, mask, varint

__all__ = ["EventWriter", "StatsWriter", "monitor_scalars"]


def _scalar_tag(tag: str) -> str:
    """Tensorpack's monitors' scalar name: without ``towerN/`` and the ``-summary`` suffix."""
    tag = re.sub(r"tower[0-9]+/", "", tag)
    return tag.removesuffix("-summary")


def monitor_scalars(scalars: Mapping[str, Any]) -> dict[str, Any]:
    """``scalars`` named as tensorpack's monitors name them (see the module's docstring); a
    moving summary's value replaces a plain metric that gets its name."""
    plain = {k: v for k, v in scalars.items() if _scalar_tag(k) == k}
    renamed = {_scalar_tag(k): v for k, v in scalars.items() if _scalar_tag(k) != k}
    return {**plain, **renamed}


def _key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + varint(len(data)) + data


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", value)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + varint(value)


def _packed_doubles(field: int, values: np.ndarray) -> bytes:
    return _bytes(field, np.asarray(values, "<f8").tobytes())


def _masked_crc(data: bytes) -> bytes:
    return struct.pack("<I", mask(crc32c(data)))


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + _masked_crc(length) + data + _masked_crc(data)


def _png(image: np.ndarray) -> tuple[int, int, int, bytes]:
    """``(height, width, channels, PNG bytes)``; floats are taken as ``[0, 1]``, as
    TensorFlow's image summary does for float images in that range."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    height, width, channels = array.shape
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if channels == 1 else array, mode).save(buffer, "PNG")
    return height, width, channels, buffer.getvalue()


def _histogram(values: np.ndarray, bins: int = 30) -> bytes:
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        v = np.zeros(1)
    counts, edges = np.histogram(v, bins=bins)
    return b"".join(
        [
            _double(1, float(v.min())),
            _double(2, float(v.max())),
            _double(3, float(v.size)),
            _double(4, float(v.sum())),
            _double(5, float(np.square(v).sum())),
            _packed_doubles(6, edges[1:]),
            _packed_doubles(7, counts.astype(np.float64)),
        ]
    )


class EventWriter:
    """Appends TensorBoard events to ``logdir/events.out.tfevents.<time>.<host>``."""

    def __init__(self, logdir: str) -> None:
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
        self.path = os.path.join(logdir, name)
        self._file = open(self.path, "ab")  # noqa: SIM115  (kept open; closed by close())
        self._write(_double(1, time.time()) + _bytes(3, b"brain.Event:2"))

    def _write(self, event: bytes) -> None:
        self._file.write(_record(event))
        self._file.flush()

    def write(self, step: int, summaries: Mapping[str, Any]) -> None:
        """One event at ``step``: ``{'summary:scalar/cost': 0.5, 'summary:image/viz':
        [N, H, W, C], 'summary:histogram/act': array}``; a plain name is a scalar."""
        values = []
        plain = {k: v for k, v in summaries.items() if not k.startswith("summary:")}
        plain = {
            **monitor_scalars({k: v for k, v in plain.items() if np.ndim(v) == 0}),
            **{k: v for k, v in plain.items() if np.ndim(v) != 0},
        }
        rest = {k: v for k, v in summaries.items() if k.startswith("summary:")}
        for key, value in {**plain, **rest}.items():
            kind, _, tag = key.partition("/") if key.startswith("summary:") else ("", "", key)
            kind = kind.removeprefix("summary:") or "scalar"
            if kind == "scalar":
                tag = _scalar_tag(tag)
                number = float(np.asarray(value))
                if math.isfinite(number) or math.isnan(number):
                    values.append(_bytes(1, _bytes(1, tag.encode()) + _float(2, number)))
            elif kind == "image":
                for i, image in enumerate(np.asarray(value)):
                    h, w, c, png = _png(image)
                    encoded = _int(1, h) + _int(2, w) + _int(3, c) + _bytes(4, png)
                    values.append(
                        _bytes(1, _bytes(1, f"{tag}/image/{i}".encode()) + _bytes(4, encoded))
                    )
            elif kind == "histogram":
                values.append(_bytes(1, _bytes(1, tag.encode()) + _bytes(5, _histogram(value))))
        if values:
            summary = b"".join(values)
            self._write(_double(1, time.time()) + _int(2, int(step)) + _bytes(5, summary))

    def close(self) -> None:
        """Closes the file."""
        self._file.close()


class StatsWriter:
    """Tensorpack's ``stats.json``: a list of ``{name: value, 'global_step': step}``."""

    def __init__(self, logdir: str) -> None:
        os.makedirs(logdir, exist_ok=True)
        self.path = os.path.join(logdir, "stats.json")
        self.stats: list[dict[str, float]] = []
        if os.path.exists(self.path):  # a resumed run keeps what was logged before
            with open(self.path) as f:
                self.stats = json.load(f)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """Adds one entry (an entry for a step already logged is replaced) and rewrites the
        file atomically."""
        self.stats = [s for s in self.stats if s.get("global_step") != step]
        named = monitor_scalars(scalars)
        self.stats.append({**{k: float(v) for k, v in named.items()}, "global_step": step})
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f, indent=1)
        os.replace(tmp, self.path)
