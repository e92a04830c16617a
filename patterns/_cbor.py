"""The strict CBOR codec of bodies and envelopes: pure code, no sockets, no clock, no files.

Encoding refuses every Python type cbor2 would write with a semantic tag (receivers
refuse tags) and writes anything with the buffer protocol as a byte string, through
:mod:`patterns._codec_plain`'s fast path when the value allows. :func:`encode_placed`
offers each large buffer to a :class:`~patterns.shm.codec.Placement` instead, which may
put it in shared memory (the one side effect here, the caller's to finish or undo) and
writes CBOR tag 28270 around its index.

Decoding first judges the frame's cost from its CBOR heads (:mod:`patterns._scan`:
items, map key types, containers per byte), then accepts exactly one well-formed item:
definite lengths, unique map keys, bounded depth, no tags but the bignums and the
shared-memory tag, which becomes a
:class:`Slot` for :mod:`patterns._wire` to fill in. Per-thread scratch state (reusable
encoders, the placement of the encoding in progress, the count of slots seen) never
outlives a call.
"""

from __future__ import annotations

import array
import io
import threading
from typing import Any, Final

import cbor2

from patterns._cbor_words import MAX_DEPTH, PLAIN_HINT, TAGGED_TYPES, bad_key, kind_of, unencodable_part
from patterns._codec_plain import Encoded, is_plain
from patterns._gaps import GAP_MIN, MARKER, Parts, split
from patterns._scan import CONTAINER_ALLOWANCE, DEFAULT_MAX_ITEMS, LARGE_STRING, scan
from patterns.errors import EncodeError, MalformedMessage
from patterns.shm.codec import MAX_REFERENCES, SHM_TAG, Placement, sendable_view
from patterns.shm.segment import SharedBuffer

__all__ = [
    "CONTAINER_ALLOWANCE",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_DEPTH",
    "Slot",
    "decode_body",
    "decode_item",
    "decode_nested",
    "encode_body",
    "encode_parts",
    "encode_placed",
    "encode_plain",
    "malformed",
    "unencodable_part",
]

DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
"""Default limit for one frame, in bytes (16 MiB). Larger payloads belong in shared memory."""


class Slot:
    """Where a body being decoded refers to ``shm[index]`` (the ``shm`` key may come
    later in the map, so the reference is filled in once the whole frame is read)."""

    __slots__ = ("index",)
    __hash__ = None  # type: ignore[assignment]  # never a map key: cbor2 refuses the frame

    def __init__(self, index: int) -> None:
        self.index = index


def _refuse_tag(*_args: object) -> Any:
    raise ValueError("CBOR tags other than bignums (2, 3) are not accepted")


def _tag_hook(*args: Any) -> Any:
    """Unknown tags: only a shared-memory slot (an index into ``shm``) is accepted, and
    while a cut frame is decoded (:func:`_cut`), each of its cut-out strings once.

    cbor2 6 calls ``hook(tag, immutable)``, cbor2 5 ``hook(decoder, tag)``."""
    tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
    if tag.tag == SHM_TAG and type(tag.value) is int and 0 <= tag.value < MAX_REFERENCES:
        _local.slots = getattr(_local, "slots", 0) + 1
        return Slot(tag.value)
    cut: list[bytes | None] | None = getattr(_local, "cut", None)
    if tag.tag == _CUT_TAG and cut is not None and type(tag.value) is int and 0 <= tag.value < len(cut):
        piece = cut[tag.value]
        cut[tag.value] = None  # each once: a second use (a peer's own tag 28271) is refused
        if piece is not None:
            return piece
    return _refuse_tag()


_CUT_TAG: Final = 28271
"""Stands for a large byte string cut out of a received frame before cbor2 reads it. Never
sent; one in a peer's frame is refused (its index is used twice or is out of range)."""


