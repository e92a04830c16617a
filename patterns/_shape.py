"""One frame shape written and read from a template: a line's most frequent frames without the general codec.

A hotline asker sends the same frame again and again: an ``ask`` from its own name with an
8-byte id, a deadline, and the body ``{"v": value, "stream": false}``. :func:`common_frame`
writes it through a dispatch on the body's type, the small-map writer's loop over the keys
and the head writer's prefix lookup; in a real round trip those cost ~4 µs of the asking
thread's CPU over writing the frame in one piece (``bench/README.md``, "Hotline"). A
:class:`Shape` holds the frame's fixed bytes, computed once: the head up to the sender
(:func:`patterns._head.write`'s prefix), and the body around one *hole*, the value.

:meth:`Shape.write` writes exactly the bytes :func:`~patterns._wire.common_frame` writes
for the same fields (a property test holds it to that), or returns None whenever the
fields are not of the shape's common form: the value is not a byte or text string of under
64 KiB (a byte string of ``limit`` bytes or more is shared memory's) nor a map that
:func:`~patterns._records.write_map` writes (a small record), the id or ``re`` is
under 2**32 (written shorter), the deadline is not a finite float. The caller then writes
the frame the general way, which also says what is wrong.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Final

import cbor2

from patterns._head import _prefix
from patterns._records import (
    BYTES_HEAD,
    DOUBLE,
    LONGEST,
    ONE_BYTE,
    SIMPLE,
    SMALL,
    SMALL_INT,
    TEXT_HEAD,
    int_head,
    read_map,
    write_map,
)

__all__ = ["HOLE", "Shape"]

_LONG: Final = 0x1_0000_0000  # from here an unsigned integer takes 8 bytes
_MAX_ID: Final = 2**64
_MARK: Final = b"\x00patterns-hole\x00"  # stands for the value while the body is encoded once
_ID64, _RE64, _DL, _B = b"\x62id\x1b", b"\x62re\x1b", b"\x62dl\xfb", b"\x61b"
_U64: Final = struct.Struct(">Q")
_SCALARS: Final = (str, int, float, bool, bytes)
_MAP_LAST: Final = 0xA0 + SMALL  # the head of the largest map a hole holds


class _Hole:
    """Where the value goes in a shape's body (:data:`HOLE`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HOLE"


HOLE: Final = _Hole()


