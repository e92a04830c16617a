"""The answering side of SURVEY: a respondent0 socket whose surveys are answered in any order.

Each survey is taken on an NNG context of its own (NNG keeps the route back, the pipe
and backtrace, in the context), so several can be open and answered concurrently. The
contexts are driven without an aio per message on the fast path:

* receive: a non-blocking ``nng_ctx_recvmsg`` on a pooled context, parking on the
  socket's pollable descriptor when nothing is queued (NNG raises it while a survey
  waits and no context is receiving, which is always the case here: no receive is ever
  left pending);
* reply: ``nng_ctx_send`` with a callback-less aio. When the connection is free NNG
  writes the reply in this very call and the aio is already complete; only a reply
  queued behind an earlier one on the same connection waits, in a worker thread
  (the aio's completion: :mod:`patterns._ctx_send`).

pynng's ``Context.asend``/``arecv`` would cost an aio and a cross-thread wake-up of trio
per message. A raw respondent (no contexts, the route in each message's header) was
tried too and measured as fast, but in a test that answers a large survey at once it lost
the reply about one time in five: its connection closed right after the send, which
contexts never showed (0 in 48 runs).

The survey's deadline travels as wall-clock time (the envelope's ``dl``); it is turned
into trio's clock once, when the survey is received (:attr:`IncomingSurvey.deadline`).
Receiving attaches the shared memory a survey refers to (``BaseSocket._unpack``); a
reply to a peer on this host may create segments (its ``Placement``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import trio
from pynng import ffi, lib

from patterns._ctx_send import aio_result, wait_and_free
from patterns._fd import EAGAIN, NONBLOCK, YIELD_EVERY, FdSocket
from patterns._incoming import QUEUED_REPLY_TIMEOUT, IncomingSurvey
from patterns._nng import raise_for
from patterns._shape import HOLE, Shape
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH
from patterns.errors import Closed, MalformedMessage, MessageTooLarge, WouldBlock

__all__ = ["IncomingSurvey", "Respondent"]


_NULL = ffi.NULL
MAX_IDLE_CONTEXTS = 64
"""Contexts kept open for reuse once their survey is answered; more are closed."""

class Respondent(FdSocket):
    """A respondent0 socket: receives surveys; each can be answered in any order."""

    _protocol = "Respondent0"
    _spare_aio: Any = None  # the aio of a reply sent at once, for the next reply to reuse

    def expect(self, *shapes: Shape) -> None:
        """Read surveys of these shapes (the surveyor's most frequent ones) from their
        templates (:meth:`Shape.read`), before the common reader; replaces the ones expected
        before."""
        self._expected = shapes

    def shape(self, kind: str, *, re: bool, deadline: bool, body: Any = HOLE, sender: str | None = None,
              scalars: bool = False) -> Shape:  # fmt: skip
        """The :class:`~patterns._shape.Shape` of frames of ``kind`` from ``sender`` (this
        socket's name by default: a reply's, for :meth:`IncomingSurvey.reply`; a surveyor's:
        to :meth:`expect`)."""
        return Shape(kind, self.name if sender is None else sender, re=re, deadline=deadline, body=body,
                     max_kind=MAX_KIND_LENGTH, max_sender=MAX_SENDER_LENGTH, scalars=scalars)  # fmt: skip

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._watch_receivable(sock)
        self._aio_out = ffi.new("nng_aio **")
        self._open: dict[int, Any] = {}  # every context we opened (its nng_ctx holder), by id
        self._idle: list[Any] = []

    # ----------------------------------------------------------------- contexts
    def _context(self, operation: str) -> Any:
        if self._idle:
            return self._idle.pop()
        self._require_open(operation)
        holder = ffi.new("nng_ctx *")  # its own memory: ``holder[0]`` is a view, not a copy
        err = lib.nng_ctx_open(holder, self._handle)
        if err:
            raise_for(err, operation=operation, where=self)
        ctx = holder[0]
        self._open[lib.nng_ctx_id(ctx)] = holder
        return ctx

    def _release(self, ctx: Any) -> None:
        if self._closed:
            return
        if len(self._idle) < MAX_IDLE_CONTEXTS:
            self._idle.append(ctx)
        else:
            self._open.pop(lib.nng_ctx_id(ctx), None)
            lib.nng_ctx_close(ctx)

    def _close_nng(self) -> None:
        if self._sock is not None:
            for holder in self._open.values():  # NNG wants contexts closed before their socket
                lib.nng_ctx_close(holder[0])
            self._open.clear()
            self._idle.clear()
        aio, self._spare_aio = self._spare_aio, None
        if aio is not None:
            lib.nng_aio_free(aio)
        super()._close_nng()

    def _surveys_open(self) -> int:
        return len(self._open) - len(self._idle)

    # ----------------------------------------------------------------- receive
    def _try_receive(self, operation: str) -> IncomingSurvey | None:
        if not self._queued(operation):
            return None
        return self._take(operation)

    def _take(self, operation: str) -> IncomingSurvey | None:
        """The next survey, on a context of its own, or None if none is queued after all."""
        if self._closed:
            self._require_open(operation)
        got = self._receive_body(operation, self._msg_out)
        if got is None:
            return None
        ctx, body = got
        opened = None
        try:
            if self.guard is None:  # a small common survey: read into fields, no Envelope
                fields = self._plain_fields(body)
                if fields is not None:
                    return IncomingSurvey.of_fields(self, ctx, fields, len(body))
                envelope = self._unpack(body)  # (shared memory, or malformed)
            else:  # sealed: nothing read before the guard's checks (refused and counted there)
                opened = self._guard_open(body)
                fields = self._opened_fields(opened)
                if fields is not None:  # its payload a small common survey, within its key's limits
                    return IncomingSurvey.of_fields(self, ctx, fields, len(opened.payload), opened.session)
                envelope = self._unpack_opened(opened, len(body))
        except MalformedMessage:
            self._release(ctx)
            raise
        return IncomingSurvey(self, ctx, envelope)  # its deadline is converted if read

    def _receive_body(self, operation: str, out: Any) -> tuple[Any, bytes] | None:
        """The next survey's context and frame, received without waiting through ``out`` (an
        ``nng_msg **`` of the calling thread's), and counted; None when none is queued."""
        ctx = self._context(operation)
        err = lib.nng_ctx_recvmsg(ctx, out, NONBLOCK)
        if err:
            self._release(ctx)
            if err == EAGAIN:
                return None
            raise_for(err, operation=operation, where=self)
        msg = out[0]
        try:
            body = ffi.buffer(lib.nng_msg_body(msg), lib.nng_msg_len(msg))[:]
        finally:
            lib.nng_msg_free(msg)
        self._received += 1
        self._bytes_received += len(body)
        return ctx, body

    def count_sent(self, replies: int, size: int) -> None:
        """Count ``replies`` of ``size`` bytes in all that another thread sent (trio's thread)."""
        self._sent += replies
        self._bytes_sent += size

    async def receive(self) -> IncomingSurvey:
        """Wait for the next survey (raises :class:`MalformedMessage` for a bad frame).
        A cancel point: when none is queued, the wait is one (no cancel check first)."""
        if self._queued("receive()"):
            await trio.lowlevel.checkpoint_if_cancelled()  # (raises if cancelled, else returns at once)
            survey = self._take("receive()")  # (not _try_receive: it would poll the descriptor again)
            if survey is not None:
                self._unyielded += 1  # (``_did_not_wait``, inline)
                if self._unyielded >= YIELD_EVERY:
                    self._unyielded = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return survey
        while True:
            assert self._recv_fd is not None
            # Woken by the descriptor, a survey is queued: no poll to ask again.
            if await self._wait(self._waiters["receive"], self._recv_fd, "receive()"):
                survey = self._take("receive()")
            else:
                survey = self._try_receive("receive()")
            if survey is not None:
                return survey

    def receive_nowait(self) -> IncomingSurvey:
        """The next survey if one is queued, else :class:`WouldBlock`."""
        survey = self._try_receive("receive_nowait()")
        if survey is None:
            raise WouldBlock(f"receive_nowait: no survey is queued on {self!r}")
        return survey

    async def __aiter__(self) -> AsyncIterator[IncomingSurvey]:
        """``async for survey in respondent``: until closed; malformed surveys skipped."""
        while True:
            try:
                yield await self.receive()
            except MalformedMessage as exc:
                self._skipped("survey", exc)
            except Closed:
                return

    # ----------------------------------------------------------------- reply
    async def _send_reply(self, ctx: Any, data: bytes, wall: float | None, survey: int) -> None:
        """Send ``data`` on ``ctx`` (the context of ``survey``, whose deadline is ``wall``, on
        the wire's clock: a queued reply's timeout needs no reading of trio's), then release
        the context."""
        release = True
        size = len(data)
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            if size > self.max_message_size:
                raise MessageTooLarge(f"reply to survey {survey}: a frame of {size} bytes exceeds "
                                      f"max_message_size={self.max_message_size}")  # fmt: skip
            left = 0.0 if wall is None else max(wall - time.time(), 0.0)
            aio = self._submit(ctx, data, size, round(1000 * (left + QUEUED_REPLY_TIMEOUT)), survey)
            if lib.nng_aio_busy(aio):  # queued behind an earlier reply on this connection
                release = False  # if we are cancelled, the thread still owns the context
                err = await trio.to_thread.run_sync(wait_and_free, aio, abandon_on_cancel=True)
                release = True
            else:
                err = aio_result(aio)
                if self._spare_aio is None and not self._closed:
                    self._spare_aio = aio  # done: the next reply takes it (alloc and free: ~1.4 µs)
                else:
                    lib.nng_aio_free(aio)
                self._unyielded += 1  # (``_did_not_wait``, inline)
                if self._unyielded >= YIELD_EVERY:
                    self._unyielded = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
            if err:
                raise_for(err, operation=f"reply to survey {survey}", where=self)
        finally:
            if release:
                self._release(ctx)
        self._sent += 1
        self._bytes_sent += size

    def _submit(self, ctx: Any, data: bytes, size: int, timeout_ms: int, survey: int) -> Any:
        """Hand ``data`` (``size`` bytes) to NNG on ``ctx`` with a callback-less aio; returns
        the aio. When the connection is free NNG writes the frame in this call."""
        if self._closed:
            self._require_open(f"reply to survey {survey}")
        aio, self._spare_aio = self._spare_aio, None
        if aio is None:
            err = lib.nng_aio_alloc(self._aio_out, _NULL, _NULL)
            if err:
                raise_for(err, operation=f"reply to survey {survey}", where=self)
            aio = self._aio_out[0]
        err = lib.nng_msg_alloc(self._msg_out, size)
        if err:
            lib.nng_aio_free(aio)
            raise_for(err, operation=f"reply to survey {survey}", where=self)
        msg = self._msg_out[0]
        ffi.memmove(lib.nng_msg_body(msg), data, size)
        lib.nng_aio_set_msg(aio, msg)
        lib.nng_aio_set_timeout(aio, timeout_ms)
        lib.nng_ctx_send(ctx, aio)
        return aio
