"""Readiness on NNG's pollable descriptors: the waiting half of every trio-driven socket.

pynng's ``asend``/``arecv`` allocate an NNG aio per message and complete it from an
NNG thread that must wake trio: ~120-190 µs each here. Instead the sockets try the
non-blocking NNG call first and, only when it would block, park the task on NNG's
pollable descriptor (``recv_fd``/``send_fd``) with ``trio.lowlevel.wait_readable``.
Closing the socket calls ``trio.lowlevel.notify_closing`` on both descriptors, so a
parked task wakes at once with :class:`Closed`.

The non-blocking calls go to NNG's C functions with the socket's handle kept here
(:attr:`FdSocket._handle`), not through pynng's methods: those add a property, a type
check and an error check per call (six Python calls a frame), and pynng's ``recv``
allocates two cffi objects per frame.
"""

from __future__ import annotations

import select
from typing import Any

import pynng
import trio
from pynng import ffi, lib

from patterns._nng import raise_for, translate
from patterns._socket import BaseSocket
from patterns.errors import Closed

__all__ = ["YIELD_EVERY", "FdSocket", "Waiting"]

YIELD_EVERY = 8
"""Operations in a row that did not wait before one of them yields to trio's scheduler.

Each call is a cancel point; a schedule point on every one cost a scheduler pass (an
``epoll_wait`` and a batch) per message, which doubled the passes of a request/reply loop
against a bare trio + pynng loop, whose waits alone yield. A task that never waits still
lets the others run every ``YIELD_EVERY`` operations."""

NONBLOCK: int = lib.NNG_FLAG_NONBLOCK
EAGAIN: int = lib.NNG_EAGAIN
_wait_readable = trio.lowlevel.wait_readable


class Waiting:
    """Who waits in one direction: one task on the descriptor, the rest in ``lot``
    (``behind`` of them: waking an empty lot costs four calls into trio). ``roused``: the
    task on the descriptor was woken on purpose (:meth:`FdSocket._rouse`), not by a close."""

    __slots__ = ("behind", "lot", "parked", "roused")

    def __init__(self) -> None:
        self.parked = False
        self.roused = False
        self.behind = 0
        self.lot = trio.lowlevel.ParkingLot()


