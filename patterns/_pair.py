"""PAIR: one direct, bidirectional line to exactly one peer (NNG pair1, not polyamorous)."""

from __future__ import annotations

from typing import Any, TypeAlias

import trio

from patterns._fd import YIELD_EVERY
from patterns._guard import FirstOpened
from patterns._shape import Shape
from patterns._stream import ReceivingSocket, SendingSocket
from patterns.errors import MalformedMessage

__all__ = ["Fields", "Pair"]

Fields: TypeAlias = "tuple[str, str, int, Any, int | None, float | None]"
"""A received envelope's (kind, sender, id, body, re, deadline), as :meth:`Pair.receive_fields` gives them."""

_wait_readable = trio.lowlevel.wait_readable
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled


class Pair(SendingSocket, ReceivingSocket):
    """A pair1 socket. One peer at a time: NNG refuses a second connection.

    ``async with Pair(listen="ipc:///tmp/a.ipc") as line: await line.send({"turn": 1})``
    """

    _protocol = "Pair1"
    def expect(self, *shapes: Shape) -> None:
        """Read frames of these shapes (the peer's most frequent ones) from their templates
        (:meth:`Shape.read`), before the common reader; replaces the ones expected before.
        The shape of the last frame read so is tried first."""
        self._expected = shapes

    def _fields(self, data: bytes | memoryview) -> Fields:
        """The fields of a received frame: a small common frame's read by
        :func:`~patterns._wire.read_common` (no :class:`Envelope` built), any other's from
        the envelope :meth:`_unpack` decodes (shared memory attached), which raises and
        counts what is wrong with it. A sealed frame's are read the same way once its guard
        has opened it (:meth:`_sealed_fields`). Its ``shm`` (resolved into the body),
        ``size`` and ``session`` are not among them."""
        if self.guard is not None:
            return self._sealed_fields(data if type(data) is bytes else bytes(data))
        fields = self._plain_fields(data)
        if fields is not None:
            return fields
        envelope = self._unpack(data)
        return envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline

    def _sealed_fields(self, data: bytes) -> Fields:
        """:meth:`_fields` of a sealed frame. Nothing is read before the guard's check
        (:meth:`_guard_open`: key, tag, then replay window; refused and counted there); then its
        payload, a plain frame, is read as :meth:`_fields` reads one, and the key's limits
        (the only sender and kinds it speaks for) are checked on the fields. A payload
        read no such way, or refused by those limits, goes through the envelope's path
        (:meth:`_unpack_opened`: not opened twice), which says why and counts it."""
        assert self.guard is not None
        try:  # (_guard_open, inline: a call less per frame)
            opened = self.guard.open(data)
        except MalformedMessage as exc:
            self._count_refused(exc)
            raise
        fields = self._plain_fields(opened.payload)  # (a guard's payload is bytes)
        if (fields is not None and (opened.owner is None or fields[1] == opened.owner)
                and (opened.kinds is None or fields[0] in opened.kinds)):  # fmt: skip
            if type(opened) is FirstOpened:  # (as _decode_opened: only a frame fully accepted)
                opened.accepted()
            return fields
        envelope = self._unpack_opened(opened, len(data))
        return envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline

    async def receive_fields(self) -> tuple[Fields, int]:
        """:meth:`~patterns._receiving.ReceivingSocket.receive_from`, as the frame's fields
        (:meth:`_fields`) and the id of its pipe, with its ``_receive_frame`` inline. A
        hotline's receive loop parks here for every frame, and each coroutine between it
        and trio's wait is one more frame to enter and to resume per frame received (two
        Python calls, a tenth of the answering side's own work). Keep in step with
        ``_receive_frame``."""
        operation = "receive_from"
        if self._queued(operation):
            await _checkpoint_if_cancelled()
            got = self._try_receive_from(operation, True)
            if got is not None:
                self._unyielded += 1  # (``_did_not_wait``, inline)
                if self._unyielded >= YIELD_EVERY:
                    self._unyielded = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return self._fields(got[0]), got[1]
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
            got = self._try_receive_from(operation, True)
            if got is not None:
                return self._fields(got[0]), got[1]

    async def receive_fields_once(self, *, just_sent: bool = False) -> tuple[Fields, int] | None:
        """:meth:`receive_fields`, but waiting for NNG at most once: None when that wait
        ended without a frame, or :meth:`interrupt_receive` ended it.

        For a reader that must stop when something else happens (a hotline asker whose
        ask timed out) without a cancel scope per wait, which costs about as much as the
        rest of a small round trip's Python work: it checks its own condition between
        calls, and whoever changes that condition calls :meth:`interrupt_receive`.

        ``just_sent``: the caller has just sent a request, so its reply cannot be queued
        yet: wait at once, without first asking whether a frame is queued (a ``poll``
        system call). A frame that is queued all the same is taken one pass of trio's
        scheduler later."""
        operation = "receive_from"
        if not just_sent and self._queued(operation):
            await _checkpoint_if_cancelled()
            got = self._try_receive_from(operation, True)
            if got is not None:
                self._unyielded += 1  # (``_did_not_wait``, inline)
                if self._unyielded >= YIELD_EVERY:
                    self._unyielded = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return self._fields(got[0]), got[1]
        elif self._closed:  # (``_queued`` checks this)
            self._require_open(operation)
        fd = self._recv_fd
        assert fd is not None
        self._unyielded = 0
        try:
            await _wait_readable(fd)
        except trio.ClosedResourceError:
            if self._closed:
                raise self._closed_while_waiting(operation) from None
            return None  # interrupted: the socket is open
        except trio.BusyResourceError:
            raise self._busy(operation) from None
        got = self._try_receive_from(operation, True)
        if got is None:
            return None
        return self._fields(got[0]), got[1]

    def receive_fields_nowait(self) -> tuple[Fields, int] | None:
        """:meth:`receive_fields` now, or None when nothing is queued: for a reader in another
        thread that waits on ``recv_fd`` itself (``consensus.hotline.foreign``, ``thread_asks``),
        as :meth:`~patterns._receiving.ReceivingSocket.receive_from_nowait` is, without the
        :class:`Envelope`. Only one thread may receive at a time (the counters are not
        locked). Raises :class:`Closed` and :class:`MalformedMessage` (counted) as
        :meth:`receive_fields` does."""
        got = self._try_receive_from("receive_from", True)
        if got is None:
            return None
        return self._fields(got[0]), got[1]

    def interrupt_receive(self) -> None:
        """End the wait of the task in :meth:`receive_fields_once`, if one waits (it returns
        None); from trio's thread. Trio's only public way to wake a task parked on a
        descriptor is ``notify_closing``: it also forgets the descriptor's registration,
        which the next wait makes again (two ``epoll_ctl`` calls: for rare events only).
        A task waiting in :meth:`receive_fields` instead would see the socket as closed."""
        fd = self._recv_fd
        if fd is not None and not self._closed:
            trio.lowlevel.notify_closing(fd)
