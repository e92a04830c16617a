"""The envelope and its CBOR wire format: pure code, no sockets, no clock, no files.

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

Side effects, exactly:

* :func:`decode` and :func:`decode_body` have none. A body's shared-memory tag becomes
  a :class:`~patterns.shm.ShmRef` (a checked, *unresolved* reference: nothing is opened);
  attaching the segment is the receiving socket's step (``BaseSocket._unpack`` calls
  :func:`patterns.shm.codec.resolve`).
* :func:`encode` and :func:`encode_body` have none without a ``placement``. With one
  (a socket sending to peers on this host), :meth:`Placement.put` creates a segment in
  the segment directory for each large buffer: the one effect of this module, owned
  and undone (``placement.abort()``) by the caller.
* Per-thread scratch state (reusable cbor2 encoders, the placement of the encoding in
  progress, a count of shared-memory tags seen by the decoder) never outlives a call.
"""

from __future__ import annotations

import array
import dataclasses
import datetime
import decimal
import fractions
import io
import ipaddress
import math
import re as _re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Final

import cbor2

from patterns._codec_plain import is_plain
from patterns.errors import BadReference, EncodeError, MalformedMessage, MessageTooLarge
from patterns.shm.codec import MAX_REFERENCES, SHM_TAG, Placement, sendable_view
from patterns.shm.ref import ShmRef
from patterns.shm.segment import SharedBuffer

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_DEPTH",
    "MAX_KIND_LENGTH",
    "MAX_SENDER_LENGTH",
    "VERSION",
    "Envelope",
    "decode",
    "decode_body",
    "encode",
    "encode_body",
]

VERSION: Final = 1
"""The envelope format version this module writes and accepts."""

DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
"""Default limit for one frame, in bytes (16 MiB). Larger payloads belong in shared memory."""

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays and maps accepted in a frame."""

MAX_KIND_LENGTH: Final = 64
"""Longest ``kind`` accepted, in characters."""

MAX_SENDER_LENGTH: Final = 256
"""Longest ``sender`` name accepted, in characters (it may be empty)."""

_MAX_ID: Final = 2**64

_REQUIRED: Final = frozenset({"v", "k", "s", "id"})
_ALLOWED: Final = _REQUIRED | {"re", "dl", "b", "shm"}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message as it travels: routing fields plus a CBOR-able ``body``.

    The fields are the wire's, as sent and received: ``deadline`` is the ``dl`` key,
    seconds since the Unix epoch (the codec reads no clock). What the sockets hand to
    applications converts it once to trio's clock (:attr:`IncomingSurvey.deadline`).
    ``shm`` holds the references in their wire form; in a decoded body each use of one
    is a :class:`~patterns.shm.ShmRef` until the receiving socket attaches it.
    """

    kind: str
    sender: str
    id: int
    body: Any = None
    re: int | None = None
    deadline: float | None = None
    shm: tuple[Any, ...] | None = None


class _Slot:
    """Where a body being decoded refers to ``shm[index]`` (the ``shm`` key may come
    later in the map, so the reference is filled in once the whole frame is read)."""

    __slots__ = ("index",)
    __hash__ = None  # type: ignore[assignment]  # never a map key: cbor2 refuses the frame

    def __init__(self, index: int) -> None:
        self.index = index


def _refuse_tag(*_args: object) -> Any:
    raise ValueError("CBOR tags other than bignums (2, 3) are not accepted")


def _tag_hook(*args: Any) -> Any:
    """Unknown tags: only a shared-memory slot (an index into ``shm``) is accepted.

    cbor2 6 calls ``hook(tag, immutable)``, cbor2 5 ``hook(decoder, tag)``."""
    tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
    if tag.tag == SHM_TAG and type(tag.value) is int and 0 <= tag.value < MAX_REFERENCES:
        _local.slots = getattr(_local, "slots", 0) + 1
        return _Slot(tag.value)
    return _refuse_tag()


# cbor2 turns many semantic tags into Python objects (regexes, shared references that
# build cycles, embedded CBOR, MIME, ...). A peer must not be able to make us build any
# of those, so every tag is refused except the two bignum tags. Built-in decoders are
# overridden explicitly; unknown tags go to the tag hook, which refuses them too.
_SEMANTIC_DECODERS: Final = {tag: _refuse_tag for tag in range(1100) if tag not in (2, 3)} | {
    tag: _refuse_tag for tag in (55799, 55800, 55801)
}


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


def _fail(reason: str, size: int, detail: str) -> MalformedMessage:
    return MalformedMessage(f"malformed frame ({size} bytes): {detail}", reason=reason, size=size)


def _refuse_type(_encoder: Any, value: Any) -> None:
    raise TypeError(
        f"a {type(value).__name__} would be written as a CBOR tag, which receivers refuse; "
        "send plain data (numbers, text, bytes, lists, maps) instead"
    )


