"""The envelope's head written and read in Python, for the common frame: no cbor2 map, no dict.

A 64-byte message spent more time in the envelope than in its body: building the frame
dict, walking it for plain types, and on receipt a cbor2 decoder over the whole map, a
dict of it, then the field checks (~4 µs to encode and ~8.5 µs to decode here, per side).
Every frame this toolkit writes has the same layout, the keys in one order::

    map(n) "v" 1  "k" text  "s" text  "id" uint  ["re" uint]  ["dl" float64]  ["b" body]

:func:`write` writes exactly the bytes the cbor2 encoder writes for that map (cbor2
writes each float as float64 and each integer and length in its shortest form); the
prefix up to the id is cached per (key count, kind, sender). :func:`read` reads that
layout back and leaves the body to cbor2's strict decoder (a byte string body is sliced
directly, and a small record is read here too: :mod:`patterns._records`). Anything else (a ``shm``
key, another key order from another encoder, a float of another width, a malformed
frame) returns None: the general path decodes it, with its own checks and its own words
for what is wrong.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, Final

import cbor2

from patterns._records import BYTES_HEAD, DOUBLE, ONE_BYTE, SMALL, read_map

__all__ = ["byte_string", "read", "write"]

_MAX_ID: Final = 2**64
_PREFIXES: dict[tuple[int, str, str], bytes] = {}
_MAX_PREFIXES: Final = 1024  # senders and kinds a process uses: few; the cache never grows past this
_HEADS: dict[bytes, tuple[str, str, int, int]] = {}
"""Heads read before, up to the sender's end: (kind, sender, max_kind, max_sender) for the
exact bytes, so the next frame from the same sender of the same kind skips decoding them."""
_UINT: Final = [bytes([value]) for value in range(24)]
_U64: Final = struct.Struct(">Q")
_ID_RE: Final = struct.Struct(">Q4xQ")  # an 8-byte id, the re key's 4 bytes (checked), an 8-byte re
_ID, _RE, _DL, _B = b"\x62id", b"\x62re", b"\x62dl\xfb", b"\x61b"
_ID64, _RE64 = _ID + b"\x1b", _RE + b"\x1b"  # the common id and re: random 62-bit numbers
_LONG: Final = 0x1_0000_0000  # from here an unsigned integer takes 8 bytes


def _uint(value: int) -> bytes:
    if value < 24:
        return _UINT[value]
    if value < 0x100:
        return b"\x18" + value.to_bytes(1, "big")
    if value < 0x10000:
        return b"\x19" + value.to_bytes(2, "big")
    if value < 0x1_0000_0000:
        return b"\x1a" + value.to_bytes(4, "big")
    return b"\x1b" + value.to_bytes(8, "big")


def byte_string(value: bytes) -> bytes:
    """``value`` as a CBOR byte string (head and bytes), as cbor2 writes it."""
    length = len(value)
    if length < 256:
        return BYTES_HEAD[length] + value
    head = _uint(length)
    return bytes([0x40 | head[0]]) + head[1:] + value


def _prefix(count: int, kind: str, sender: str, max_kind: int, max_sender: int) -> bytes | None:
    key = (count, kind, sender)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if type(kind) is not str or type(sender) is not str:  # subclasses: the general path
            return None
        if not 0 < len(kind) <= max_kind or len(sender) > max_sender:
            return None
        try:
            prefix = (
                bytes([0xA0 + count]) + b"\x61v\x01\x61k" + cbor2.dumps(kind) + b"\x61s" + cbor2.dumps(sender)
            )
        except Exception:  # noqa: BLE001 - lone surrogates: the general path says why
            return None
        if len(_PREFIXES) >= _MAX_PREFIXES:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    return prefix


def write(
    kind: str, sender: str, ident: int, re: int | None, deadline: float | None, body: bytes | None,
    max_kind: int, max_sender: int,
) -> bytes | None:  # fmt: skip
    """The frame for these fields and ``body`` (the body's encoding, None for no ``b``), or
    None when a field is not valid or not of the common form (the general path decides)."""
    if type(ident) is not int or not 0 <= ident < _MAX_ID:
        return None
    count = 4 + (re is not None) + (deadline is not None) + (body is not None)
    prefix = _PREFIXES.get((count, kind, sender))
    if prefix is None:
        prefix = _prefix(count, kind, sender, max_kind, max_sender)
        if prefix is None:
            return None
    parts = [prefix, _ID64, ident.to_bytes(8, "big")] if ident >= _LONG else [prefix, _ID, _uint(ident)]
    if re is not None:
        if type(re) is not int or not 0 <= re < _MAX_ID:
            return None
        parts += (_RE64, re.to_bytes(8, "big")) if re >= _LONG else (_RE, _uint(re))
    if deadline is not None:
        if type(deadline) is not float or not math.isfinite(deadline):  # an int: the general path
            return None
        parts += (_DL, DOUBLE.pack(deadline))
    if body is not None:
        parts += (_B, body)
    return b"".join(parts)


def _text(data: bytes, pos: int) -> tuple[str, int] | None:
    """The text string whose head is at ``pos`` (lengths up to 65535), and where it ends."""
    head = data[pos]
    if 0x60 <= head <= 0x77:
        start, length = pos + 1, head - 0x60
    elif head == 0x78:
        start, length = pos + 2, data[pos + 1]
    elif head == 0x79:
        start, length = pos + 3, int.from_bytes(data[pos + 1 : pos + 3], "big")
    else:
        return None
    end = start + length
    if end > len(data):
        return None
    try:
        return data[start:end].decode("utf-8"), end
    except UnicodeDecodeError:
        return None


def _read_uint(data: bytes, pos: int) -> tuple[int, int] | None:
    head = data[pos]
    if head < 0x18:
        return head, pos + 1
    if 0x18 <= head <= 0x1B:
        width = 1 << (head - 0x18)
        end = pos + 1 + width
        if end > len(data):
            return None
        return int.from_bytes(data[pos + 1 : end], "big"), end
    return None


def read(
    data: bytes, decode_body: Callable[[memoryview, int], Any], max_kind: int, max_sender: int
) -> tuple[str, str, int, Any, int | None, float | None] | None:
    """(kind, sender, id, body, re, deadline) of a frame of the common layout, or None.

    ``decode_body(view, size)`` decodes the body's bytes strictly (one item filling them, no
    shared-memory slot) or raises; any error here means None: the general path decodes again.
    A body of one byte (a small integer, a boolean, null), an unsigned integer, or a byte or
    text string of under 64 KiB is read here, without cbor2."""
    try:
        count = data[0] - 0xA0
        if not 4 <= count <= 7:
            return None
        # A head read before (:data:`_HEADS`): its bytes up to the sender's end, where a short
        # kind and a short sender say it ends (inline: a call less a frame).
        kind_length = data[6] - 0x60
        known = None
        if 0 < kind_length < 24:
            pos = 10 + kind_length + data[9 + kind_length] - 0x60
            if pos > 9 + kind_length:
                known = _HEADS.get(data[:pos])
        if known is not None and known[2] == max_kind and known[3] == max_sender:
            kind, sender = known[0], known[1]
        else:
            got = _head(data, max_kind, max_sender)
            if got is None:
                return None
            kind, sender, pos = got
        size = len(data)
        left = count - 4
        re = deadline = body = None
        if data[pos : pos + 4] == _ID64:  # the common id: 8 bytes
            if left and data[pos + 12 : pos + 16] == _RE64:  # and the common re: one unpack for both
                ident, re = _ID_RE.unpack_from(data, pos + 4)
                pos += 24
                left -= 1
            else:
                ident = _U64.unpack_from(data, pos + 4)[0]
                pos += 12
        else:
            if data[pos : pos + 3] != _ID:
                return None
            number = _read_uint(data, pos + 3)
            if number is None:
                return None
            ident, pos = number
        if left and re is None and data[pos : pos + 3] == _RE:  # (None: not read above; never twice)
            if data[pos + 3] == 0x1B and pos + 12 <= size:
                re = _U64.unpack_from(data, pos + 4)[0]
                pos += 12
            else:
                number = _read_uint(data, pos + 3)
                if number is None:
                    return None
                re, pos = number
            left -= 1
        if left and data[pos : pos + 4] == _DL:
            if pos + 12 > size:
                return None
            deadline = DOUBLE.unpack_from(data, pos + 4)[0]
            if not math.isfinite(deadline):
                return None
            pos += 12
            left -= 1
        if left == 1 and data[pos : pos + 2] == _B:
            pos += 2
            head = data[pos]
            if pos + 1 == size and head in ONE_BYTE:
                body = ONE_BYTE[head]
            elif 0x18 <= head <= 0x1B and pos + 1 + (1 << (head - 0x18)) == size:  # an unsigned integer
                body = int.from_bytes(data[pos + 1 :], "big")
            elif 0x40 <= head < 0x58 and pos + 1 + head - 0x40 == size:  # a short byte string
                body = data[pos + 1 :]
            elif head == 0x58 and pos + 2 + data[pos + 1] == size:  # one of 24..255 bytes
                body = data[pos + 2 :]
            elif 0x60 <= head < 0x78 and pos + 1 + head - 0x60 == size:  # a short text string
                body = data[pos + 1 :].decode("utf-8")  # (invalid: None below, cbor2 says why)
            elif head == 0x78 and pos + 2 + data[pos + 1] == size:  # one of 24..255 bytes
                body = data[pos + 2 :].decode("utf-8")
            elif head == 0x79 and pos + 3 + (data[pos + 1] << 8 | data[pos + 2]) == size:  # 256 bytes to 64 KiB
                body = data[pos + 3 :].decode("utf-8")
            elif 0xA0 <= head <= 0xA0 + SMALL and (body := read_map(data, pos, size)) is not None:
                pass  # a small record: a poll's question, its answer (``patterns._records``)
            else:
                body = _bytes_body(data, pos) if 0x58 <= head <= 0x5B else None
                if body is None:
                    body = decode_body(memoryview(data)[pos:], size)
            pos = size
            left = 0
        if left or pos != size:
            return None
        return kind, sender, ident, body, re, deadline
    except Exception:  # noqa: BLE001 - a short or odd frame: the general path says what is wrong
        return None


def _head(data: bytes, max_kind: int, max_sender: int) -> tuple[str, str, int] | None:
    """(kind, sender, where the head ends), read from the bytes (and noted in :data:`_HEADS`)."""
    if data[1:6] != b"\x61v\x01\x61k":
        return None
    got = _text(data, 6)
    if got is None or not 0 < len(got[0]) <= max_kind:
        return None
    kind, pos = got
    if data[pos : pos + 2] != b"\x61s":
        return None
    got = _text(data, pos + 2)
    if got is None or len(got[0]) > max_sender:
        return None
    sender, pos = got
    if len(_HEADS) >= _MAX_PREFIXES:
        _HEADS.clear()
    _HEADS[data[:pos]] = (kind, sender, max_kind, max_sender)
    return kind, sender, pos


def _bytes_body(data: bytes, pos: int) -> bytes | None:
    """A body that is one byte string filling the rest of the frame, sliced out (None otherwise)."""
    head = data[pos]
    if not 0x40 <= head <= 0x5A:
        return None
    if head < 0x58:
        start, length = pos + 1, head - 0x40
    else:
        width = 1 << (head - 0x58)
        start = pos + 1 + width
        length = int.from_bytes(data[pos + 1 : start], "big")
    return data[start:] if start + length == len(data) else None