def _cut(data: bytes | bytearray | memoryview, strings: list[tuple[int, int, int]]) -> bytes:
    """``data`` with each listed byte string replaced by ``tag 28271(index)``; the strings,
    copied once each, go to ``_local.cut`` for :func:`_tag_hook`."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    cut: list[bytes | None] = []
    done = 0
    for index, (head, start, end) in enumerate(strings):
        parts += (view[done:head], cbor2.dumps(cbor2.CBORTag(_CUT_TAG, index)))
        cut.append(bytes(view[start:end]))
        done = end
    parts.append(view[done:])
    _local.cut = cut
    return b"".join(parts)


# cbor2 turns many semantic tags into Python objects (regexes, shared references that
# build cycles, embedded CBOR, MIME, ...). A peer must not be able to make us build any
# of those, so every tag is refused except the two bignum tags. Built-in decoders are
# overridden explicitly; unknown tags go to the tag hook, which refuses them too.
_SEMANTIC_DECODERS: Final = {tag: _refuse_tag for tag in range(1100) if tag not in (2, 3)} | {
    tag: _refuse_tag for tag in (55799, 55800, 55801)
}


def malformed(reason: str, size: int, detail: str) -> MalformedMessage:
    """The error for a frame rejected with ``reason`` (``size`` bytes long)."""
    return MalformedMessage(f"malformed frame ({size} bytes): {detail}", reason=reason, size=size)


def _refuse_type(_encoder: Any, value: Any) -> None:
    raise TypeError(
        f"{kind_of(value)} would be written as a CBOR tag, which receivers refuse; "
        "send plain data (numbers, text, bytes, lists, maps) instead"
    )


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
    gaps: list[memoryview] | None = getattr(_local, "gaps", None)
    if gaps is not None and view.nbytes >= GAP_MIN:  # left out: the sender splices it in (_gaps)
        encoder.write(MARKER)
        gaps.append(view)
        return
    # cbor2's C encoder writes a memoryview about 8x slower than the bytes it holds
    # (64 MiB: 1.05 s against 0.13 s): one copy into bytes is much the cheaper way.
    encoder.write(value if type(value) is bytes else view.tobytes())


def _encode_other(encoder: Any, value: Any) -> None:
    """Types cbor2 does not know: anything with the buffer protocol (numpy arrays) is a buffer."""
    try:
        memoryview(value).release()
    except TypeError:
        raise TypeError(f"{kind_of(value)} has no CBOR form here; {PLAIN_HINT}") from None
    _encode_buffer(encoder, value)


def _write_encoded(encoder: Any, value: Encoded) -> None:
    encoder.write(value.data)  # one item already: its bytes where it sits


def _encoder() -> Any:
    encoder = getattr(_local, "encoder", None)
    if encoder is None:
        encoders: dict[type, Any] = {t: _refuse_type for t in TAGGED_TYPES}
        encoders |= dict.fromkeys((bytes, bytearray, memoryview, array.array, SharedBuffer), _encode_buffer)
        encoders[Encoded] = _write_encoded
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
    if is_plain(value):  # the same bytes from cbor2's plain encoder, 2-3x faster
        return _encode_plain(value)
    return _encode_hooked(value)


def encode_placed(value: Any, placement: Placement) -> bytes:
    """:func:`encode_body`, with each large buffer offered to ``placement`` (shared memory
    for peers on this host: the one side effect of this module, owned by the caller)."""
    # A byte string at or above the threshold goes to shared memory: such a value is
    # not plain (copying it into a frame first would cost a full copy).
    _local.placement = placement
    try:
        if is_plain(value, limit=placement.policy.threshold):
            return _encode_plain(value)
        return _encode_hooked(value)
    finally:
        _local.placement = None


def encode_parts(value: Any, placement: Placement | None = None) -> Parts:
    """:func:`encode_body` (or :func:`encode_placed`) as :data:`~patterns._gaps.Parts`:
    each buffer of :data:`~patterns._gaps.GAP_MIN` bytes or more that travels inline is a
    part of its own, not copied; ``b"".join`` of the parts is what those functions return."""
    limit = GAP_MIN if placement is None else min(GAP_MIN, placement.policy.threshold)
    if is_plain(value, limit=limit):  # no large buffer: one piece, by the fast encoder
        return (_encode_plain(value),)
    gaps: list[memoryview] = []
    _local.placement, _local.gaps = placement, gaps
    try:
        data = _encode_hooked(value)
    finally:
        _local.placement = _local.gaps = None
    parts = split(data, gaps)
    if parts is None:  # a marker's bytes in the body itself (never seen): in one piece
        _local.placement = placement
        try:
            return (_encode_hooked(value),)
        finally:
            _local.placement = None
    return parts


def encode_plain(value: Any) -> bytes:
    """A value :func:`~patterns._codec_plain.is_plain` accepted, by cbor2's plain encoder
    (:class:`EncodeError` for one it cannot write, text with lone surrogates say)."""
    encoder = getattr(_local, "plain", None)  # (``_plain_encoder``, inline: once per frame sent)
    if encoder is None:
        encoder = _plain_encoder()
    try:
        data: bytes = encoder.encode_to_bytes(value)
    except Exception:  # noqa: BLE001 - text with lone surrogates, say: the hooked encoder says why
        _local.plain = None
        return _encode_hooked(value)
    return data


_encode_plain: Final = encode_plain


def _encode_hooked(value: Any) -> bytes:
    """:func:`encode_body` through the encoder that refuses tagged types and places buffers."""
    bad = bad_key(value)
    if bad is not None:
        raise EncodeError(f"cannot encode {kind_of(value)} as CBOR: {bad}; map keys must be "
                          "text or bytes (docs/wire-format.md §3)")  # fmt: skip
    try:
        data: bytes = _encoder().encode_to_bytes(value)
    except (cbor2.CBOREncodeError, TypeError, ValueError, RecursionError) as exc:
        _local.encoder = None  # never reuse an encoder left mid-item
        raise EncodeError(
            f"cannot encode {kind_of(value)} as CBOR: {unencodable_part(value) or exc}"
        ) from exc
    return data


def decode_body(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Any:
    """Strictly decode one CBOR item that must fill ``data`` exactly.

    Raises :class:`MalformedMessage` for anything but a single well-formed item within
    ``max_size`` bytes, ``max_items`` data items, ``MAX_DEPTH`` levels, with definite
    lengths, unique map keys of the allowed types, no more arrays and maps than the
    frame's length allows (:mod:`patterns._scan`) and no tags other than bignums (and
    the shared-memory tag, left as a :class:`Slot`).
    """
    return decode_item(data, max_size, max_items)[0]


_KEY_ERROR: Final = "map key must be a text string or byte string"
"""How cbor2 words a refused key (``strict_hashable_types``): such a frame is counted as ``key``."""


def decode_item(
    data: bytes | bytearray | memoryview,
    max_size: int,
    max_items: int = DEFAULT_MAX_ITEMS,
    *,
    measure: bool = True,
) -> tuple[Any, bool, int]:
    """:func:`decode_body`, whether the item holds a :class:`Slot`, and the estimated
    bytes its objects take beyond the frame's length (:func:`patterns._scan.scan`; 0 when
    the frame was not walked: see ``measure``).

    A frame of at most ``max_items`` bytes cannot hold more than ``max_items`` items, and
    decodes to at most a few megabytes; its map keys are checked by cbor2 itself (text or
    bytes only, in C). Such a frame is walked only with ``measure=True``, by a receiver that
    budgets what it holds (a bus's inbox); a larger frame is always walked."""  # fmt: skip
    size = len(data)
    if size > max_size:
        raise malformed("size", size, f"larger than the limit of {max_size} bytes")
    if size == 0:
        raise malformed("cbor", size, "empty frame")
    # Judge the frame's cost from its heads before cbor2 builds anything (hash-flooding
    # keys, millions of empty containers): the receive loop must never stall on one frame.
    overhead = 0
    strings: list[tuple[int, int, int]] = []
    if measure or size > max_items:
        verdict = scan(data, max_items, MAX_DEPTH, strings if size >= LARGE_STRING else None)
        if isinstance(verdict, tuple):
            raise malformed(verdict[0], size, verdict[1])
        overhead = verdict
    if strings:  # large byte strings: copied once each here, instead of by cbor2 in chunks
        try:
            cut = _cut(data, strings)
            value, slots = _decode(cut, size)
            if not any(_local.cut):  # every cut-out string was used, each once
                return value, slots, overhead
        except MalformedMessage:
            pass  # the whole frame again, for cbor2's own words on what is wrong with it
        finally:
            _local.cut = None
    value, slots = _decode(data, size)
    return value, slots, overhead


def decode_nested(data: bytes | bytearray | memoryview, size: int) -> Any:
    """One strict item filling ``data``, read as the body of a frame of ``size`` bytes: one
    level below the frame's map (``MAX_DEPTH - 1``), and no shared-memory slot (raises
    :class:`MalformedMessage` for one: only a frame with ``shm`` may hold them)."""
    value, slots = _decode(data, size, MAX_DEPTH - 1)
    if slots:
        raise malformed("shm", size, "the body refers to shared memory")
    return value


def _decoder(stream: io.BytesIO, depth: int, reuse: bool) -> Any:
    """A strict decoder for ``depth`` levels reading ``stream``: with ``reuse`` (a small
    frame, which the decoder then keeps until the next), this thread's own, since building
    one costs more than decoding a small frame (its options checked, its tag table copied)."""
    decoders: dict[int, Any] | None = getattr(_local, "decoders", None)
    if decoders is None:
        decoders = _local.decoders = {}
    decoder = decoders.get(depth) if reuse else None
    if decoder is None:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_tag_hook,
            semantic_decoders=_SEMANTIC_DECODERS,
            max_depth=depth,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            strict_hashable_types=True,  # map keys text or bytes: no crafted hash collisions
        )
        if reuse:
            decoders[depth] = decoder
    else:
        decoder.fp = stream
    return decoder


