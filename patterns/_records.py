"""Small records written and read in Python, byte for byte as cbor2 writes and reads them.

Most bodies a room or a line carries are small records: a poll's ``{"question": ...}``,
its ``{"answer": ...}``, a hotline ask's ``{"v": ..., "stream": false}``, a deliberation's
``{"stance", "confidence", "reason", "round"}``, and in them an agent's own small record
(``{"choice": "B", "score": 0.7, "tags": ["fast", "safe"]}``). cbor2 reads and writes
them well in a loop, but on a real round trip its encoder and decoder (their tables,
buffers and checks) run cold: each fall-back to it cost an end 5-20 µs of thread CPU
(``bench/README.md``, "Where the time goes"). These functions handle:

* a *map* of at most :data:`SMALL` entries, each key a text string of under 24 bytes;
* whose values are *scalars* (false, true, null, an integer of 64 bits or less of either
  sign, a float64, a byte or text string of under 64 KiB), or maps of the same kind or
  *arrays* of at most :data:`SMALL` such values, at most :data:`DEPTH` levels below the
  top map (a poll's ``{"answer": {"choice": "B", "tags": ["fast"]}}``).

:func:`write_map` returns exactly cbor2's bytes for such a map, or None for anything
else (the general writer then writes it, or says what is wrong); :func:`read_map` reads
the items back as cbor2's strict decoder does, or returns None (the general decoder then
reads it, with its own checks and words for what is wrong). Property tests hold both to
cbor2. Every read is bounded by the frame and by these limits: at most 84 items, two
levels of recursion.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

__all__ = ["DEPTH", "SMALL", "read_map", "write_map"]

SMALL: Final = 4
"""Entries of a map, and items of an array, read and written here; larger ones go to cbor2."""
DEPTH: Final = 2
"""Levels of maps and arrays below the top map read and written here; deeper ones go to cbor2."""

_DOUBLE: Final = struct.Struct(">d")
_LONGEST: Final = 0x10000  # strings this long and longer go to cbor2 (2-byte lengths here)
_MAX_INT: Final = 2**64  # larger integers are cbor2's bignums
_ONE_BYTE: Final[dict[int, Any]] = {
    **{head: head for head in range(24)}, **{0x20 + n: -1 - n for n in range(24)}, 0xF4: False, 0xF5: True, 0xF6: None,
}  # fmt: skip
_SIMPLE: Final = {False: b"\xf4", True: b"\xf5", None: b"\xf6"}
_MAP_HEAD: Final = [bytes([0xA0 + n]) for n in range(SMALL + 1)]
_ARRAY_HEAD: Final = [bytes([0x80 + n]) for n in range(SMALL + 1)]
_TEXT_HEAD: Final = [bytes([0x60 + n]) if n < 24 else bytes([0x78, n]) for n in range(256)]
_BYTES_HEAD: Final = [bytes([0x40 + n]) if n < 24 else bytes([0x58, n]) for n in range(256)]
_SMALL_INT: Final = {n: bytes([n if n >= 0 else 0x1F - n]) for n in range(-24, 24)}


# ----------------------------------------------------------------------------- read
def read_map(data: bytes, pos: int, end: int) -> dict[str, Any] | None:
    """The map whose head is at ``pos`` if it is a small record (module docstring) ending
    exactly at ``end``; None for anything else (a key seen twice too). May raise on bytes
    that are not CBOR at all (bad UTF-8, a frame cut short): callers treat that as None."""
    got = _map(data, pos, end, DEPTH)
    return got[0] if got is not None and got[1] == end else None


def _map(data: bytes, pos: int, end: int, depth: int) -> tuple[dict[str, Any], int] | None:
    count = data[pos] - 0xA0
    if not 0 <= count <= SMALL:
        return None
    pos += 1
    body: dict[str, Any] = {}
    for _ in range(count):
        head = data[pos]
        if not 0x60 <= head < 0x78:
            return None
        stop = pos + 1 + head - 0x60
        if stop > end:
            return None
        key = data[pos + 1 : stop].decode("utf-8")
        if key in body:
            return None
        got = _item(data, stop, end, depth)
        if got is None:
            return None
        body[key], pos = got
    return body, pos


def _item(data: bytes, pos: int, end: int, depth: int) -> tuple[Any, int] | None:
    """(the item whose head is at ``pos``, where it ends), within ``end``, a map or an array
    only if ``depth`` allows; None otherwise."""
    head = data[pos]
    pos += 1
    if head in _ONE_BYTE:
        return _ONE_BYTE[head], pos
    if 0x18 <= head <= 0x1B or 0x38 <= head <= 0x3B:  # an integer, 1 to 8 bytes after its head
        stop = pos + (1 << (head & 0x1F) - 0x18)
        n = int.from_bytes(data[pos:stop], "big")
        value: Any = n if head < 0x20 else -1 - n
    elif 0x60 <= head < 0x78:
        stop = pos + head - 0x60
        value = data[pos:stop].decode("utf-8")
    elif 0x40 <= head < 0x58:
        stop = pos + head - 0x40
        value = data[pos:stop]
    elif head == 0x58 or head == 0x78:
        stop = pos + 1 + data[pos]
        value = data[pos + 1 : stop]
    elif head == 0x59 or head == 0x79:
        stop = pos + 2 + (data[pos] << 8 | data[pos + 1])
        value = data[pos + 2 : stop]
    elif head == 0xFB:  # a float64, as cbor2 writes every finite float
        stop = pos + 8
        value = _DOUBLE.unpack_from(data, pos)[0]
    elif depth and 0xA0 <= head <= 0xA0 + SMALL:
        return _map(data, pos - 1, end, depth - 1)
    elif depth and 0x80 <= head <= 0x80 + SMALL:
        items = []
        for _ in range(head - 0x80):
            got = _item(data, pos, end, depth - 1)
            if got is None:
                return None
            item, pos = got
            items.append(item)
        return items, pos
    else:
        return None
    if stop > end:
        return None
    if head == 0x78 or head == 0x79:
        value = value.decode("utf-8")
    return value, stop


# ----------------------------------------------------------------------------- write
def write_map(body: dict[Any, Any], limit: int) -> bytes | None:
    """``body`` as cbor2 writes it when it is a small record (module docstring), its byte
    strings also under ``limit`` (the shared-memory threshold: larger ones are placed by
    the general path); None for any other map."""
    parts: list[bytes] = []
    try:
        if not _write_map(body, limit, parts, DEPTH):
            return None
    except UnicodeEncodeError:  # lone surrogates: the general path says why
        return None
    return b"".join(parts)


def _write_map(body: dict[Any, Any], limit: int, parts: list[bytes], depth: int) -> bool:
    if len(body) > SMALL:
        return False
    parts.append(_MAP_HEAD[len(body)])
    for key, value in body.items():
        if type(key) is not str:
            return False
        raw = key.encode("utf-8")
        if len(raw) >= 24:
            return False
        parts += (_TEXT_HEAD[len(raw)], raw)
        if not _write_item(value, limit, parts, depth):
            return False
    return True


def _write_item(value: Any, limit: int, parts: list[bytes], depth: int) -> bool:
    kind = type(value)
    if kind is str:
        if len(value) >= _LONGEST:  # (as many UTF-8 bytes at least: not encoded here only to be refused)
            return False
        raw = value.encode("utf-8")
        length = len(raw)
        if length >= _LONGEST:
            return False
        parts += (_TEXT_HEAD[length] if length < 256 else b"\x79" + length.to_bytes(2, "big"), raw)
    elif kind is bytes:
        length = len(value)
        if length >= limit or length >= _LONGEST:
            return False
        parts += (_BYTES_HEAD[length] if length < 256 else b"\x59" + length.to_bytes(2, "big"), value)
    elif kind is bool or value is None:
        parts.append(_SIMPLE[value])
    elif kind is int:
        if not -_MAX_INT <= value < _MAX_INT:
            return False
        parts.append(_SMALL_INT[value] if -24 <= value < 24 else _int(value))
    elif kind is float:
        if not math.isfinite(value):  # (cbor2 writes NaN and the infinities shorter)
            return False
        parts += (b"\xfb", _DOUBLE.pack(value))
    elif depth and kind is dict:
        return _write_map(value, limit, parts, depth - 1)
    elif depth and kind is list:
        if len(value) > SMALL:
            return False
        parts.append(_ARRAY_HEAD[len(value)])
        return all(_write_item(item, limit, parts, depth - 1) for item in value)
    else:
        return False
    return True


def _int(value: int) -> bytes:
    """The head of an integer of 64 bits or less, either sign, past the one-byte ones."""
    major, n = (0, value) if value >= 0 else (0x20, -1 - value)
    if n < 0x100:
        return bytes([major + 0x18, n])
    if n < 0x10000:
        return bytes([major + 0x19]) + n.to_bytes(2, "big")
    if n < 0x1_0000_0000:
        return bytes([major + 0x1A]) + n.to_bytes(4, "big")
    return bytes([major + 0x1B]) + n.to_bytes(8, "big")
