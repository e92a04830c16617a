"""The cost of a frame, read from its CBOR heads before anything is built: pure code.

cbor2 builds Python objects as it reads, so a frame must be judged before it is
handed over. :func:`scan` walks the heads (it skips string payloads, builds nothing)
and refuses, by the first rule met:

* ``items``: more data items than the receiver's ``max_items``. Counted as they are
  announced (an array of 3 announces 3 more), so the header that takes the count past
  the limit is refused at once, before its elements are read;
* ``key``: a map key that is not text or bytes (the rule cbor2 itself applies with
  ``strict_hashable_types``, which the decoder also sets). Bignums, floats, arrays and
  maps as keys are how one frame makes a dict cost the square of its size: CPython
  hashes ``k * (2**61 - 1)`` to 0 for every ``k``, and a tuple of such integers collides
  as a whole; text and bytes hash with a per-process secret;
* ``cost``: more arrays and maps than one per 8 bytes of the frame plus
  :data:`CONTAINER_ALLOWANCE`: an empty container is 1 byte of CBOR and 56+ bytes of
  Python, so this keeps a frame's decoded size proportional to its length.

A container that announces more items than bytes remain is refused at once as
``cbor`` (truncated). Anything else the walk does not understand (other truncations,
indefinite lengths, reserved values, nesting past the depth limit) ends the walk:
cbor2 then reads the frame and refuses it with the precise reason, having built only
what the walk already allowed.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONTAINER_ALLOWANCE",
    "CONTAINER_WEIGHT",
    "DEFAULT_MAX_ITEMS",
    "ITEM_WEIGHT",
    "LARGE_STRING",
    "scan",
]

DEFAULT_MAX_ITEMS: Final = 65_536
"""Default limit on the CBOR data items of one frame (every head: keys, values, elements,
tags), so one frame's decoded objects stay within a few megabytes whatever its length."""

CONTAINER_ALLOWANCE: Final = 1024
"""Arrays and maps a frame may hold beyond one per 8 bytes of its length."""

LARGE_STRING: Final = 64 * 1024
"""Byte strings this long or longer are listed by :func:`scan` when asked (``strings``)."""

ITEM_WEIGHT: Final = 64
CONTAINER_WEIGHT: Final = 176
"""The estimate of a frame's decoded size (:attr:`patterns.Envelope.weight`, what a
queue of messages budgets) is its length plus ``ITEM_WEIGHT`` bytes per item (a pointer
and a small object: an int is 28 bytes, a short str 50) plus ``CONTAINER_WEIGHT`` more
per array or map (a one-pair dict is 232 bytes)."""


def _heads() -> tuple[tuple[int, int, int], ...]:
    """Per head byte: (major type, argument or -(bytes of argument that follow) or -9 for
    indefinite/reserved, 1 when it may not be a map key)."""
    table = []
    for head in range(256):
        major, info = head >> 5, head & 31
        arg = info if info < 24 else -(1 << (info - 24)) if info < 28 else -9
        bad_key = major not in (2, 3)
        table.append((major, arg, int(bad_key)))
    return tuple(table)


_HEADS: Final = _heads()


def scan(
    data: bytes | bytearray | memoryview, max_items: int, max_depth: int,
    strings: list[tuple[int, int, int]] | None = None,
) -> tuple[str, str] | int:  # fmt: skip
    """``(reason, detail)`` for a frame over a bound, else the bytes its objects take
    beyond its length, estimated (not a verdict on its well-formedness: that is cbor2's).

    With ``strings``, the byte strings of at least :data:`LARGE_STRING` bytes that are not
    map keys are listed there as ``(head start, payload start, payload end)``, in order,
    as far as the walk went: the decoder copies those out once itself (cbor2 reads them in
    64 KiB chunks and joins them: several passes over the payload)."""
    end = len(data)
    max_containers = CONTAINER_ALLOWANCE + end // 8
    heads = _HEADS
    pos = containers = 0
    announced = 1  # items read or announced by a container read: every one will be a head
    left = 1  # items still to read in the innermost open container (the frame is one item)
    in_map = False
    stack: list[tuple[int, bool]] = []  # the enclosing containers' (left after this one, in_map)
    while pos < end:
        start = pos
        major, arg, bad_key = heads[data[pos]]
        pos += 1
        if bad_key and in_map and not left & 1:
            return "key", _key_detail(data[pos - 1])
        if arg < 0:
            if arg == -9 or pos - arg > end:
                return (
                    ITEM_WEIGHT * announced + CONTAINER_WEIGHT * containers
                )  # indefinite length, reserved or truncated: cbor2 says which
            arg, pos = int.from_bytes(data[pos : pos - arg], "big"), pos - arg
        if major < 4:
            if major > 1:
                key = in_map and not left & 1  # (a key stays: cbor2 checks the types of keys)
                if major == 2 and strings is not None and LARGE_STRING <= arg <= end - pos and not key:
                    strings.append((start, pos, pos + arg))
                pos += arg  # a string: skip its payload
        elif major < 7:
            if major == 6:
                count = 1
            else:
                count = arg if major == 4 else 2 * arg
                containers += 1
                if containers > max_containers:
                    return "cost", (
                        f"more than {max_containers} arrays and maps in a frame of {end} bytes "
                        f"(at most {CONTAINER_ALLOWANCE} plus one per 8 bytes)"
                    )
            announced += count
            if announced > max_items:
                return "items", f"more than {max_items} CBOR data items (max_items={max_items})"
            if count > end - pos:  # each item takes a byte at least: never let cbor2 size a list by it
                return "cbor", f"a container announces {count} items but only {end - pos} bytes follow"
            if count:
                if len(stack) >= max_depth:
                    return (
                        ITEM_WEIGHT * announced + CONTAINER_WEIGHT * containers
                    )  # too deep: cbor2 refuses it with its own message
                stack.append((left - 1, in_map))
                left, in_map = count, major == 5
                continue
        left -= 1
        while not left:
            if not stack:
                return (
                    ITEM_WEIGHT * announced + CONTAINER_WEIGHT * containers
                )  # one whole item read: trailing bytes are cbor2's to report
            left, in_map = stack.pop()
    return ITEM_WEIGHT * announced + CONTAINER_WEIGHT * containers


def _key_detail(head: int) -> str:
    major, info = head >> 5, head & 31
    what = {4: "an array", 5: "a map", 6: "a tag"}.get(major, "a float or simple value")
    if major == 6 and info in (2, 3):
        what = "a bignum"
    if major < 2:
        what = "an integer"
    return f"a map key is {what}; keys must be text or bytes"
