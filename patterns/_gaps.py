"""Frames in pieces: large buffers left out of the encoded bytes, spliced in by the sender.

cbor2 copies every byte string it writes into its own buffer (a 64 MiB payload took 62 ms
to encode here against ~15-27 ms for one memcpy), and NNG then copies the frame again into
its message. So a frame with a large buffer is encoded without it: the hooked encoder
(:mod:`patterns._cbor`) writes the byte string's head, then :data:`MARKER` where the bytes
would go, and keeps the buffer. :func:`split` cuts the encoded bytes at the markers and
puts the buffers back, as :data:`Parts`; the socket copies the parts straight into one NNG
message (:func:`patterns._nng.message_from_parts`): one copy, the bytes on the wire
exactly those ``b"".join(parts)`` would be, which are the one-piece encoder's.

The marker is 16 random bytes drawn once per process: a body cannot contain it by
accident, and :func:`split` refuses (None) an encoding where it does not appear exactly
once per buffer left out, so the caller encodes again in one piece.
"""

from __future__ import annotations

import secrets
from typing import Final

__all__ = ["GAP_MIN", "MARKER", "Parts", "join", "split", "total"]

GAP_MIN: Final = 64 * 1024
"""Buffers this long or longer are left out of the encoding (below it a copy costs less
than a piece: a few µs at most)."""

MARKER: Final = secrets.token_bytes(16)

Parts = tuple[bytes | memoryview, ...]
"""A frame as consecutive pieces: encoded bytes and the (byte-format) buffers between them."""


def split(data: bytes, gaps: list[memoryview]) -> Parts | None:
    """``data`` with each marker replaced by the next of ``gaps``; None when the markers
    in ``data`` are not exactly one per gap."""
    if not gaps:
        return (data,)
    if data.count(MARKER) != len(gaps):
        return None
    parts: list[bytes | memoryview] = []
    start = 0
    for view in gaps:
        at = data.index(MARKER, start)
        parts += (data[start:at], view)
        start = at + len(MARKER)
    parts.append(data[start:])
    return tuple(part for part in parts if len(part))


def total(parts: Parts) -> int:
    """The frame's length in bytes."""
    return sum(part.nbytes if type(part) is memoryview else len(part) for part in parts)


def join(parts: Parts) -> bytes:
    """The frame in one piece (a copy of each large buffer)."""
    return parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
