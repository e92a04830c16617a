"""Send and receive for the context-free patterns (pair, bus, push, pull), driven by readiness.

The waiting is :mod:`patterns._fd`'s. Per frame the common case is one non-blocking NNG
call, a cancel check and, on receipt, one wait: the envelope of a small plain body is
written and read by :mod:`patterns._head` (no :class:`Envelope` on the sending side of
``send``, none on the receiving side of ``receive``), and a receive that finds nothing
queued skips the cancel check, since the wait it parks in is a checkpoint of its own.

Side effects besides NNG I/O: a send to peers on this host may create shared-memory
segments (its :class:`Placement`, removed again if the send fails); a receive attaches
the segments a frame refers to (``BaseSocket._unpack``, after the pure decode).

The receiving side is :mod:`patterns._receiving`'s (:class:`ReceivingSocket`, re-exported here),
the sends from other threads :mod:`patterns._thread_sends`'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import trio
from pynng import ffi, lib

from patterns._fd import EAGAIN, NONBLOCK, YIELD_EVERY, FdSocket
from patterns._gaps import GAP_MIN, Parts, total
from patterns._nng import message_from_parts, raise_for
from patterns._receiving import ReceivingSocket
from patterns._shape import HOLE, Shape
from patterns._thread_sends import ThreadSends
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH, Envelope, common_frame
from patterns.errors import MessageTooLarge, WouldBlock
from patterns.shm.codec import Placement, delivering

__all__ = ["ReceivingSocket", "SendingSocket", "Unsent"]

_MASK = 0xFFFF_FFFF_FFFF_FFFF
SETTLES = 3
"""Sends refused with a peer there (a connection NNG is still starting, or a full queue)
that retry after :data:`SETTLE_S` before the socket asks NNG for its send descriptor."""
SETTLE_S = 0.001
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


@dataclass(frozen=True, slots=True)
class Unsent:
    """What :meth:`SendingSocket.send_fields_nowait` and :meth:`~SendingSocket.send_shaped_nowait`
    return when NNG would not take the frame they wrote: false, as the ``False`` it stands
    for, and the ``frame`` (sealed, with a guard) to send with :meth:`SendingSocket.send_unsent`
    once the sender may wait, so that a frame is sealed once however long it waits, unless
    its seal went stale meanwhile (``kind``, with a guard: to seal it again, see there)."""

    frame: bytes
    kind: str = ""

    def __bool__(self) -> bool:
        return False


class SendingSocket(FdSocket, ThreadSends):
    """Adds ``send`` / ``send_nowait`` / ``send_bytes`` / ``send_envelope`` (and, from
    :class:`~patterns._thread_sends.ThreadSends`, the sends from other threads)."""

    _fanout: ClassVar[bool] = False  # one message reaches every peer (bus)
    _settles = 0  # sends refused with a peer there that retried without the send descriptor

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._send_out = ffi.new("nng_msg **")  # trio thread only

    def _limit(self, inline: bool) -> int:
        return GAP_MIN if inline else self._placed_limit

    def _try_send(self, data: bytes, operation: str) -> bool:
        """A non-blocking ``nng_send`` (NNG copies ``data``): False when its queue is full."""
        if self._closed or self._handle is None:
            self._require_open(operation)
        err = lib.nng_send(self._handle, data, len(data), NONBLOCK)
        if err:
            if err == EAGAIN:
                return False
            raise_for(err, operation=operation, where=self)
        self._sent += 1
        self._bytes_sent += len(data)
        return True

    async def _send_frame(self, data: bytes) -> None:
        """Send one frame already within ``max_message_size``, waiting while NNG's queue is full."""
        await _checkpoint_if_cancelled()
        if self._try_send(data, "send"):
            self._unyielded += 1  # (``_did_not_wait``, inline: a call less per frame)
            if self._unyielded >= YIELD_EVERY:
                self._unyielded = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        while True:
            await self._wait_to_send("send")
            if self._try_send(data, "send"):
                return

    async def _wait_to_send(self, operation: str) -> None:
        """Wait until a send may succeed: for a peer when there is none (NNG refuses a
        send with nobody to take it: a pair before its peer dials, a push before a puller),
        else on NNG's send descriptor. A line that only ever waited for its peer then never
        has one (see :meth:`_send_descriptor`: its cost is per frame, for ever)."""
        if not self.peers_state:
            await self.peers_state.wait_changed()  # (close clears the set: this wakes)
        elif self._send_fd is None and self._settles < SETTLES:
            # A peer just noted may not take frames yet (NNG starts its connection on its own
            # thread): a hotline's hello met this in about one run in three. Retry shortly a
            # few times before asking for the descriptor, whose cost is for ever after.
            self._settles += 1
            await trio.sleep(SETTLE_S)
        else:
            await self._park(self._send_descriptor(operation), operation)

    def reseal_unsent(self, unsent: Unsent) -> Unsent:
        """``unsent`` as it may go now: its payload sealed again if the key it was sealed
        with is no longer the one for its kind (:meth:`Guard.reseal`), else as it is. For
        whoever sends an :class:`Unsent`'s frame without :meth:`send_unsent`."""
        guard = self.guard
        again = None if guard is None else guard.reseal(unsent.frame, unsent.kind)
        return unsent if again is None else Unsent(again, unsent.kind)

    async def send_unsent(self, unsent: Unsent, *, wanted: Callable[[], bool] | None = None) -> bool:
        """Send an :class:`Unsent`'s frame once NNG takes it, waiting as :meth:`send_bytes` does.
        With a guard, before each try the guard may seal its payload again
        (:meth:`Guard.reseal`): the key it seals a frame of that ``kind`` with changed while it
        waited (a hotline whose peer restarted has a new session), and the old seal would be
        refused by the peer. ``wanted``, when given, is asked before each try: when it says
        no, the frame is dropped and this returns False (a frame meant for a connection that
        closed while it waited: a hotline's ask, failed as lost, must not reach the next peer)."""
        await _checkpoint_if_cancelled()
        guard, data = self.guard, unsent.frame
        while True:
            if wanted is not None and not wanted():
                return False
            if guard is not None:
                data = guard.reseal(data, unsent.kind) or data
            if len(data) > self.max_message_size:  # (a new key's seal may be longer)
                raise self._too_large(len(data))
            if self._try_send(data, "send"):
                return True
            await self._wait_to_send("send")

    async def wait_sendable(self) -> None:
        """Wait until a send may succeed, for a sender that tries again itself (``*_nowait``)."""
        await self._wait_to_send("send")

    async def send_bytes(self, data: bytes) -> None:
        """Send one raw frame (no envelope). Waits while NNG's send queue is full."""
        if type(data) is not bytes:
            data = self._as_bytes(data)
        if len(data) > self.max_message_size:
            raise self._too_large(len(data))
        await self._send_frame(data)

    def send_bytes_nowait(self, data: bytes) -> None:
        """Send one raw frame now, or raise :class:`WouldBlock`."""
        if type(data) is not bytes:
            data = self._as_bytes(data)
        if len(data) > self.max_message_size:
            raise self._too_large(len(data))
        if not self._try_send(data, "send_nowait"):
            raise self._full()

    @staticmethod
    def _as_bytes(data: Any) -> bytes:
        if isinstance(data, str):
            raise TypeError("send_bytes takes bytes, not str: encode the text first (or use send())")
        return bytes(data)

    def _too_large(self, size: int) -> Exception:
        return MessageTooLarge(f"a frame of {size} bytes exceeds max_message_size={self.max_message_size}")

    def _full(self, frame: bytes | None = None) -> WouldBlock:
        """(``frame``: the frame written, when it may be sent as it is later: :attr:`WouldBlock.frame`.)"""
        return WouldBlock(f"send_nowait: the send queue of {self!r} is full (or no peer is ready)", frame=frame)

    def _common(self, envelope: Envelope, inline: bool) -> bytes | None:
        """The common frame of ``envelope`` (:func:`common_frame`), or None: the general path."""
        if self.guard is not None or envelope.shm is not None:
            return None
        return common_frame(envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re,
                            envelope.deadline, limit=GAP_MIN if inline else self._placed_limit,
                            max_size=self.max_message_size)  # fmt: skip

    def _encode(self, envelope: Envelope, inline: bool = False) -> tuple[Parts, Placement | None]:
        """The frame of an envelope that is not a common one (:meth:`_common` said None),
        and where its large buffers went (same-host peers: shared memory; ``inline``:
        nowhere, every buffer travels in the frame, as a part of its own)."""
        placement = None if inline else self._placement(self._receivers() if self._fanout else 1)
        return self._frame_parts(envelope, placement), placement

    async def _send_encoded(self, frame: tuple[Parts, Placement | None]) -> None:
        parts, placement = frame
        if placement is None:  # (no context manager per frame when nothing was placed)
            await self._send_parts_or_frame(parts)
            return
        with delivering(placement):
            await self._send_parts_or_frame(parts)

    async def _send_parts_or_frame(self, parts: Parts) -> None:
        if len(parts) == 1:
            await self._send_frame(parts[0])  # type: ignore[arg-type]  # one part is bytes, within the size
        else:
            await self._send_parts(parts)

    def _send_encoded_nowait(self, frame: tuple[Parts, Placement | None]) -> None:
        parts, placement = frame
        if placement is None:
            self._send_parts_nowait(parts)
            return
        with delivering(placement):
            try:
                self._send_parts_nowait(parts)
            except WouldBlock as exc:
                if placement.refs:  # its segments go as it raises: the frame cannot go later
                    exc.frame = None
                raise

    def _send_parts_nowait(self, parts: Parts) -> None:
        if len(parts) == 1:
            if not self._try_send(parts[0], "send_nowait"):  # type: ignore[arg-type]
                raise self._full(parts[0])  # type: ignore[arg-type]  # one part is bytes
            return
        msg, size = self._message(parts, "send_nowait")
        sent = False
        try:
            sent = self._try_send_message(msg, size, "send_nowait")
        finally:
            if not sent:
                lib.nng_msg_free(msg)
        if not sent:
            raise self._full()

    # A frame in parts (a large buffer inline) is copied once, into an NNG message built
    # here, which is kept while the send waits for room (one copy however long it waits).
    def _message(self, parts: Parts, operation: str) -> tuple[Any, int]:
        size = total(parts)
        if size > self.max_message_size:
            raise self._too_large(size)
        self._require_open(operation)
        return message_from_parts(parts, size, self._send_out, operation=operation, where=self), size

    def _try_send_message(self, msg: Any, size: int, operation: str) -> bool:
        if not self._send_msg(msg, operation):
            return False
        self._sent += 1
        self._bytes_sent += size
        return True

    async def _send_parts(self, parts: Parts) -> None:
        await _checkpoint_if_cancelled()
        msg, size = self._message(parts, "send")
        del parts  # the buffers are copied: let the caller's go
        try:
            if self._try_send_message(msg, size, "send"):
                msg = None
                await self._did_not_wait()
                return
            while True:
                await self._wait_to_send("send")
                if self._try_send_message(msg, size, "send"):
                    msg = None
                    return
        finally:
            if msg is not None:  # not sent (closed, cancelled, an error): still ours
                lib.nng_msg_free(msg)

    async def send(
        self, value: Any, *, kind: str = "data", re: int | None = None, deadline: float | None = None,
        inline: bool = False,
    ) -> None:  # fmt: skip
        """Send any CBOR-encodable ``value`` in an envelope (large buffers through shared
        memory when the peers are on this host; see :class:`SharedMemory`). ``inline=True``
        keeps every buffer in the frame, for peers that take no shared-memory references."""
        ident = next(self._ids) & _MASK  # (``next_id``, inline)
        if self.guard is None:  # the common frame, written without building an Envelope
            data = common_frame(kind, self.name, ident, value, re, deadline,
                                limit=GAP_MIN if inline else self._placed_limit,
                                max_size=self.max_message_size)  # fmt: skip
            if data is not None:
                await self._send_frame(data)
                return
        envelope = Envelope(kind, self.name, ident, value, re, deadline)
        await self._send_encoded(self._encode(envelope, inline))

    def send_nowait(
        self, value: Any, *, kind: str = "data", re: int | None = None, deadline: float | None = None,
        inline: bool = False,
    ) -> None:  # fmt: skip
        """Send ``value`` now or raise :class:`WouldBlock`."""
        envelope = Envelope(kind, self.name, self.next_id(), value, re, deadline)
        self.send_envelope_nowait(envelope, inline=inline)

    async def send_envelope(self, envelope: Envelope) -> None:
        """Send a complete envelope as given (its ``sender`` and ``id`` are kept)."""
        data = self._common(envelope, False)
        if data is not None:
            await self._send_frame(data)
            return
        await self._send_encoded(self._encode(envelope))

    def send_fields_nowait(
        self, kind: str, ident: int, body: Any, re: int | None, deadline: float | None
    ) -> bool | Unsent:
        """Send the envelope of these fields from this socket's name (its ``sender``) now,
        as :meth:`send_envelope_nowait` would, when it is a common frame (:func:`common_frame`:
        a small plain body; sealed whole with a guard), without building the :class:`Envelope`.
        False when it is not one: the caller sends the envelope the general way, which says
        what is wrong with it. An :class:`Unsent` (false too) when NNG would wait: its frame,
        written and sealed, is the one to send when the caller may wait. Raises
        :class:`MessageTooLarge`, :class:`Closed` and what the guard's ``seal`` raises."""
        guard = self.guard
        data = common_frame(kind, self.name, ident, body, re, deadline, limit=self._placed_limit,
                            max_size=self.max_message_size if guard is None else
                            self.max_message_size - guard.overhead)  # fmt: skip
        if data is None:
            return False
        if guard is not None:
            data = guard.seal(data, kind)
        return self._try_send(data, "send_nowait") or Unsent(data, kind)

    def shape(self, kind: str, *, re: bool, deadline: bool, body: Any = HOLE, sender: str | None = None,
              scalars: bool = False) -> Shape:  # fmt: skip
        """The :class:`~patterns._shape.Shape` of frames of ``kind`` from ``sender`` (this
        socket's name by default: for :meth:`send_shaped_nowait`; a peer's: to expect);
        ``scalars``: its hole also holds numbers, booleans and None (:class:`Shape`)."""
        return Shape(kind, self.name if sender is None else sender, re=re, deadline=deadline, body=body,
                     max_kind=MAX_KIND_LENGTH, max_sender=MAX_SENDER_LENGTH, scalars=scalars)  # fmt: skip

    def send_shaped_nowait(self, shape: Shape, ident: int, re: int | None, deadline: float | None,
                           value: Any) -> bool | Unsent:  # fmt: skip
        """:meth:`send_fields_nowait` for a frame of ``shape`` (from :meth:`shape`) with
        ``value`` in its hole, written from the shape's fixed bytes. False when the fields
        are not of its common form (:meth:`Shape.write`) or the frame would exceed
        ``max_message_size``: the caller sends the frame another way; an :class:`Unsent`
        when NNG would wait (as :meth:`send_fields_nowait`)."""
        guard = self.guard
        data = shape.write(ident, re, deadline, value, self._placed_limit)
        if data is None:
            return False
        if guard is None:
            if len(data) > self.max_message_size:
                return False
        elif len(data) > self.max_message_size - guard.overhead:
            return False
        else:
            data = guard.seal(data, shape.kind)
        return self._try_send(data, "send_nowait") or Unsent(data, shape.kind)

    def send_envelope_nowait(self, envelope: Envelope, *, inline: bool = False) -> None:
        """Send a complete envelope now (as :meth:`send_envelope` would), or raise
        :class:`WouldBlock` when NNG's send queue is full or no peer is ready (with the frame
        written, sealed, in :attr:`WouldBlock.frame` when it can go as it is later)."""
        data = self._common(envelope, inline)
        if data is not None:
            if not self._try_send(data, "send_nowait"):
                raise self._full(data)
            return
        self._send_encoded_nowait(self._encode(envelope, inline))