# cbor2 writes these Python types with semantic tags, which every receiver of this
# format rejects; refusing them here makes the sender fail instead of the peer.
_TAGGED_TYPES: Final = (
    datetime.datetime, datetime.date, decimal.Decimal, fractions.Fraction, uuid.UUID, _re.Pattern,
    set, frozenset, complex, cbor2.CBORTag,
    ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network,
    ipaddress.IPv4Interface, ipaddress.IPv6Interface,
)  # fmt: skip
_local = threading.local()


def _encode_buffer(encoder: Any, value: Any) -> None:
    """A buffer: inline as a byte string, or (large, for a peer on this host) a shared-memory tag."""
    view = sendable_view(value)
    placement: Placement | None = getattr(_local, "placement", None)
    if placement is not None:
        index = placement.put(value, view)
        if index is not None:
            encoder.encode_length(6, SHM_TAG)
            encoder.encode_length(0, index)
            return
    encoder.encode_length(2, view.nbytes)
    # cbor2's C encoder writes a memoryview about 8x slower than the bytes it holds
    # (64 MiB: 1.05 s against 0.13 s): one copy into bytes is much the cheaper way.
    encoder.write(value if type(value) is bytes else view.tobytes())


def _encode_other(encoder: Any, value: Any) -> None:
    """Types cbor2 does not know: anything with the buffer protocol (numpy arrays) is a buffer."""
    try:
        memoryview(value).release()
    except TypeError:
        raise TypeError(f"cannot serialize type {type(value).__name__}") from None
    _encode_buffer(encoder, value)


def _encoder() -> Any:
    encoder = getattr(_local, "encoder", None)
    if encoder is None:
        encoders: dict[type, Any] = {t: _refuse_type for t in _TAGGED_TYPES}
        encoders |= dict.fromkeys((bytes, bytearray, memoryview, array.array, SharedBuffer), _encode_buffer)
        encoder = cbor2.CBOREncoder(io.BytesIO(), encoders=encoders, default=_encode_other)
        _local.encoder = encoder
    return encoder


def _plain_encoder() -> Any:
    encoder = getattr(_local, "plain", None)
    if encoder is None:
        encoder = _local.plain = cbor2.CBOREncoder(io.BytesIO())
    return encoder


def encode_body(value: Any) -> bytes:
    """Encode one value as CBOR (the codec used for bodies and envelopes).

    Raises :class:`EncodeError` for values with no plain CBOR form here, including
    types cbor2 would write with a tag (datetimes, sets, decimals, UUIDs, ...).
    """
    placement: Placement | None = getattr(_local, "placement", None)
    # With a placement, a byte string at or above the threshold goes to shared memory:
    # such a value is not plain (copying it into a frame first would cost a full copy).
    limit = None if placement is None else placement.policy.threshold
    if is_plain(value, limit=limit):  # the same bytes from cbor2's plain encoder, 2-3x faster
        try:
            data: bytes = _plain_encoder().encode_to_bytes(value)
        except Exception:  # noqa: BLE001 - text with lone surrogates, say: the hooked encoder says why
            _local.plain = None
            return _encode_hooked(value)
        return data
    return _encode_hooked(value)


