"""Raw-mode NNG sockets driven by readiness: whole messages, header and body.

A cooked surveyor keeps one survey per socket; to run several at once NNG offers
contexts, but a surveyor context has no pollable descriptor: its replies are only
reachable through aios (``arecv``), each completed from an NNG thread that must wake
trio (~120-190 µs a message here, the bulk of a poll's cost). A *raw* surveyor has no
such state: the survey id lives in the message header, so it can be driven like the
context-free patterns, with non-blocking ``nng_recvmsg``/``nng_sendmsg`` and
``wait_readable`` on NNG's pollable descriptors, and route replies itself. The wire is
the same as a cooked socket's. (The respondent side uses contexts: ``_respondent``.)

A non-blocking ``nng_sendmsg`` on a raw surveyor says EAGAIN now and then with nothing
queued at all (NNG's sender has not taken the previous message yet: 44 of 500 polls of one
member here). Waiting on NNG's send descriptor then would cost a scheduler pass, and the
descriptor, once asked for, is signalled on every later send (a pipe write and two reads,
~10 µs of CPU a send here, for the socket's whole life). So an EAGAIN is followed by one
blocking send bounded by :data:`SEND_STALL_MS` (NNG's sender takes the message within
microseconds), as the bare pynng floor's blocking ``send`` does; only when that times out
does the socket wait on the descriptor.

Receiving goes through one aio the socket keeps (:attr:`RawSocket._recv_aio`), with a zero
timeout, submitted and waited for in the calling thread: ``nng_recvmsg`` is that same call
with an aio allocated and freed per message, and a ``poll(2)`` of the descriptor before each
receive was a system call a message more. Draining 8 queued replies that way took 134 µs
(median) against 156 µs here (``nng_recvmsg`` after a ``poll``); the aio never waits (a zero
timeout fails at once with ``NNG_ETIMEDOUT`` when nothing is queued), so it is never pending
and is freed with the socket.

Only the trio thread calls into a socket here. Several tasks may wait in one direction
(``FdSocket._wait``). This module moves bytes only: encoding, decoding and shared
memory are its subclasses' business (``Surveyor``, through ``BaseSocket._unpack``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import trio
from pynng import ffi, lib

from patterns._fd import EAGAIN, NONBLOCK, FdSocket
from patterns._nng import raise_for
from patterns.errors import MessageTooLarge

__all__ = ["NOTHING_QUEUED", "SEND_STALL_MS", "RawSocket", "survey_header"]

SEND_STALL_MS = 5
"""How long a send that found NNG's sender busy blocks in NNG (the socket's send timeout),
at most, before the socket waits on the send descriptor in trio instead."""

_ETIMEDOUT: int = lib.NNG_ETIMEDOUT
NOTHING_QUEUED: int = _ETIMEDOUT
"""What the receive aio's result says when no message was queued (its timeout is zero)."""


class RawSocket(FdSocket):
    """A raw NNG socket of ``_protocol``: ``_try_send_message`` queues a (header, body) pair
    without blocking and ``_send_message`` waits for room; receiving is the subclass's
    (``_queued``, ``_receive_msg`` or its own loop, and ``_wait`` on ``_recv_fd``)."""

    _raw_opener: ClassVar[str]  # the pynng.lib function that opens the raw socket
    _recv_aio: Any = None  # the receiving aio (module docstring); None until open and once closed

    def _factory_options(self) -> dict[str, Any]:
        # The send timeout bounds only the blocking retry after an EAGAIN (module docstring).
        return {"opener": getattr(lib, self._raw_opener), "send_timeout": SEND_STALL_MS}

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._watch_receivable(sock)
        out = ffi.new("nng_aio **")
        err = lib.nng_aio_alloc(out, ffi.NULL, ffi.NULL)
        if err:
            raise_for(err, operation="open", where=self)
        self._recv_aio = out[0]
        lib.nng_aio_set_timeout(self._recv_aio, 0)  # NNG_DURATION_ZERO: take what is queued, never wait

    def _close_nng(self) -> None:
        super()._close_nng()
        aio, self._recv_aio = self._recv_aio, None
        if aio is not None:  # idle: it is only ever used within one call on the trio thread
            lib.nng_aio_free(aio)

    # ----------------------------------------------------------------- send
    def _try_send_message(self, header: bytes, body: bytes, operation: str) -> bool:
        """Queue (header, body) with NNG now; False when its send queue is full."""
        size = len(body)
        if size > self.max_message_size:
            raise MessageTooLarge(
                f"{operation}: a frame of {size} bytes exceeds max_message_size={self.max_message_size}"
            )
        if self._closed or self._handle is None:
            self._require_open(operation)
        out = self._msg_out
        err = lib.nng_msg_alloc(out, size)
        if not err:
            msg = out[0]
            ffi.memmove(lib.nng_msg_body(msg), body, size)
            err = lib.nng_msg_header_append(msg, header, len(header))
            if not err:
                err = lib.nng_sendmsg(self._handle, msg, NONBLOCK)  # owns msg on success
                if err == EAGAIN:  # NNG's sender is busy for a moment: wait for it in NNG
                    err = lib.nng_sendmsg(self._handle, msg, 0)  # (module docstring)
            if err:
                lib.nng_msg_free(msg)
        if err:
            if err == EAGAIN or err == _ETIMEDOUT:
                return False
            raise_for(err, operation=operation, where=self)
        self._sent += 1
        self._bytes_sent += size
        return True

    async def _send_message(self, header: bytes, body: bytes, operation: str) -> None:
        """Queue (header, body), waiting while NNG's send queue is full. A checkpoint."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._try_send_message(header, body, operation):
            await self._did_not_wait()
            return
        while True:
            await self._wait(self._waiters["send"], self._send_descriptor(operation), operation)
            if self._try_send_message(header, body, operation):
                return


def survey_header(nng_id: int) -> bytes:
    """The header a raw surveyor sends: NNG's 31-bit survey id, high bit set."""
    return ((nng_id & 0x7FFF_FFFF) | 0x8000_0000).to_bytes(4, "big")