class FdSocket(BaseSocket):
    """Owns NNG's pollable descriptors and wakes parked tasks on close.

    :meth:`_wait` lets several tasks wait in one direction: the first parks on the
    descriptor, the others in a parking lot until it wakes (a ``trio.Lock`` would cost a
    scheduler pass per wait even when nobody else waits). The plain patterns use
    :meth:`_park` directly: one task per direction."""

    _recv_fd: int | None = None
    _send_fd: int | None = None
    _handle: Any = None  # the nng_socket, for NNG's C calls (None until open)
    _unyielded = 0  # operations since this socket's last wait or schedule point

    @property
    def receive_descriptor(self) -> int:
        """NNG's receive descriptor: readable while a frame is queued (for another loop or
        thread to watch)."""
        fd = self._recv_fd
        if fd is None or self._closed:
            self._require_open("receive_descriptor")
        assert fd is not None
        return fd

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._waiters = {"receive": Waiting(), "send": Waiting()}
        # A copy in memory of our own: pynng drops its handle when the socket closes.
        self._handle_memory = ffi.new("nng_socket *", sock.socket)
        self._handle = self._handle_memory[0]
        self._msg_out = ffi.new("nng_msg **")  # trio thread only

    def _watch_receivable(self, sock: Any) -> None:
        """Note NNG's receive descriptor, and poll it with a zero timeout (under 1 µs) to
        tell whether a frame is queued: a failing non-blocking receive costs several µs."""
        self._recv_fd = sock.recv_fd
        self._readable = select.poll()
        self._readable.register(self._recv_fd, select.POLLIN)

    def _send_descriptor(self, operation: str) -> int:
        """NNG's send descriptor, asked for the first time a send must wait. Once it exists
        NNG signals it on every send (a write and two reads of its pipe per frame, measured
        with ``strace -c``), which a socket whose queue never fills should not pay."""
        fd = self._send_fd
        if fd is None:
            if self._closed or self._sock is None:
                self._require_open(operation)
            try:
                fd = self._send_fd = self._sock.send_fd
            except pynng.NNGException as exc:
                raise translate(exc, operation=operation, state=repr(self)) from exc
        return fd

    def _queued(self, operation: str) -> bool:
        """Is a frame queued for receiving? (Never polls a descriptor NNG has closed.)"""
        if self._closed or self._handle is None:
            self._require_open(operation)
        return bool(self._readable.poll(0))

    def _receive_msg(self, operation: str) -> Any | None:
        """A non-blocking ``nng_recvmsg``: the message (the caller frees it), or None."""
        if self._closed or self._handle is None:
            self._require_open(operation)
        out = self._msg_out
        err = lib.nng_recvmsg(self._handle, out, NONBLOCK)
        if not err:
            return out[0]
        if err == EAGAIN:
            return None
        raise_for(err, operation=operation, where=self)

    def _send_msg(self, msg: Any, operation: str) -> bool:
        """A non-blocking ``nng_sendmsg`` of ``msg``: True when NNG took it (and owns it),
        False when its queue is full (the caller still owns it)."""
        if self._closed or self._handle is None:
            self._require_open(operation)
        err = lib.nng_sendmsg(self._handle, msg, NONBLOCK)
        if not err:
            return True
        if err == EAGAIN:
            return False
        raise_for(err, operation=operation, where=self)

    def _wake_waiters(self) -> None:
        if self._sock is None:  # never opened: nobody can be waiting on it
            return
        for fd in (self._recv_fd, self._send_fd):
            if fd is not None:
                trio.lowlevel.notify_closing(fd)
        for waiting in self._waiters.values():
            waiting.lot.unpark_all()

    async def _wait(self, waiting: Waiting, fd: int, operation: str) -> bool:
        """Wait until ``fd`` is readable (True), or another task watching it woke (False)."""
        self._unyielded = 0
        if waiting.parked:  # another task watches the descriptor: wait for it to wake
            waiting.behind += 1
            try:
                await waiting.lot.park()
            finally:
                waiting.behind -= 1
            return False
        if self._closed:
            self._require_open(operation)
        waiting.parked = True
        try:
            await _wait_readable(fd)  # (``_park``, inline)
        except trio.ClosedResourceError:
            if waiting.roused and not self._closed:
                return False
            raise self._closed_while_waiting(operation) from None
        except trio.BusyResourceError:
            raise self._busy(operation) from None
        finally:
            waiting.parked = waiting.roused = False
            if waiting.behind:  # the others try again; one of them takes over
                waiting.lot.unpark_all()
        return True

    def _rouse(self, waiting: Waiting, fd: int) -> None:
        """Wake the task parked on ``fd`` although NNG has nothing more for it: another task
        took its frame off the socket for it. NNG signals a descriptor once per queued frame,
        so without this the task would sleep on with its frame handed over. trio has no other
        way to end a wait on a descriptor than telling it the descriptor closes; the task sees
        ``roused`` and returns, and its next wait registers the descriptor again."""
        if waiting.parked and not waiting.roused:
            waiting.roused = True
            trio.lowlevel.notify_closing(fd)

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
            raise self._closed_while_waiting(operation) from None
        except trio.BusyResourceError:
            raise self._busy(operation) from None

    def _closed_while_waiting(self, operation: str) -> Closed:
        return Closed(f"{operation} failed: {self!r} was closed while waiting")

    def _busy(self, operation: str) -> trio.BusyResourceError:
        return trio.BusyResourceError(
            f"{operation}: another task is already waiting on {self!r}; use one task per direction"
        )
