"""Readiness-driven send and receive for the context-free patterns (pair, bus, push, pull).

pynng's ``asend``/``arecv`` allocate an NNG aio per message and complete it from an
NNG thread that must wake trio: ~120-190 µs each here. Instead this module tries the
non-blocking NNG call first and, only when it would block, parks the task on NNG's
pollable descriptor (``recv_fd``/``send_fd``) with ``trio.lowlevel.wait_readable``.
Closing the socket calls ``trio.lowlevel.notify_closing`` on both descriptors, so a
parked task wakes at once with :class:`Closed`.

Side effects besides NNG I/O: a send to peers on this host may create shared-memory
segments (its :class:`Placement`, removed again if the send fails); a receive attaches
the segments a frame refers to (``BaseSocket._unpack``, after the pure decode).
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pynng
import trio
from pynng import ffi, lib

from patterns._gaps import GAP_MIN, Parts, total
from patterns._nng import (
    body_view,
    message_from_parts,
    receive_message_nowait,
    send_message_nowait,
    translate,
)
from patterns._socket import BaseSocket
from patterns._wire import Envelope, common_frame, encode_common, read_common
from patterns.errors import Closed, MalformedMessage, MessageTooLarge, WouldBlock
from patterns.shm.codec import Placement, delivering

__all__ = ["ReceivingSocket", "SendingSocket"]

YIELD_EVERY = 8
"""Operations in a row that did not wait before one of them yields to trio's scheduler.

