"""Receive for the context-free patterns (pair, bus, pull), driven by readiness.

The receiving half of :mod:`patterns._stream` (which re-exports :class:`ReceivingSocket`).
Per frame the common case is one non-blocking NNG call and, when nothing is queued, one
wait; the frame is copied out of NNG's message (a large one comes as a view of it), and a
receive that finds nothing queued skips the cancel check, since the wait it parks in is a
checkpoint of its own. A receive attaches the segments a frame refers to
(``BaseSocket._unpack``, after the pure decode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio
from pynng import ffi, lib

from patterns._fd import YIELD_EVERY, FdSocket
from patterns._gaps import GAP_MIN
from patterns._nng import body_view
from patterns._wire import Envelope, read_common
from patterns.errors import Closed, MalformedMessage, WouldBlock

__all__ = ["ReceivingSocket"]

_wait_readable = trio.lowlevel.wait_readable
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


class ReceivingSocket(FdSocket):
    """Adds ``receive`` / ``receive_nowait`` / ``receive_bytes`` / ``receive_envelope``."""

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._watch_receivable(sock)

    def _try_receive(self, operation: str) -> bytes | None:
        got = self._try_receive_from(operation)
        return None if got is None else got[0]  # type: ignore[return-value]  # bytes without view

    async def receive_bytes(self) -> bytes:
        """Receive one raw frame (no decoding)."""
        return (await self._receive_frame("receive", False))[0]  # type: ignore[return-value]  # bytes

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
        msg = self._receive_msg(operation)
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

    async def _receive_frame(self, operation: str, view: bool = True) -> tuple[bytes | memoryview, int]:
        """The next frame (large ones as views: see :meth:`_try_receive_from`) and its pipe.

        A cancel point always: when nothing is queued, the wait is one (trio delivers a
        pending cancellation as the task parks), so only a frame taken at once checks first."""
        if self._queued(operation):
            await _checkpoint_if_cancelled()
            got = self._try_receive_from(operation, view)
            if got is not None:
                self._unyielded += 1  # (``_did_not_wait``, inline: a call less per frame)
                if self._unyielded >= YIELD_EVERY:
                    self._unyielded = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return got
        fd = self._recv_fd
        assert fd is not None
        while True:
            self._unyielded = 0  # (``_park``, inline)
            try:
                await _wait_readable(fd)
            except trio.ClosedResourceError:
                raise self._closed_while_waiting(operation) from None
            except trio.BusyResourceError:
                raise self._busy(operation) from None
            got = self._try_receive_from(operation, view)
            if got is not None:
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

    def receive_from_nowait(self) -> tuple[Envelope, int] | None:
        """:meth:`receive_from` now, or None when nothing is queued. For a reader in another
        thread that waits on ``recv_fd`` itself (``consensus.hotline.foreign``); only one
        thread may receive at a time (the counters are not locked). Raises :class:`Closed`
        and :class:`MalformedMessage` as :meth:`receive_from` does."""
        got = self._try_receive_from("receive_from")
        if got is None:
            return None
        return self._unpack(got[0]), got[1]

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
