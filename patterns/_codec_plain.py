"""The envelope codec's fast path: values cbor2 writes the same way without any hooks.

:mod:`patterns._cbor` encodes with a cbor2 encoder that carries an ``encoders`` map:
types cbor2 would write as semantic tags (datetimes, decimals, sets, UUIDs, ...) are
refused there, and every buffer passes through a Python hook that may route it to
shared memory. That map costs cbor2 about 0.8 µs more per value, and the buffer hook a
Python call per byte string: a 256-task batch took ~800 µs against ~250 µs for cbor2's
plain encoder.

:func:`is_plain` says, at C speed where it can (``set(map(type, ...))`` over each
container of more than a few items, one level of a list of lists in one pass), whether a value holds only exact
``dict``, ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``,
``bytes`` and ``bytearray``, at most :data:`PLAIN_DEPTH` containers deep. For such a
value the plain encoder writes exactly the bytes the hooked one would (the hooks never
fire: a byte string below the shared-memory threshold is written inline by both), so
the codec uses it; anything else (a subclass, a memoryview, a numpy array, a datetime,
a cycle, ...) takes the hooked encoder, which writes it or refuses it as before.
With ``limit`` (the shared-memory threshold, when the peers share the host), a byte
string of ``limit`` bytes or more also makes a value not plain: the hooked encoder puts
it in shared memory instead of copying it into the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

__all__ = ["PLAIN_DEPTH", "Encoded", "is_plain"]

PLAIN_DEPTH: Final = 64
"""Containers nested deeper than this take the hooked encoder (which also ends cycles)."""

_SCALARS: Final = frozenset({str, int, float, bool, type(None), bytes, bytearray})
_SEQUENCES: Final = frozenset({list, tuple})
_BYTES: Final = frozenset({bytes, bytearray})
_KEYS: Final = frozenset({str, bytes})  # the map keys receivers take (docs/wire-format.md §3)
_FEW: Final = 8  # up to this many items, a plain loop beats building a set of their types
_flat = chain.from_iterable


@dataclass(frozen=True, slots=True)
class Encoded:
    """A body already encoded as one CBOR item (``data``), sent as these bytes: made by
    :func:`patterns.encode_vouched`, for a body its sender built of checked values (or
    would send twice). A frame takes it whole as its body (``common_frame``), and the
    general encoder writes its bytes where it sits."""

    data: bytes


def is_plain(value: Any, depth: int = PLAIN_DEPTH, limit: int | None = None) -> bool:
    """Does ``value`` hold only plain types (exact ones), at most ``depth`` containers deep,
    and (with ``limit``) no byte string of ``limit`` bytes or more?"""
    kind = type(value)
    if kind is dict:
        if depth == 0:
            return False
        if len(value) <= _FEW or not set(map(type, value)) <= _KEYS or limit is not None:
            for key in value:
                if type(key) not in _KEYS:
                    return False  # the hooked encoder says why
                if limit is not None and type(key) in _BYTES and len(key) >= limit:
                    return False
        items = value.values()
    elif kind is list or kind is tuple:
        if depth == 0:
            return False
        items = value
    elif kind in _BYTES:
        return limit is None or len(value) < limit
    else:
        return kind in _SCALARS
    depth -= 1
    if len(items) > _FEW:
        kinds = set(map(type, items))
        if kinds <= _SCALARS:
            return limit is None or not kinds & _BYTES or _short(items, limit)
        # A list of lists (a batch of items, say): the level below in one pass.
        if depth and kinds <= _SEQUENCES:
            below = set(map(type, _flat(items)))
            if below <= _SCALARS:
                return limit is None or not below & _BYTES or _short(_flat(items), limit)
    for item in items:
        if type(item) in _SCALARS:
            if limit is not None and type(item) in _BYTES and len(item) >= limit:
                return False
        elif not is_plain(item, depth, limit):
            return False
    return True


def _short(items: Any, limit: int) -> bool:
    """No byte string among ``items`` (plain scalars) is ``limit`` bytes or longer."""
    return all(len(item) < limit for item in items if type(item) in _BYTES)