Each call is a cancel point; a schedule point on every one cost a scheduler pass (an
``epoll_wait`` and a batch) per message, which doubled the passes of a request/reply loop
against a bare trio + pynng loop, whose waits alone yield. A task that never waits still
lets the others run every ``YIELD_EVERY`` operations."""


class _Waiting:
    """Who waits in one direction: one task on the descriptor, the rest in ``lot``."""

    __slots__ = ("lot", "parked")

    def __init__(self) -> None:
        self.parked = False
        self.lot = trio.lowlevel.ParkingLot()


class _FdSocket(BaseSocket):
    """Owns NNG's pollable descriptors and wakes parked tasks on close.

    :meth:`_wait` lets several tasks wait in one direction: the first parks on the
    descriptor, the others in a parking lot until it wakes (a ``trio.Lock`` would cost a
    scheduler pass per wait even when nobody else waits). The plain patterns use
    :meth:`_park` directly: one task per direction."""

    _recv_fd: int | None = None
    _send_fd: int | None = None
    _unyielded = 0  # operations since this socket's last wait or schedule point

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._waiters = {"receive": _Waiting(), "send": _Waiting()}

    def _wake_waiters(self) -> None:
        for fd in (self._recv_fd, self._send_fd):
            if fd is not None:
                trio.lowlevel.notify_closing(fd)
        for waiting in self._waiters.values():
            waiting.lot.unpark_all()

    async def _wait(self, waiting: _Waiting, fd: int, operation: str) -> None:
        """Wait until ``fd`` is readable, or another task watching it woke."""
        if waiting.parked:  # another task watches the descriptor: wait for it to wake
            self._unyielded = 0
            await waiting.lot.park()
            return
        self._require_open(operation)
        waiting.parked = True
        try:
            await self._park(fd, operation)
        finally:
            waiting.parked = False
            waiting.lot.unpark_all()  # the others try again; one of them takes over

    async def _did_not_wait(self) -> None:
        """After an operation that did not wait: a schedule point every :data:`YIELD_EVERY`."""
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _park(self, fd: int, operation: str) -> None:
        self._unyielded = 0
        try:
            await trio.lowlevel.wait_readable(fd)
        except trio.ClosedResourceError:
            raise Closed(f"{operation} failed: {self!r} was closed while waiting") from None
        except trio.BusyResourceError:
            raise trio.BusyResourceError(
                f"{operation}: another task is already waiting on {self!r}; use one task per direction"
            ) from None


class SendingSocket(_FdSocket):
    """Adds ``send`` / ``send_nowait`` / ``send_bytes`` / ``send_envelope``."""

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._send_fd = sock.send_fd
        self._send_out = ffi.new("nng_msg **")  # trio thread only

    def _try_send(self, data: bytes, operation: str) -> bool:
        sock = self._require_open(operation)
        try:
            sock.send(data, block=False)
        except pynng.TryAgain:
            return False
        except pynng.NNGException as exc:
            raise translate(exc, operation=operation, state=repr(self)) from exc
        self._sent += 1
        self._bytes_sent += len(data)
        return True

    async def send_bytes(self, data: bytes) -> None:
        """Send one raw frame (no envelope). Waits while NNG's send queue is full."""
        if len(data) > self.max_message_size:
            raise self._too_large(len(data))
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._try_send(data, "send"):
            await self._did_not_wait()
            return
        while True:
            assert self._send_fd is not None
            await self._park(self._send_fd, "send")
            if self._try_send(data, "send"):
                return

    def send_bytes_nowait(self, data: bytes) -> None:
        """Send one raw frame now, or raise :class:`WouldBlock`."""
        if len(data) > self.max_message_size:
            raise self._too_large(len(data))
        if not self._try_send(data, "send_nowait"):
            raise WouldBlock(f"send_nowait: the send queue of {self!r} is full (or no peer is ready)")

    def _too_large(self, size: int) -> Exception:
        return MessageTooLarge(f"a frame of {size} bytes exceeds max_message_size={self.max_message_size}")

    _fanout: ClassVar[bool] = False  # one message reaches every peer (bus)

    def _limit(self, inline: bool) -> int:
        """Bodies holding no buffer this large need no placement and no splicing."""
        return GAP_MIN if inline or self._beacons is None else min(GAP_MIN, self.shared_memory.threshold)

    def _encode(
        self, envelope: Envelope, inline: bool = False, common: bool = True
    ) -> tuple[Parts, Placement | None]:
        """The frame, and where its large buffers went (same-host peers: shared memory;
        ``inline``: nowhere, every buffer travels in the frame, as a part of its own).
        ``common=False``: the envelope is known not to be a common frame (:func:`encode_common`)."""
        if common and self.guard is None:  # the common small frame needs no placement: skip making one
            data = encode_common(envelope, limit=self._limit(inline), max_size=self.max_message_size)
            if data is not None:
                return (data,), None
        placement = None if inline else self._placement(self._receivers() if self._fanout else 1)
        return self._frame_parts(envelope, placement), placement

    async def _send_encoded(self, frame: tuple[Parts, Placement | None]) -> None:
        parts, placement = frame
        with delivering(placement):
            if len(parts) == 1:
                await self.send_bytes(parts[0])  # type: ignore[arg-type]  # one part is bytes
            else:
                await self._send_parts(parts)

    def _send_encoded_nowait(self, frame: tuple[Parts, Placement | None]) -> None:
        parts, placement = frame
        with delivering(placement):
            if len(parts) == 1:
                self.send_bytes_nowait(parts[0])  # type: ignore[arg-type]
                return
            msg, size = self._message(parts, "send_nowait")
            sent = False
            try:
                sent = self._try_send_message(msg, size, "send_nowait")
            finally:
                if not sent:
                    lib.nng_msg_free(msg)
            if not sent:
                raise WouldBlock(f"send_nowait: the send queue of {self!r} is full (or no peer is ready)")

    # A frame in parts (a large buffer inline) is copied once, into an NNG message built
    # here, which is kept while the send waits for room (one copy however long it waits).
    def _message(self, parts: Parts, operation: str) -> tuple[Any, int]:
        size = total(parts)
        if size > self.max_message_size:
            raise self._too_large(size)
        self._require_open(operation)
        return message_from_parts(parts, size, self._send_out, operation=operation, where=self), size

    def _try_send_message(self, msg: Any, size: int, operation: str) -> bool:
        if not send_message_nowait(self._require_open(operation), msg, operation=operation, where=self):
            return False
        self._sent += 1
        self._bytes_sent += size
        return True

    async def _send_parts(self, parts: Parts) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        msg, size = self._message(parts, "send")
        del parts  # the buffers are copied: let the caller's go
        try:
            if self._try_send_message(msg, size, "send"):
                msg = None
                await self._did_not_wait()
                return
            while True:
                assert self._send_fd is not None
                await self._park(self._send_fd, "send")
                if self._try_send_message(msg, size, "send"):
                    msg = None
                    return
        finally:
            if msg is not None:  # not sent (closed, cancelled, an error): still ours
                lib.nng_msg_free(msg)

    def _envelope(self, value: Any, kind: str, re: int | None, deadline: float | None) -> Envelope:
        return Envelope(kind=kind, sender=self.name, id=self.next_id(), body=value, re=re, deadline=deadline)

    async def send(
        self, value: Any, *, kind: str = "data", re: int | None = None, deadline: float | None = None,
        inline: bool = False,
    ) -> None:  # fmt: skip
        """Send any CBOR-encodable ``value`` in an envelope (large buffers through shared
        memory when the peers are on this host; see :class:`SharedMemory`). ``inline=True``
        keeps every buffer in the frame, for peers that take no shared-memory references."""
        ident = self.next_id()
        if self.guard is None:  # the common frame, written without building an Envelope
            data = common_frame(kind, self.name, ident, value, re, deadline, limit=self._limit(inline),
                                max_size=self.max_message_size)  # fmt: skip
            if data is not None:
                await self.send_bytes(data)
                return
        envelope = Envelope(kind=kind, sender=self.name, id=ident, body=value, re=re, deadline=deadline)
        await self._send_encoded(self._encode(envelope, inline, common=False))

    def send_nowait(
        self, value: Any, *, kind: str = "data", re: int | None = None, deadline: float | None = None,
        inline: bool = False,
    ) -> None:  # fmt: skip
        """Send ``value`` now or raise :class:`WouldBlock`."""
        self._send_encoded_nowait(self._encode(self._envelope(value, kind, re, deadline), inline))

    async def send_envelope(self, envelope: Envelope) -> None:
        """Send a complete envelope as given (its ``sender`` and ``id`` are kept)."""
        await self._send_encoded(self._encode(envelope))

    def send_envelope_nowait(self, envelope: Envelope, *, inline: bool = False) -> None:
        """Send a complete envelope now (as :meth:`send_envelope` would), or raise
        :class:`WouldBlock` when NNG's send queue is full or no peer is ready."""
        self._send_encoded_nowait(self._encode(envelope, inline))

    # ---------------------------------------------------------------- from another thread
    def send_common_threadsafe(self, envelope: Envelope) -> int | None:
        """Encode a small frame and send it now, from any thread (a handler's): returns its
        size, or None when it cannot go this way: a guard seals frames (its sequence is not
        thread-safe), the frame needs the general encoder (a buffer for shared memory or to
        splice, a value with no plain wire form) or NNG would wait. Reads only this socket's
        settings and NNG's thread-safe send; counts nothing: the caller reports what went out,
        in trio's thread, with :meth:`count_sent`. Raises :class:`Closed` (the socket is
        closed, or closes meanwhile) and :class:`MessageTooLarge`."""
        sock = self._sock
        if self._closed or sock is None:
            raise Closed(f"send from a handler thread: {self!r} is closed")
        if self.guard is not None:
            return None
        data = encode_common(envelope, limit=self._limit(False), max_size=self.max_message_size)
        if data is None:
            return None
        try:
            sock.send(data, block=False)  # NNG's sockets are thread-safe; cffi drops the GIL
        except pynng.TryAgain:
            return None
        except pynng.NNGException as exc:
            raise translate(exc, operation="send", state=repr(self)) from exc
        return len(data)

    def count_sent(self, frames: int, size: int) -> None:
        """Count frames sent by :meth:`send_common_threadsafe` (trio's thread)."""
        self._sent += frames
        self._bytes_sent += size