class Shape:
    """Frames of ``kind`` from ``sender``, with ``re`` or not, a deadline or not, and the body
    ``body`` with the value in place of :data:`HOLE` (the body itself by default)."""

    __slots__ = ("_body", "_hole", "_lead", "_prefix", "_shortest", "_start", "_tail", "_tail_size", "_to_id",
                 "deadline", "kind", "re", "scalars", "sender")

    def __init__(self, kind: str, sender: str, *, re: bool, deadline: bool, body: Any = HOLE,
                 max_kind: int, max_sender: int, scalars: bool = False) -> None:  # fmt: skip
        self.kind, self.sender, self.re, self.deadline = kind, sender, re, deadline
        self.scalars = scalars
        """True: the value may also be an integer of 64 bits or less (either sign), a finite
        float, a boolean or None (a poll's question and answer); False: a byte or text string only."""
        prefix = _prefix(5 + re + deadline, kind, sender, max_kind, max_sender)
        if prefix is None:
            raise ValueError(f"no frame of kind {kind!r} from {sender!r} has a common form")
        self._prefix = prefix
        encoded = cbor2.dumps(_marked(body))
        at = encoded.index(_MARK)
        self._lead = _B + encoded[: at - 1]  # (less the marker's own one-byte head)
        self._tail = encoded[at + len(_MARK) :]
        self._body = body if type(body) is dict else None  # the body around the hole, for read
        self._hole = next((key for key, value in body.items() if value is HOLE), "") if type(body) is dict else ""
        self._start = len(prefix) + 12 * (1 + re + deadline) + len(self._lead)  # where the value's head is
        # Lengths read per frame, worked out once (``read``: a frame is read per survey or ask).
        self._to_id, self._tail_size = len(prefix), len(self._tail)
        self._shortest = self._start + self._tail_size + 1  # every fixed field and a value's head

    def read(self, data: bytes) -> tuple[int, int | None, float | None, Any] | None:
        """(id, re, deadline, body) of a frame of exactly this shape, the value a byte or
        text string of under 64 KiB or a small map, as the general decoder reads them (a property test
        holds it to that); None for any other frame (the general decoder then reads it, or
        refuses it and says why)."""
        size = len(data)
        if size < self._shortest or not data.startswith(self._prefix):
            return None  # (long enough for every fixed field: none is read past the end)
        pos = self._to_id
        if data[pos : pos + 4] != _ID64:
            return None
        ident = _U64.unpack_from(data, pos + 4)[0]
        pos += 12
        re = deadline = None
        if self.re:
            if data[pos : pos + 4] != _RE64:
                return None
            re = _U64.unpack_from(data, pos + 4)[0]
            pos += 12
        if self.deadline:
            if data[pos : pos + 4] != _DL:
                return None
            deadline = DOUBLE.unpack_from(data, pos + 4)[0]
            if not math.isfinite(deadline):
                return None
            pos += 12
        start = self._start
        if data[pos:start] != self._lead:
            return None
        head = data[start]
        if 0x40 <= head < 0x58 or 0x60 <= head < 0x78:
            begin, end = start + 1, start + 1 + (head & 0x1F)
        elif head in (0x58, 0x78) and size > start + 1:
            begin, end = start + 2, start + 2 + data[start + 1]
        elif head in (0x59, 0x79) and size > start + 2:
            begin = start + 3
            end = begin + (data[start + 1] << 8 | data[start + 2])
        elif 0xA0 <= head <= _MAP_LAST:
            end = size - self._tail_size
            try:
                value: Any = read_map(data, start, end, hint=True)
            except Exception:  # noqa: BLE001 - short, or bad UTF-8: the general decoder says what is wrong
                return None
            if value is None or not data.endswith(self._tail):
                return None
            begin = -1
        elif self.scalars:
            end = size - self._tail_size
            if head in ONE_BYTE and start + 1 == end:  # (_scalar's first case, inline: the common answer)
                value = ONE_BYTE[head]
            elif (got := _scalar(data, start, end)) is not None:
                value = got[0]
            else:
                return None
            if not data.endswith(self._tail):
                return None
            begin = -1
        else:
            return None
        if begin >= 0:
            if end + self._tail_size != size or not data.endswith(self._tail):
                return None
            value = data[begin:end]
            if head >= 0x60:
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:  # the general decoder refuses it, saying why
                    return None
        if self._body is None:  # (fill, inline)
            return ident, re, deadline, value
        body = dict(self._body)
        body[self._hole] = value
        return ident, re, deadline, body

    def fill(self, value: Any) -> Any:
        """The body of this shape with ``value`` in its hole (what the general path writes)."""
        if self._body is None:
            return value
        body = dict(self._body)
        body[self._hole] = value
        return body

    def write(self, ident: int, re: int | None, deadline: float | None, value: Any, limit: int) -> bytes | None:
        """The frame of these fields (the value in the hole), as
        :func:`~patterns._wire.common_frame` writes it with this ``limit`` (a byte string
        from there on goes the general way); None when they are not of this shape's common
        form (the general writer then decides)."""
        kind = type(value)
        if kind is bytes:
            length = len(value)
            if length >= limit:
                return None
            if length < 256:
                head = BYTES_HEAD[length]
            elif length < LONGEST:
                head = b"\x59" + length.to_bytes(2, "big")
            else:
                return None
        elif kind is str:
            if len(value) >= LONGEST:  # (as many UTF-8 bytes at least: not encoded here only to be refused)
                return None
            try:
                value = value.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: the general path says why
                return None
            length = len(value)
            if length < 256:
                head = TEXT_HEAD[length]
            elif length < LONGEST:
                head = b"\x79" + length.to_bytes(2, "big")
            else:
                return None
        elif kind is dict:  # a map of a few scalars and strings (an agent's small record), as cbor2 writes it
            written = write_map(value, limit, hint=True)
            if written is None:
                return None
            head, value = written, b""
        elif not self.scalars:
            return None
        elif value is None and self._body is None:
            return None  # no body at all: a frame without ``b`` (the general writer's)
        elif value is None or kind is bool:
            head, value = SIMPLE[value], b""
        elif kind is int and -_MAX_ID <= value < _MAX_ID:
            head, value = SMALL_INT[value] if -24 <= value < 24 else int_head(value), b""
        elif kind is float and math.isfinite(value):  # (cbor2 writes NaN and the infinities shorter)
            head, value = b"\xfb", DOUBLE.pack(value)
        else:
            return None
        if type(ident) is not int or not _LONG <= ident < _MAX_ID:
            return None
        parts = [self._prefix, _ID64, ident.to_bytes(8, "big")]
        if self.re:
            if type(re) is not int or not _LONG <= re < _MAX_ID:
                return None
            parts += (_RE64, re.to_bytes(8, "big"))
        elif re is not None:
            return None
        if self.deadline:
            if type(deadline) is not float or not math.isfinite(deadline):
                return None
            parts += (_DL, DOUBLE.pack(deadline))
        elif deadline is not None:
            return None
        parts += (self._lead, head, value, self._tail)
        return b"".join(parts)


def _scalar(data: bytes, start: int, end: int) -> tuple[Any] | None:
    """The scalar whose head is at ``start`` if it ends exactly at ``end``: an item of one
    byte, an integer of either sign with 1, 2, 4 or 8 bytes after its head (read as the
    decoder reads it, shortest form or not), a float64; None for anything else."""
    head = data[start]
    if head in ONE_BYTE:
        return (ONE_BYTE[head],) if start + 1 == end else None
    if 0x18 <= head <= 0x1B or 0x38 <= head <= 0x3B:
        width = 1 << (head & 0x1F) - 0x18
        if start + 1 + width != end:
            return None
        n = int.from_bytes(data[start + 1 : end], "big")
        return (n if head < 0x20 else -1 - n,)
    if head == 0xFB and start + 9 == end:
        return (DOUBLE.unpack_from(data, start + 1)[0],)
    return None


def _marked(body: Any) -> Any:
    """``body`` with the marker in place of the hole (which must be there, once)."""
    if body is HOLE:
        return _MARK
    if type(body) is dict:
        holes = [key for key, value in body.items() if value is HOLE]
        # Fixed values are scalars: a container would be shared by every body read (and a
        # tuple read back as one, where the decoder gives a list).
        if len(holes) == 1 and all(value is HOLE or value is None or type(value) in _SCALARS
                                   for value in body.values()):  # fmt: skip
            return {key: (_MARK if value is HOLE else value) for key, value in body.items()}
    raise ValueError(f"a shape's body must be HOLE or a map of scalars with one HOLE as a value, got {body!r:.200}")
