"""TensorFlow's record-level encodings, shared by the checkpoint reader/writer and the
TensorBoard event writer: CRC-32C and its LevelDB/TensorFlow mask, and protobuf's base-128
varints. Pure functions of bytes and ints."""

from __future__ import annotations

from typing import Any

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def crc32c(data: Any) -> int:
    """CRC-32C (Castagnoli) of ``data``: bytes, or a read-only buffer such as a NumPy array
    with ``writeable=False`` (read in place, no copy)."""
    return int(google_crc32c.value(data))


def mask(crc: int) -> int:
    """LevelDB/TensorFlow's masked CRC (stored CRCs are masked so a CRC of data holding
    CRCs stays meaningful)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """The CRC behind a masked one (:func:`mask`'s inverse)."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of ``value`` (a negative one as 64-bit two's complement)."""
    if value < 0:
        value &= (1 << 64) - 1  # protobuf encodes negative int64 as 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