class ReceivingSocket(_FdSocket):
    """Adds ``receive`` / ``receive_nowait`` / ``receive_bytes`` / ``receive_envelope``."""

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._recv_fd = sock.recv_fd
        # A zero-timeout poll of NNG's descriptor (under 1 µs) tells whether a frame is
        # queued; a failing non-blocking nng_recv would cost several µs per message.
        self._readable = select.poll()
        self._readable.register(self._recv_fd, select.POLLIN)
        self._msg_out = ffi.new("nng_msg **")  # trio thread only

    def _ready(self) -> bool:
        self._require_open("receive")  # never poll a descriptor NNG has closed
        return bool(self._readable.poll(0))

    def _try_receive(self, operation: str) -> bytes | None:
        got = self._try_receive_from(operation)
        return None if got is None else got[0]  # type: ignore[return-value]  # bytes without view

    async def receive_bytes(self) -> bytes:
        """Receive one raw frame (no decoding)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        data = self._try_receive("receive") if self._ready() else None
        if data is not None:
            await self._did_not_wait()
            return data
        while True:
            assert self._recv_fd is not None
            await self._park(self._recv_fd, "receive")
            data = self._try_receive("receive")
            if data is not None:
                return data

    def receive_bytes_nowait(self) -> bytes:
        """Receive one raw frame now, or raise :class:`WouldBlock`."""
        data = self._try_receive("receive_nowait")
        if data is None:
            raise WouldBlock(f"receive_nowait: nothing queued on {self!r}")
        return data

    def _try_receive_from(self, operation: str, view: bool = False) -> tuple[bytes | memoryview, int] | None:
        """A non-blocking receive of one frame and the id of its pipe, without a pynng
        ``Message`` per frame (a Python object with a lock, a pipe lookup under another
        lock, a finalizer): the frame is copied out of NNG's message, which is freed
        here. About 6 µs less a frame. With ``view``, a large frame is not copied: it comes
        as a view of NNG's message, for the decoder to copy each large byte string out of
        once (the message is freed with the last view of it)."""
        sock = self._require_open(operation)
        msg = receive_message_nowait(sock, self._msg_out, operation=operation, where=self)
        if msg is None:
            return None
        size = lib.nng_msg_len(msg)
        pipe_id = lib.nng_pipe_id(lib.nng_msg_get_pipe(msg))
        if view and size >= GAP_MIN and self.guard is None:
            data: bytes | memoryview = body_view(msg)
        else:
            try:
                data = ffi.buffer(lib.nng_msg_body(msg), size)[:]
            finally:
                lib.nng_msg_free(msg)
        self._received += 1
        self._bytes_received += size
        return data, pipe_id

    async def _receive_frame(self, operation: str) -> tuple[bytes | memoryview, int]:
        """The next frame (large ones as views: see :meth:`_try_receive_from`) and its pipe."""
        await trio.lowlevel.checkpoint_if_cancelled()
        got = self._try_receive_from(operation, True) if self._ready() else None
        if got is not None:
            await self._did_not_wait()
        while got is None:
            assert self._recv_fd is not None
            await self._park(self._recv_fd, operation)
            got = self._try_receive_from(operation, True)
        return got

    async def receive_from(self) -> tuple[Envelope, int]:
        """Receive one envelope with the id of the peer (pipe) it came in on.

        The id matches :attr:`Peer.id` in :attr:`peers`; it is how a hub ties a
        message to a connection whose loss it will later see. A malformed frame
        raises :class:`MalformedMessage` (counted) and the next call goes on.
        """
        data, pipe_id = await self._receive_frame("receive_from")
        return self._unpack(data), pipe_id

    async def receive_envelope(self) -> Envelope:
        """Receive and strictly decode one envelope (raises :class:`MalformedMessage`)."""
        return self._unpack((await self._receive_frame("receive"))[0])

    async def receive(self) -> Any:
        """Receive one value (the envelope's body).

        A frame that fails strict decoding raises :class:`MalformedMessage` and is
        counted; the next call receives the next frame.
        """
        data = (await self._receive_frame("receive"))[0]
        if self.guard is None:  # a small common frame: its body, without building an Envelope
            fields = read_common(data, max_size=self.max_message_size, max_items=self.max_items,
                                 measure=self._measure)  # fmt: skip
            if fields is not None:
                return fields[3]
        return self._unpack(data).body

    def receive_nowait(self) -> Any:
        """Receive one value now, or raise :class:`WouldBlock`."""
        return self._unpack(self.receive_bytes_nowait()).body

    async def envelopes(self) -> AsyncIterator[Envelope]:
        """Iterate over incoming envelopes, skipping (and logging) malformed frames."""
        while True:
            try:
                yield await self.receive_envelope()
            except MalformedMessage as exc:
                self._skipped("frame", exc)
            except Closed:
                return

    async def __aiter__(self) -> AsyncIterator[Any]:
        """``async for value in sock``: bodies until the socket closes; bad frames skipped."""
        async for envelope in self.envelopes():
            yield envelope.body