def _encode_hooked(value: Any) -> bytes:
    """:func:`encode_body` through the encoder that refuses tagged types and places buffers."""
    try:
        data: bytes = _encoder().encode_to_bytes(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as exc:
        _local.encoder = None  # never reuse an encoder left mid-item
        raise EncodeError(f"cannot encode a {type(value).__name__} as CBOR: {exc}") from exc
    return data


def decode_body(data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Any:
    """Strictly decode one CBOR item that must fill ``data`` exactly.

    Raises :class:`MalformedMessage` for anything but a single well-formed item within
    ``max_size`` bytes, ``MAX_DEPTH`` levels, with definite lengths, unique map keys and
    no tags other than bignums.
    """
    size = len(data)
    if size > max_size:
        raise _fail("size", size, f"larger than the limit of {max_size} bytes")
    if size == 0:
        raise _fail("cbor", size, "empty frame")
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_tag_hook,
            semantic_decoders=_SEMANTIC_DECODERS,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, RecursionError, OverflowError, MemoryError) as exc:
        raise _fail("cbor", size, f"not valid CBOR: {exc}") from exc
    if stream.tell() != size:
        raise _fail("cbor", size, f"{size - stream.tell()} bytes left over after one CBOR item")
    return value


def encode(
    envelope: Envelope, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE, placement: Placement | None = None
) -> bytes:
    """Encode an envelope; raises :class:`MessageTooLarge` past ``max_size``.

    With a ``placement`` (the peers share this host), large buffers in the body go to
    shared memory and the envelope carries their references in ``shm``; the caller
    calls ``placement.sent()`` or ``placement.abort()`` once the send is done or failed.
    """
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
    if placement is None:
        data = encode_body(frame)
    else:
        _local.placement = placement
        try:
            data = encode_body(frame)
            if placement.refs:  # buffers went to shared memory: encode again with their references
                frame["shm"] = placement.refs  # (the same objects get the same indexes)
                data = encode_body(frame)
        except BaseException:
            placement.abort()
            raise
        finally:
            _local.placement = None
    if len(data) > max_size:
        if placement is not None:
            placement.abort()
        raise MessageTooLarge(
            f"a {envelope.kind!r} message of {len(data)} bytes exceeds max_message_size={max_size}"
        )
    return data


def decode(data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Envelope:
    """Strictly decode one envelope; raises :class:`MalformedMessage` on any deviation.

    Pure: a shared-memory reference in the body comes back as a :class:`ShmRef`, checked
    (well formed, its index in range and used once, ``reason="shm"`` otherwise) but not
    attached: that is the receiving socket's side effect (:func:`patterns.shm.codec.resolve`).
    """
    _local.slots = 0
    envelope = _decode(data, max_size)
    if _local.slots:
        return _with_references(envelope, len(data))
    return envelope


def _with_references(envelope: Envelope, size: int) -> Envelope:
    """Replace each slot in the body by the :class:`ShmRef` it indexes in ``shm``."""
    if envelope.shm is None:
        raise _fail("shm", size, "the body refers to shared memory but the envelope has no 'shm'")
    try:
        refs = [ShmRef.from_wire(item) for item in envelope.shm]
    except BadReference as exc:
        raise _fail("shm", size, f"a shared-memory reference is malformed: {exc}") from exc
    used: set[int] = set()

    def swap(value: Any) -> Any:
        if type(value) is _Slot:
            if value.index >= len(refs) or value.index in used:
                raise _fail("shm", size, f"shared-memory slot {value.index} is out of range or used twice "
                                         f"({len(refs)} references)")  # fmt: skip
            used.add(value.index)
            return refs[value.index]
        if type(value) is list:
            return [swap(item) for item in value]
        if type(value) is dict:
            return {key: swap(item) for key, item in value.items()}
        return value

    return dataclasses.replace(envelope, body=swap(envelope.body))


def _decode(data: bytes | bytearray | memoryview, max_size: int) -> Envelope:
    size = len(data)
    frame = decode_body(data, max_size=max_size)
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
            return Envelope(kind, sender, ident, frame.get("b"), re, deadline)
    return _decode_checked(frame, size)


def _decode_checked(frame: Any, size: int) -> Envelope:
    """The slow path of :func:`decode`: every check, with a precise reason on failure."""
    if not isinstance(frame, dict):
        raise _fail("shape", size, f"expected a CBOR map, got {type(frame).__name__}")
    keys = frame.keys()
    if not all(isinstance(key, str) for key in keys):
        raise _fail("shape", size, "envelope keys must all be text strings")
    version = frame.get("v")
    if type(version) is not int:
        raise _fail("shape", size, f"version 'v' must be an unsigned integer, got {_show(version)}")
    if version != VERSION:
        detail = f"unknown envelope version {_show(version)} (this side speaks {VERSION})"
        raise _fail("version", size, detail)
    missing = _REQUIRED - keys
    if missing:
        raise _fail("shape", size, f"missing required keys {sorted(missing)}")
    extra = keys - _ALLOWED
    if extra:
        raise _fail("shape", size, f"unknown keys {sorted(extra)} in a version {VERSION} envelope")
    kind, sender, ident = frame["k"], frame["s"], frame["id"]
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_LENGTH:
        raise _fail("shape", size, f"kind 'k' must be text of 1..{MAX_KIND_LENGTH} characters")
    if not isinstance(sender, str) or len(sender) > MAX_SENDER_LENGTH:
        raise _fail("shape", size, f"sender 's' must be text of at most {MAX_SENDER_LENGTH} characters")
    if type(ident) is not int or not 0 <= ident < _MAX_ID:
        raise _fail("shape", size, f"message id must be an unsigned 64-bit integer, got {_show(ident)}")
    re = frame.get("re")
    if re is not None and (type(re) is not int or not 0 <= re < _MAX_ID):
        detail = f"correlation id 're' must be an unsigned 64-bit integer, got {_show(re)}"
        raise _fail("shape", size, detail)
    deadline = frame.get("dl")
    if deadline is not None:
        if type(deadline) not in (int, float):
            raise _fail("shape", size, f"deadline 'dl' must be a finite number, got {_show(deadline)}")
        try:
            deadline = float(deadline)
        except OverflowError:  # an integer beyond float range (a bignum)
            deadline = math.inf
        if not math.isfinite(deadline):
            raise _fail("shape", size, f"deadline 'dl' must be a finite number, got {deadline!r}")
    shm = frame.get("shm")
    if shm is not None:
        if not isinstance(shm, list):
            raise _fail("shape", size, "shared-memory references 'shm' must be an array")
        shm = tuple(shm)
    return Envelope(
        kind=kind, sender=sender, id=ident, body=frame.get("b"), re=re, deadline=deadline, shm=shm
    )
