"""What has no CBOR form here, and where: the words of the codec's encode errors.

The envelope codec (:mod:`patterns._cbor`) refuses every Python type cbor2 would write with
a semantic tag, and map keys other than text or bytes. When it refuses a value, these pure
functions walk it to say which part is at fault, where it sits and why.
"""

from __future__ import annotations

import array
import datetime
import decimal
import fractions
import ipaddress
import re as _re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import cbor2

__all__ = ["MAX_DEPTH", "PLAIN_HINT", "TAGGED_TYPES", "bad_key", "kind_of", "unencodable_part"]

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays and maps accepted in a frame."""

PLAIN_HINT: Final = "send plain data (numbers, text, bytes, lists, maps) instead"


def kind_of(value: Any) -> str:
    """``value``'s type with its article, for an error message: "a Summary", "an int"."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


# cbor2 writes these Python types with semantic tags, which every receiver of this
# format rejects; refusing them here makes the sender fail instead of the peer.
TAGGED_TYPES: Final = (
    datetime.datetime, datetime.date, decimal.Decimal, fractions.Fraction, uuid.UUID, _re.Pattern,
    set, frozenset, complex, cbor2.CBORTag,
    ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network,
    ipaddress.IPv4Interface, ipaddress.IPv6Interface,
)  # fmt: skip
_LEAVES: Final = (str, bytes, bytearray, memoryview, array.array, range, int, float, type(None))
"""What holds no map (a buffer is written as one byte string): :func:`_bad_key` stops there."""


def bad_key(value: Any, depth: int = MAX_DEPTH) -> str | None:
    """Where ``value`` holds a map key receivers refuse (not text or bytes), in words.

    By ``isinstance``, as cbor2 writes them: any ``Mapping`` (``OrderedDict``,
    ``Counter``) is a map whose keys count, any other ``Sequence`` (``deque``) an array,
    and a ``str`` subclass key (a ``StrEnum``) is text, which receivers take."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | bytes):
                return f"a map key {key!r:.60} ({type(key).__name__})"
            found = bad_key(item, depth - 1) if depth and not isinstance(item, _LEAVES) else None
            if found:
                return f"{found} under the key {key!r:.60}"
    elif isinstance(value, Sequence) and not isinstance(value, _LEAVES):
        for index, item in enumerate(value):
            found = bad_key(item, depth - 1) if depth and not isinstance(item, _LEAVES) else None
            if found:
                return f"{found} at index {index}"
    return None


def unencodable_part(value: Any) -> str | None:
    """What in ``value`` has no CBOR form here, where it sits and why, in words (``"a
    Summary at ['r'][0][3] has no CBOR form here; ..."``, with no ``at`` for ``value``
    itself), or None if nothing is found within :data:`MAX_DEPTH` levels (a cycle, say).
    For error messages only: it walks the whole value."""
    found = _culprit(value, "", MAX_DEPTH)
    if found is None:
        return None
    what, path, why = found
    return f"{what} at {path} {why}" if path else f"{what} {why}"


def _culprit(value: Any, path: str, depth: int) -> tuple[str, str, str] | None:
    if value is None or isinstance(value, bool | int | float | bytes | bytearray | memoryview | array.array):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"text {value!r:.40}", path, "holds lone surrogates, which UTF-8 cannot carry"
        return None
    if isinstance(value, TAGGED_TYPES):
        return (
            kind_of(value),
            path,
            f"would be written as a CBOR tag, which receivers refuse; {PLAIN_HINT}",
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | bytes):
                return (
                    f"a map key {key!r:.60} ({type(key).__name__})",
                    path,
                    ("is refused: map keys must be text or bytes (docs/wire-format.md §3)"),
                )
            found = _culprit(item, f"{path}[{key!r:.60}]", depth - 1) if depth else None
            if found:
                return found
        return None
    if isinstance(value, Sequence) and not isinstance(value, range):
        for index, item in enumerate(value):
            found = _culprit(item, f"{path}[{index}]", depth - 1) if depth else None
            if found:
                return found
        return None
    try:
        memoryview(value).release()  # a numpy array, say: written as a byte string
    except TypeError:
        return (
            kind_of(value),
            path,
            f"has no CBOR form here; {PLAIN_HINT}, e.g. a dict of its fields",
        )
    return None
