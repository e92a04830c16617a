"""The envelope and its wire format: no sockets, no clock; files only through a placement.

Every frame this toolkit sends (except on the explicit raw-bytes path) is one CBOR
map, the *envelope*. ``docs/wire-format.md`` is the normative description; in short:

====== ======== ======== ==================================================
key    type     required meaning
====== ======== ======== ==================================================
``v``  uint     yes      format version, currently ``1``
``k``  text     yes      kind: what the frame is for (``"data"``, ``"survey"``, ...)
``s``  text     yes      sender name (may be empty)
``id`` uint     yes      message id, unique per sender, < 2**64
``re`` uint     no       correlation id: the ``id`` this frame answers
``dl`` float    no       deadline, seconds since the Unix epoch
``b``  any      no       body (absent means ``null``)
``shm`` array   no       shared-memory references; the body points into it with CBOR
                         tag 28270 around an index (see :mod:`patterns.shm.codec`)
====== ======== ======== ==================================================

Decoding is strict: anything else raises :class:`MalformedMessage`.

The CBOR item codec underneath (:func:`encode_body`, :func:`decode_body`, the tag and
type policy) is :mod:`patterns._cbor`. Side effects, exactly:

* :func:`decode` has none. A body's shared-memory tag becomes the
  :class:`~patterns.shm.ShmRef` it indexes in ``shm`` (checked, *unresolved*: nothing is
  opened); attaching the segment is the receiving socket's step (``BaseSocket._unpack``
  calls :func:`patterns.shm.codec.resolve`).
* :func:`encode` has none without a ``placement``. With one (a socket sending to peers
  on this host), :meth:`Placement.put` creates a segment in the segment directory for
  each large buffer; ``encode`` removes them (``placement.abort()``) if it fails, and
  otherwise the caller finishes the placement once the frame is sent or not.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Final

from patterns._cbor import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_DEPTH,
    Slot,
    decode_body,
    decode_item,
    decode_nested,
    encode_body,
    encode_plain,
    malformed,
    unencodable_part,
)
from patterns._cbor import encode_parts as encode_body_parts
from patterns._codec_plain import PLAIN_DEPTH, Encoded, is_plain
from patterns._envelope import Envelope, received
from patterns._gaps import GAP_MIN, Parts, join, total
from patterns._head import byte_string, read, write
from patterns._records import BYTES_HEAD, write_map
from patterns._scan import LARGE_STRING
from patterns.errors import BadReference, EncodeError, MessageTooLarge
from patterns.shm.codec import Placement
from patterns.shm.ref import ShmRef

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_DEPTH",
    "MAX_KIND_LENGTH",
    "MAX_SENDER_LENGTH",
    "VERSION",
    "Envelope",
    "common_frame",
    "decode",
    "decode_body",
    "encode",
    "encode_body",
    "encode_common",
    "encode_parts",
    "read_common",
    "unencodable_part",
]

VERSION: Final = 1
"""The envelope format version this module writes and accepts."""

MAX_KIND_LENGTH: Final = 64
"""Longest ``kind`` accepted, in characters."""

MAX_SENDER_LENGTH: Final = 256
"""Longest ``sender`` name accepted, in characters (it may be empty)."""

_MAX_ID: Final = 2**64
_SEALED: Final = b"\xffS"  # how a frame sealed by a guard begins (0xff never starts CBOR)

_REQUIRED: Final = frozenset({"v", "k", "s", "id"})
_ALLOWED: Final = _REQUIRED | {"re", "dl", "b", "shm"}


def _show(value: object) -> str:
    """Describe a peer-supplied value for an error message without ever failing.

    ``repr`` is not safe here: an int past 4300 decimal digits (a ~1.8 kB bignum)
    raises ``ValueError``, and a large container makes a huge string.
    """
    if value is None or type(value) in (bool, float) or (type(value) is int and value.bit_length() <= 64):
        return repr(value)
    if type(value) is int:
        return f"an integer of {value.bit_length()} bits"
    return f"a {type(value).__name__}"


def encode(
    envelope: Envelope, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE, placement: Placement | None = None
) -> bytes:
    """Encode an envelope; raises :class:`MessageTooLarge` past ``max_size``.

    With a ``placement`` (the peers share this host), large buffers in the body go to
    shared memory and the envelope carries their references in ``shm``; the caller
    calls ``placement.sent()`` or ``placement.abort()`` once the send is done or failed.
    """
    return join(encode_parts(envelope, max_size=max_size, placement=placement))


def encode_parts(
    envelope: Envelope, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE, placement: Placement | None = None
) -> Parts:
    """:func:`encode` in pieces: each inline buffer of at least :data:`~patterns._gaps.GAP_MIN`
    bytes is a part of its own, not copied (a socket copies the parts once, into NNG's
    message); ``b"".join`` of the parts is exactly what :func:`encode` returns."""
    limit = GAP_MIN if placement is None else min(GAP_MIN, placement.policy.threshold)
    data = encode_common(envelope, limit=limit, max_size=max_size)
    if data is not None:
        return (data,)
    if type(envelope.id) is not int or not 0 <= envelope.id < _MAX_ID:
        raise EncodeError(f"message id {envelope.id!r} is not an integer in 0..2**64-1")
    if not isinstance(envelope.kind, str) or not 0 < len(envelope.kind) <= MAX_KIND_LENGTH:
        raise EncodeError(f"kind {envelope.kind!r} must be text of 1..{MAX_KIND_LENGTH} characters")
    if not isinstance(envelope.sender, str) or len(envelope.sender) > MAX_SENDER_LENGTH:
        raise EncodeError(
            f"sender {envelope.sender!r} must be text of at most {MAX_SENDER_LENGTH} characters"
        )
    if envelope.re is not None and (type(envelope.re) is not int or not 0 <= envelope.re < _MAX_ID):
        raise EncodeError(f"correlation id {envelope.re!r} is not an integer in 0..2**64-1")
    if envelope.deadline is not None and not math.isfinite(envelope.deadline):
        raise EncodeError(f"deadline {envelope.deadline!r} is not a finite number of seconds")
    frame: dict[str, Any] = {"v": VERSION, "k": envelope.kind, "s": envelope.sender, "id": envelope.id}
    if envelope.re is not None:
        frame["re"] = envelope.re
    if envelope.deadline is not None:
        frame["dl"] = float(envelope.deadline)
    if envelope.body is not None:
        frame["b"] = envelope.body
    if envelope.shm is not None:
        frame["shm"] = list(envelope.shm)
    try:
        if placement is None:
            parts = encode_body_parts(frame)
        else:
            try:
                parts = encode_body_parts(frame, placement)
                if placement.refs:  # buffers went to shared memory: encode again with their references
                    frame["shm"] = placement.refs  # (the same objects get the same indexes)
                    parts = encode_body_parts(frame, placement)
            except BaseException:
                placement.abort()
                raise
    except EncodeError as exc:
        raise _body_error(envelope, exc) from exc.__cause__
    size = total(parts)
    if size > max_size:
        if placement is not None:
            placement.abort()
        raise MessageTooLarge(
            f"a {envelope.kind!r} message of {size} bytes exceeds max_message_size={max_size}"
        )
    return parts


def encode_common(
    envelope: Envelope, *, limit: int, max_size: int = DEFAULT_MAX_MESSAGE_SIZE
) -> bytes | None:
    """:func:`encode` for the common frame: no ``shm``, a plain body holding no buffer of
    ``limit`` bytes or more (so no placement could take one: a sender may skip making
    it). None for any other envelope (:func:`encode_parts` encodes it, or says why not)."""
    if envelope.shm is not None:
        return None
    return common_frame(envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re,
                        envelope.deadline, limit=limit, max_size=max_size)  # fmt: skip


def common_frame(
    kind: str, sender: str, ident: int, body: Any, re: int | None, deadline: float | None, *,
    limit: int, max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> bytes | None:  # fmt: skip
    """:func:`encode_common` for the fields of an envelope without ``shm``, not built (a
    sender's own message: no :class:`Envelope` needed when this is not None): the frame of
    a body that is plain and holds no buffer of ``limit`` bytes or more (nothing for shared
    memory, nothing to splice), written without the frame's dict; None for any other body
    (the general path encodes it, or says what is wrong)."""
    if body is None:
        encoded = None
    elif type(body) is bytes and len(body) < limit:
        length = len(body)  # (``byte_string``, inline for the common short body: a call less)
        encoded = BYTES_HEAD[length] + body if length < 256 else byte_string(body)
    elif type(body) is dict and (encoded := write_map(body, limit)) is not None:
        pass  # a map of a few short fields, written without cbor2: an ask, a question
    elif type(body) is Encoded:
        encoded = body.data  # encoded by its sender (it holds no buffer: encode_vouched)
    elif is_plain(body, PLAIN_DEPTH - 1, limit):
        try:
            encoded = encode_plain(body)
        except EncodeError:
            return None
    else:
        return None
    data = write(kind, sender, ident, re, deadline, encoded, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)
    if data is not None and len(data) > max_size:
        raise MessageTooLarge(f"a {kind!r} message of {len(data)} bytes exceeds max_message_size={max_size}")
    return data


def _body_error(envelope: Envelope, exc: EncodeError) -> EncodeError:
    """``exc`` in terms of the body the sender gave (not the frame around it): what has no
    CBOR form, where in the body it sits, and why."""
    where = unencodable_part(envelope.body) or exc.__cause__ or exc  # a cycle has no one culprit
    article = "an" if envelope.kind[:1].lower() in "aeiou" else "a"
    return EncodeError(f"cannot encode the body of {article} {envelope.kind!r} message as CBOR: {where}")


def decode(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_items: int = DEFAULT_MAX_ITEMS,
    measure: bool = True,
) -> Envelope:
    """Strictly decode one envelope; raises :class:`MalformedMessage` on any deviation.

    The cost bounds come first, from the CBOR heads, before any object is built
    (:mod:`patterns._scan`): at most ``max_items`` data items (``reason="items"``), map
    keys of text or bytes only (``"key"``), arrays and maps in proportion to the frame's
    length (``"cost"``). A frame of at most ``max_items`` bytes meets the first and the
    last by its size; it is walked only with ``measure=True`` (the default), which also
    fills in :attr:`Envelope.weight` (otherwise left at the frame's length); cbor2 checks
    its keys as it reads.

    Pure: a shared-memory reference in the body comes back as a :class:`ShmRef`, checked
    (well formed, its index in range and used once, ``reason="shm"`` otherwise) but not
    attached: that is the receiving socket's side effect (:func:`patterns.shm.codec.resolve`).
    """
    size = len(data)
    if type(data) is bytes and not measure and size <= max_items and size < LARGE_STRING and size <= max_size:
        fields = read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)  # (``read_common``, inline)
        if fields is not None:
            return received(*fields, size)
    if data[:2] == _SEALED:
        raise malformed("sealed", len(data), "it is sealed with a secret, and this socket was given none")
    frame, slots, overhead = decode_item(data, max_size, max_items, measure=measure)
    envelope = _envelope(frame, len(data), len(data) + overhead)
    return _with_references(envelope, len(data)) if slots else envelope


def read_common(
    data: bytes | bytearray | memoryview, *, max_size: int, max_items: int, measure: bool
) -> tuple[str, str, int, Any, int | None, float | None] | None:
    """(kind, sender, id, body, re, deadline) of a small common frame exactly as
    :func:`decode` would find them, or None: :func:`decode` then says what it holds (a
    receiver that wants only the body need not build the :class:`Envelope`)."""
    size = len(data)
    if type(data) is not bytes or measure or size > max_items or size >= LARGE_STRING or size > max_size:
        return None
    return read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)


def _with_references(envelope: Envelope, size: int) -> Envelope:
    """Replace each slot in the body by the :class:`ShmRef` it indexes in ``shm``."""
    if envelope.shm is None:
        raise malformed("shm", size, "the body refers to shared memory but the envelope has no 'shm'")
    try:
        refs = [ShmRef.from_wire(item) for item in envelope.shm]
    except BadReference as exc:
        raise malformed("shm", size, f"a shared-memory reference is malformed: {exc}") from exc
    return dataclasses.replace(envelope, body=_swap_slots(envelope.body, refs, set(), size))


# A module function, not a closure: a recursive closure is a reference cycle, left for the
# cyclic GC on every frame with references (patterns/shm/codec.py, resolve(): the same).
def _swap_slots(value: Any, refs: list[ShmRef], used: set[int], size: int) -> Any:
    if type(value) is Slot:
        if value.index >= len(refs) or value.index in used:
            raise malformed("shm", size, f"shared-memory slot {value.index} is out of range or used twice "
                                     f"({len(refs)} references)")  # fmt: skip
        used.add(value.index)
        return refs[value.index]
    if type(value) is list:
        return [_swap_slots(item, refs, used, size) for item in value]
    if type(value) is dict:
        return {key: _swap_slots(item, refs, used, size) for key, item in value.items()}
    return value


def _envelope(frame: Any, size: int, weight: int) -> Envelope:
    """The envelope in a decoded ``frame`` of ``size`` bytes (``weight``: see :class:`Envelope`)."""
    # Fast path for the common, valid frame: a few C-level checks, no generator.
    if type(frame) is dict and _REQUIRED <= frame.keys() <= _ALLOWED:
        ident, kind, sender, re, deadline = (
            frame["id"],
            frame["k"],
            frame["s"],
            frame.get("re"),
            frame.get("dl"),
        )
        if (
            type(frame["v"]) is int
            and frame["v"] == VERSION
            and type(kind) is str
            and 0 < len(kind) <= MAX_KIND_LENGTH
            and type(sender) is str
            and len(sender) <= MAX_SENDER_LENGTH
            and type(ident) is int
            and 0 <= ident < _MAX_ID
            and (re is None or (type(re) is int and 0 <= re < _MAX_ID))
            and (deadline is None or (type(deadline) is float and math.isfinite(deadline)))
            and frame.get("shm") is None
        ):
            return Envelope(kind, sender, ident, frame.get("b"), re, deadline, None, size, weight)
    return _decode_checked(frame, size, weight)


def _decode_checked(frame: Any, size: int, weight: int) -> Envelope:
    """The slow path of :func:`_envelope`: every check, with a precise reason on failure."""
    if not isinstance(frame, dict):
        raise malformed("shape", size, f"expected a CBOR map, got {type(frame).__name__}")
    keys = frame.keys()
    if not all(isinstance(key, str) for key in keys):
        raise malformed("shape", size, "envelope keys must all be text strings")
    version = frame.get("v")
    if type(version) is not int:
        raise malformed("shape", size, f"version 'v' must be an unsigned integer, got {_show(version)}")
    if version != VERSION:
        detail = f"unknown envelope version {_show(version)} (this side speaks {VERSION})"
        raise malformed("version", size, detail)
    missing = _REQUIRED - keys
    if missing:
        raise malformed("shape", size, f"missing required keys {sorted(missing)}")
    extra = keys - _ALLOWED
    if extra:
        raise malformed("shape", size, f"unknown keys {sorted(extra)} in a version {VERSION} envelope")
    kind, sender, ident = frame["k"], frame["s"], frame["id"]
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_LENGTH:
        raise malformed("shape", size, f"kind 'k' must be text of 1..{MAX_KIND_LENGTH} characters")
    if not isinstance(sender, str) or len(sender) > MAX_SENDER_LENGTH:
        raise malformed("shape", size, f"sender 's' must be text of at most {MAX_SENDER_LENGTH} characters")
    if type(ident) is not int or not 0 <= ident < _MAX_ID:
        raise malformed("shape", size, f"message id must be an unsigned 64-bit integer, got {_show(ident)}")
    re = frame.get("re")
    if re is not None and (type(re) is not int or not 0 <= re < _MAX_ID):
        detail = f"correlation id 're' must be an unsigned 64-bit integer, got {_show(re)}"
        raise malformed("shape", size, detail)
    deadline = frame.get("dl")
    if deadline is not None:
        if type(deadline) not in (int, float):
            raise malformed("shape", size, f"deadline 'dl' must be a finite number, got {_show(deadline)}")
        try:
            deadline = float(deadline)
        except OverflowError:  # an integer beyond float range (a bignum)
            deadline = math.inf
        if not math.isfinite(deadline):
            raise malformed("shape", size, f"deadline 'dl' must be a finite number, got {deadline!r}")
    shm = frame.get("shm")
    if shm is not None:
        if not isinstance(shm, list):
            raise malformed("shape", size, "shared-memory references 'shm' must be an array")
        shm = tuple(shm)
    return Envelope(
        kind=kind,
        sender=sender,
        id=ident,
        body=frame.get("b"),
        re=re,
        deadline=deadline,
        shm=shm,
        size=size,
        weight=weight,
    )