def _decode(data: bytes | bytearray | memoryview, size: int, depth: int = MAX_DEPTH) -> tuple[Any, bool]:
    """One strict cbor2 decode of ``data`` (the frame of ``size`` bytes, or it cut)."""
    stream = io.BytesIO(data)
    _local.slots = 0
    try:
        reuse = len(data) < LARGE_STRING
        decoders: dict[int, Any] | None = getattr(_local, "decoders", None) if reuse else None
        decoder = decoders.get(depth) if decoders is not None else None
        if decoder is not None:  # (the common case of ``_decoder``, inline: once per frame read)
            decoder.fp = stream
        else:
            decoder = _decoder(stream, depth, reuse)
        value = decoder.decode()
    except BaseException as exc:
        _local.decoders = None  # never reuse a decoder left mid-item
        if isinstance(exc, cbor2.CBORDecodeError):
            if _KEY_ERROR in str(exc):
                raise malformed("key", size, f"a map key is not text or bytes: {exc}") from exc
            raise malformed("cbor", size, f"not valid CBOR: {exc}") from exc
        if isinstance(
            exc, cbor2.CBORError | ValueError | TypeError | RecursionError | OverflowError | MemoryError
        ):
            raise malformed("cbor", size, f"not valid CBOR: {exc}") from exc
        raise
    if stream.tell() != len(data):
        raise malformed("cbor", size, f"{len(data) - stream.tell()} bytes left over after one CBOR item")
    return value, _local.slots > 0
