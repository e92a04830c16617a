"""What a socket does to a frame besides moving it: encode and seal, open and decode, attach.

A mixin of :class:`~patterns._socket.BaseSocket`, which holds the state it reads (the
guard, the limits, the shared-memory policy, the counters of refused frames).
:meth:`Framing._placement` lets an encoding create shared-memory segments for same-host
peers, and :meth:`Framing._unpack` attaches the segments a received frame refers to,
after the pure :func:`~patterns._wire.decode`. Everything else here is pure.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

from patterns._gaps import Parts
from patterns._guard import FirstOpened, Guard, Opened
from patterns._peers import PeerSet
from patterns._shape import Shape
from patterns._wire import Envelope, decode, encode, encode_parts, read_common
from patterns.errors import MalformedMessage, SharedMemoryError, Unauthenticated
from patterns.shm.beacon import Beacons
from patterns.shm.codec import Placement, SharedMemory, maybe_sweep, resolve

__all__ = ["Framing"]

log = logging.getLogger("patterns")


class Framing:
    """Encoding, sealing, opening and decoding frames for one socket (a mixin)."""

    _measure: ClassVar[bool] = False
    """Walk every received frame to estimate its decoded size (:attr:`Envelope.weight`):
    only for sockets whose receivers queue what they are not yet reading (a bus)."""

    # Set by BaseSocket.__init__ (and open()).
    guard: Guard | None
    max_message_size: int
    max_items: int
    shared_memory: SharedMemory
    peers_state: PeerSet
    _beacons: Beacons | None
    _sock: Any
    _listen: list[str]
    _dial: list[str]
    _dialers: dict[str, Any]
    _malformed: int
    _malformed_reasons: dict[str, int]
    _unauthenticated: dict[str, int]
    _expected: tuple[Shape, ...] = ()  # the peer's most frequent frames (``Pair.expect``, ``Respondent.expect``)

    def _plain_fields(self, data: bytes | memoryview) -> tuple[str, str, int, Any, int | None, float | None] | None:
        """The fields of a plain (unsealed) frame of a shape this socket expects, or of another
        small common frame (:func:`read_common`); None: any other, for the envelope's path
        (:meth:`_unpack`) to read or refuse."""
        size = len(data)  # (read_common's bounds: a frame over max_items is counted item by item)
        if type(data) is bytes and not self._measure and size <= self.max_message_size and size <= self.max_items:
            expected = self._expected
            for shape in expected:  # (a line expects one or two, a member one)
                got = shape.read(data)
                if got is not None:
                    if shape is not expected[0]:  # the last shape read is tried first: an asking
                        self._expected = (shape, *[s for s in expected if s is not shape])  # side reads replies
                    return shape.kind, shape.sender, got[0], got[3], got[1], got[2]
        return read_common(data, max_size=self.max_message_size, max_items=self.max_items,
                           measure=self._measure)  # fmt: skip

    def _placement(self, receivers: int) -> Placement | None:
        """Where the large buffers of a message for ``receivers`` peers may go: a lazy
        :class:`Placement` (nothing is checked unless the body holds a large buffer)."""
        if self._beacons is None or receivers < 1:
            return None
        return Placement(self.shared_memory, receivers, self._same_host)

    def _receivers(self) -> int:
        """The connections a fan-out frame goes to. NNG's own (pynng lists a pipe from before
        NNG sends on it until after it stops): the peer set notes a new one a moment later, and
        a count one short gives the segment to the first receiver and SegmentGone to another."""
        return len(self._sock.pipes) if self._sock is not None else 0

    def _same_host(self) -> bool:
        """Can every peer attach our segments? Always over inproc and ipc; over tcp (ws,
        tls) when each connected peer left its beacon (``_shm_beacon``)."""
        assert self._beacons is not None
        addresses = self._listen + list(self._dialers if self._sock is not None else self._dial)
        if not addresses:
            return False
        if not all(a.startswith(("ipc://", "inproc://")) for a in addresses):
            peers = self.peers_state.snapshot()
            if not peers or len(peers) < self._receivers():  # one not noted yet is not proven
                return False
            if not all(self._beacons.shares_host(peer) for peer in peers):
                return False
        maybe_sweep(self.shared_memory.directory)
        return True

    def _frame(self, envelope: Envelope, placement: Placement | None) -> bytes:
        """Encode ``envelope`` (within ``max_message_size``, seal included) and seal it."""
        guard = self.guard
        if guard is None:
            return encode(envelope, max_size=self.max_message_size, placement=placement)
        data = encode(envelope, max_size=self.max_message_size - guard.overhead, placement=placement)
        return guard.seal(data, envelope.kind)

    def _frame_parts(self, envelope: Envelope, placement: Placement | None) -> Parts:
        """:meth:`_frame` in pieces (:mod:`patterns._gaps`): large inline buffers are not
        copied here but once, into NNG's message. A guard seals the frame in one piece."""
        if self.guard is not None:
            return (self._frame(envelope, placement),)
        return encode_parts(envelope, max_size=self.max_message_size, placement=placement)

    def _unpack(self, data: bytes | memoryview) -> Envelope:
        """Open a received frame (with a guard), decode it, attach the shared memory it refers to.

        A guard's refusal raises :class:`Unauthenticated`, counted as ``unauthenticated``;
        any other fault :class:`MalformedMessage`, counted as ``malformed``."""
        try:
            if self.guard is not None:
                data = data if type(data) is bytes else bytes(data)
                return self._decode_opened(self.guard.open(data), len(data))  # opened before a byte is decoded
            envelope = decode(
                data, max_size=self.max_message_size, max_items=self.max_items, measure=self._measure
            )
            if envelope.shm is not None:  # rare: only such a frame may refer to shared memory
                envelope = self._attach(envelope, len(data))
        except MalformedMessage as exc:
            self._count_refused(exc)
            raise
        return envelope

    def _guard_open(self, data: bytes) -> Opened:
        """The guard's check of a received frame (:meth:`Guard.open`), its refusal counted:
        for a reader that reads the payload itself and hands any other to :meth:`_unpack_opened`."""
        assert self.guard is not None
        try:
            return self.guard.open(data)
        except MalformedMessage as exc:
            self._count_refused(exc)
            raise

    def _opened_fields(self, opened: Opened) -> tuple[str, str, int, Any, int | None, float | None] | None:
        """The fields of a frame its guard has opened (:meth:`_guard_open`), read from its
        payload as :meth:`_plain_fields` reads a plain frame, when they keep to its key's
        limits (the one sender and the kinds it speaks for): the frame is then fully accepted
        (a :class:`FirstOpened`'s key kept, as :meth:`_decode_opened` does). None: the
        envelope's path (:meth:`_unpack_opened`, not opened twice) reads it, or says why not
        and counts it. For the survey sockets' sealed frames (a room with a secret)."""
        fields = self._plain_fields(opened.payload)  # (a guard's payload is bytes)
        if (fields is None or (opened.owner is not None and fields[1] != opened.owner)
                or (opened.kinds is not None and fields[0] not in opened.kinds)):  # fmt: skip
            return None
        if type(opened) is FirstOpened:
            opened.accepted()
        return fields

    def _unpack_opened(self, opened: Opened, size: int) -> Envelope:
        """:meth:`_unpack` for a frame of ``size`` bytes its guard has opened already."""
        try:
            return self._decode_opened(opened, size)
        except MalformedMessage as exc:
            self._count_refused(exc)
            raise

    def _count_refused(self, exc: MalformedMessage) -> None:
        if isinstance(exc, Unauthenticated):
            self._unauthenticated[exc.reason] = self._unauthenticated.get(exc.reason, 0) + 1
        else:
            self._malformed += 1
            self._malformed_reasons[exc.reason] = self._malformed_reasons.get(exc.reason, 0) + 1

    def _decode_opened(self, opened: Opened, size: int) -> Envelope:
        """The envelope of an opened frame, held to its key's limits (sender, kinds); uncounted."""
        envelope = decode(
            opened.payload, max_size=self.max_message_size, max_items=self.max_items, measure=self._measure
        )
        if opened.owner is not None and envelope.sender != opened.owner:
            raise Unauthenticated(
                f"a {envelope.kind!r} frame signed as {opened.owner!r} claims to come from {envelope.sender!r}",
                reason="impersonation", size=size,
            )  # fmt: skip
        if opened.kinds is not None and envelope.kind not in opened.kinds:
            raise Unauthenticated(
                f"a {envelope.kind!r} frame came under a key that may only send {sorted(opened.kinds)}",
                reason="kind", size=size,
            )  # fmt: skip
        if envelope.shm is not None:
            envelope = self._attach(envelope, size)
        if type(opened) is FirstOpened:  # fully accepted: what its guard learned from it may count now
            opened.accepted()
        # Built above and held by no one else: set the field rather than copy the envelope
        # (dataclasses.replace costs more than the whole seal check).
        object.__setattr__(envelope, "session", opened.session)
        return envelope

    def _skipped(self, what: str, exc: MalformedMessage) -> None:
        """Log a malformed frame an iterator skipped: the 1st, 2nd, 4th, 8th... of this
        socket, so that a peer sending nothing else cannot flood the log too (every one is
        counted in ``statistics()``)."""
        if isinstance(exc, Unauthenticated):
            count, adjective = sum(self._unauthenticated.values()), "an unauthenticated"
        else:
            count, adjective = self._malformed, "a malformed"
        if count & (count - 1) == 0:
            log.warning("%r skipped %s %s (%d so far): %s", self, adjective, what, count, exc)

    def _attach(self, envelope: Envelope, size: int) -> Envelope:
        try:
            body = resolve(envelope.body, self.shared_memory)
        except SharedMemoryError as exc:
            raise MalformedMessage(
                f"malformed frame ({size} bytes): its shared memory is unusable: {exc}",
                reason="shm",
                size=size,
            ) from exc
        return envelope if body is envelope.body else dataclasses.replace(envelope, body=body)
