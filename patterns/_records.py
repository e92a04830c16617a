"""Small records written and read in Python, byte for byte as cbor2 writes and reads them.

Most bodies a room or a line carries are small records: a poll's ``{"question": ...}``,
its ``{"answer": ...}``, a hotline ask's ``{"v": ..., "stream": false}``, a deliberation's
``{"stance", "confidence", "reason", "round"}``, and in them an agent's own small record
(``{"choice": "B", "score": 0.7, "tags": ["fast", "safe"]}``). cbor2 reads and writes
them well in a loop, but on a real round trip its encoder and decoder (their tables,
buffers and checks) run cold, once a message: a fall-back to them costs each end far more
than a loop shows (``bench/README.md``, "Where the time goes"). These functions handle:

* a *map* of at most :data:`SMALL` entries, each key a text string of under 24 bytes;
* whose values are *scalars* (false, true, null, an integer of 64 bits or less of either
  sign, a float64, a byte or text string of under 64 KiB), or maps of the same kind or
  *arrays* of at most :data:`SMALL` such values, at most :data:`DEPTH` levels below the
  top map (a poll's ``{"answer": {"choice": "B", "tags": ["fast"], "by": {"model": "m"}}}``).

:func:`write_map` returns exactly cbor2's bytes for such a map, or None for anything
else (the general writer then writes it, or says what is wrong); :func:`read_map` reads
the items back as cbor2's strict decoder does, or returns None (the general decoder then
reads it, with its own checks and words for what is wrong). Property tests hold both to
cbor2. Every read stops at the frame's end and at these limits (:data:`ITEMS` items, six
levels of recursion), so what a record costs in Python is bounded, read or refused.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

__all__ = ["BYTES_HEAD", "DEPTH", "DOUBLE", "LONGEST", "ONE_BYTE", "SIMPLE", "SMALL", "SMALL_INT", "TEXT_HEAD", "int_head",
           "read_map", "write_map"]

SMALL: Final = 23
"""Entries of a map, and items of an array, read and written here (a count in the head's own
byte); larger ones go to cbor2."""
DEPTH: Final = 6
"""Levels of maps and arrays below the top map read and written here; deeper ones go to cbor2."""
ITEMS: Final = 64
"""Map entries and array items of one record read or written here, in all; a record of more
goes to cbor2 (whose C code reads many items faster than a loop in Python)."""

# The record a shape last gave up on (``hint=True``), for the next call only: a frame's value
# is tried by its shape, then its body by the common writer or reader, and a second walk of
# the same value would fail where the first did. Held (not an id(), which a new object may
# reuse) until that next call; a hint only: cbor2 writes and reads the same.
_unwritten: object = None  # the map write_map last gave up on
_unread: tuple[object, int] = (None, -1)  # (the frame, where the map starts) read_map last gave up on
_NONE: Final[tuple[object, int]] = (None, -1)
_PARTS: Final = 2 * ITEMS  # a record's pieces written (a head and its bytes an item): past this, cbor2's

# CBOR's heads as cbor2 writes them, shared with the frame template (_shape) and the head (_head).
DOUBLE: Final = struct.Struct(">d")
LONGEST: Final = 0x10000
"""Strings this long and longer are not written or read here (2-byte lengths at most)."""
_MAX_INT: Final = 2**64  # larger integers are cbor2's bignums
ONE_BYTE: Final[dict[int, Any]] = {
    **{head: head for head in range(24)}, **{0x20 + n: -1 - n for n in range(24)}, 0xF4: False, 0xF5: True, 0xF6: None,
}  # fmt: skip
"""The CBOR items of one byte: the integers -24..23, false, true, null."""
SIMPLE: Final = {False: b"\xf4", True: b"\xf5", None: b"\xf6"}
SMALL_INT: Final = {n: bytes([n if n >= 0 else 0x1F - n]) for n in range(-24, 24)}
"""The integers -24..23, one byte each."""
TEXT_HEAD: Final = [bytes([0x60 + n]) if n < 24 else bytes([0x78, n]) for n in range(256)]
BYTES_HEAD: Final = [bytes([0x40 + n]) if n < 24 else bytes([0x58, n]) for n in range(256)]
"""The heads of a text and of a byte string of each length up to 255."""
_MAP_HEAD: Final = [bytes([0xA0 + n]) for n in range(SMALL + 1)]
_ARRAY_HEAD: Final = [bytes([0x80 + n]) for n in range(SMALL + 1)]


# ----------------------------------------------------------------------------- read
def read_map(data: bytes, pos: int, end: int, *, hint: bool = False) -> dict[str, Any] | None:
    """The map whose head is at ``pos`` if it is a small record (module docstring) ending
    exactly at ``end``; None for anything else (a key seen twice too). May raise on bytes
    that are not CBOR at all (bad UTF-8, a frame cut short): callers treat that as None.
    ``hint`` (a shape's hole): on failure, the next call does not walk this map again."""
    global _unread
    skip = -1
    if _unread is not _NONE:
        if _unread[0] is data:
            skip = _unread[1]
        _unread = _NONE
    got = _map(data, pos, end, DEPTH, skip, [ITEMS])
    if got is not None and got[1] == end:
        return got[0]
    if hint:
        _unread = (data, pos)
    return None


def _map(data: bytes, pos: int, end: int, depth: int, skip: int,
         left: list[int]) -> tuple[dict[str, Any], int] | None:  # fmt: skip
    count = data[pos] - 0xA0
    if not 0 <= count <= SMALL or pos == skip:  # (skip: a shape's hole that failed, in its body)
        return None
    left[0] -= count
    if left[0] < 0:
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
        head = data[stop]
        if head in ONE_BYTE:  # (the common values, inline: a call less an entry; a read past
            body[key], pos = ONE_BYTE[head], stop + 1  # ``end`` fails read_map's last check)
            continue
        if 0x60 <= head < 0x78:
            pos = stop + 1 + head - 0x60
            if pos > end:
                return None
            body[key] = data[stop + 1 : pos].decode("utf-8")
            continue
        if 0x18 <= head <= 0x1B:  # an unsigned integer (a poll's answer, a round)
            pos = stop + 1 + (1 << (head - 0x18))
            if pos > end:
                return None
            body[key] = int.from_bytes(data[stop + 1 : pos], "big")
            continue
        got = _item(data, stop, end, depth, skip, left)
        if got is None:
            return None
        body[key], pos = got
    return body, pos


def _item(data: bytes, pos: int, end: int, depth: int, skip: int, left: list[int]) -> tuple[Any, int] | None:
    """(the item whose head is at ``pos``, where it ends), within ``end``, a map or an array
    only if ``depth`` allows; None otherwise."""
    head = data[pos]
    pos += 1
    if head in ONE_BYTE:
        return ONE_BYTE[head], pos
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
        value = DOUBLE.unpack_from(data, pos)[0]
    elif depth and 0xA0 <= head <= 0xA0 + SMALL:
        return _map(data, pos - 1, end, depth - 1, skip, left)
    elif depth and 0x80 <= head <= 0x80 + SMALL:
        left[0] -= head - 0x80
        if left[0] < 0:
            return None
        items = []
        for _ in range(head - 0x80):
            got = _item(data, pos, end, depth - 1, skip, left)
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
def write_map(body: dict[Any, Any], limit: int, *, hint: bool = False) -> bytes | None:
    """``body`` as cbor2 writes it when it is a small record (module docstring), its byte
    strings also under ``limit`` (the shared-memory threshold: larger ones are placed by
    the general path); None for any other map. ``hint`` (a shape's value): on failure, the
    next call does not walk this map again."""
    global _unwritten
    skip, _unwritten = _unwritten, None
    parts: list[bytes] = []
    try:
        if _write_map(body, limit, parts, DEPTH, skip):
            return b"".join(parts)
    except UnicodeEncodeError:  # lone surrogates: the general path says why
        pass
    if hint and len(body) <= SMALL:  # (past SMALL the next walk stops at once anyway)
        _unwritten = body
    return None


def _write_map(body: dict[Any, Any], limit: int, parts: list[bytes], depth: int, skip: object) -> bool:
    if len(body) > SMALL or body is skip or len(parts) > _PARTS:  # (skip: a shape's value that failed, in its body)
        return False
    parts.append(_MAP_HEAD[len(body)])
    for key, value in body.items():
        if type(key) is not str:
            return False
        raw = key.encode("utf-8")
        if len(raw) >= 24:
            return False
        parts += (TEXT_HEAD[len(raw)], raw)
        kind = type(value)  # (the common values, inline: a call less an entry)
        if kind is bool or value is None:
            parts.append(SIMPLE[value])
        elif kind is int and -24 <= value < 24:
            parts.append(SMALL_INT[value])
        elif not _write_item(value, limit, parts, depth, skip):
            return False
    return True


def _write_item(value: Any, limit: int, parts: list[bytes], depth: int, skip: object) -> bool:
    kind = type(value)
    if kind is str:
        if len(value) >= LONGEST:  # (as many UTF-8 bytes at least: not encoded here only to be refused)
            return False
        raw = value.encode("utf-8")
        length = len(raw)
        if length >= LONGEST:
            return False
        parts += (TEXT_HEAD[length] if length < 256 else b"\x79" + length.to_bytes(2, "big"), raw)
    elif kind is bytes:
        length = len(value)
        if length >= limit or length >= LONGEST:
            return False
        parts += (BYTES_HEAD[length] if length < 256 else b"\x59" + length.to_bytes(2, "big"), value)
    elif kind is bool or value is None:
        parts.append(SIMPLE[value])
    elif kind is int:
        if not -_MAX_INT <= value < _MAX_INT:
            return False
        parts.append(SMALL_INT[value] if -24 <= value < 24 else int_head(value))
    elif kind is float:
        if not math.isfinite(value):  # (cbor2 writes NaN and the infinities shorter)
            return False
        parts += (b"\xfb", DOUBLE.pack(value))
    elif depth and kind is dict:
        return _write_map(value, limit, parts, depth - 1, skip)
    elif depth and kind is list:
        if len(value) > SMALL or len(parts) > _PARTS:
            return False
        parts.append(_ARRAY_HEAD[len(value)])
        for item in value:  # (a loop, not all() over a generator: a call less an item)
            if not _write_item(item, limit, parts, depth - 1, skip):
                return False
    else:
        return False
    return True


def int_head(value: int) -> bytes:
    """The head of an integer of 64 bits or less, either sign, past the one-byte ones
    (:data:`SMALL_INT`), as cbor2 writes it (the shortest)."""
    major, n = (0, value) if value >= 0 else (0x20, -1 - value)
    if n < 0x100:
        return bytes([major + 0x18, n])
    if n < 0x10000:
        return bytes([major + 0x19]) + n.to_bytes(2, "big")
    if n < 0x1_0000_0000:
        return bytes([major + 0x1A]) + n.to_bytes(4, "big")
    return bytes([major + 0x1B]) + n.to_bytes(8, "big")
