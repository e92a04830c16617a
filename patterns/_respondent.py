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
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio
from pynng import ffi, lib

from patterns._ctx_send import aio_result, result_and_free, submit_threadsafe, wait_and_free
from patterns._fd import EAGAIN, NONBLOCK, YIELD_EVERY, FdSocket
from patterns._gaps import GAP_MIN
from patterns._nng import raise_for
from patterns._wire import Envelope, common_frame
from patterns.errors import Closed, MalformedMessage, MessageTooLarge, WouldBlock
from patterns.shm.codec import delivering

__all__ = ["IncomingSurvey", "Respondent"]


_NULL = ffi.NULL
_UNREAD = object()  # an IncomingSurvey's deadline not converted to trio's clock yet

MAX_IDLE_CONTEXTS = 64
"""Contexts kept open for reuse once their survey is answered; more are closed."""

QUEUED_REPLY_TIMEOUT = 5.0
"""A reply queued behind another on the same connection is dropped (``Timeout``) if it
is still waiting this many seconds after the survey's deadline."""


class IncomingSurvey:
    """A survey received by a :class:`Respondent`; answer it once with :meth:`reply`."""

    __slots__ = ("_ctx", "_deadline", "_respondent", "envelope")

    def __init__(self, respondent: Respondent, ctx: Any, envelope: Envelope) -> None:
        self._respondent = respondent
        self._ctx: Any = ctx  # the NNG context that holds the route back
        self.envelope = envelope
        self._deadline: float | None | object = _UNREAD  # on trio's clock, once read (``deadline``)

    def __repr__(self) -> str:
        return f"<IncomingSurvey {self.envelope.id} from {self.sender!r} kind={self.envelope.kind!r}>"

    @property
    def body(self) -> Any:
        return self.envelope.body

    @property
    def sender(self) -> str:
        return self.envelope.sender

    @property
    def deadline(self) -> float | None:
        """The surveyor's deadline on trio's clock (compare with ``trio.current_time()``,
        use with ``trio.move_on_at``), or None if it sent none. Converted once, the first
        time it is read (in trio's thread), from the wall-clock time on the wire
        (``envelope.deadline``): a handler that answers at once never needs it, and the
        two clocks keep their distance meanwhile."""
        deadline = self._deadline
        if deadline is _UNREAD:
            wall = self.envelope.deadline
            deadline = self._deadline = None if wall is None else trio.current_time() + (wall - time.time())
        return deadline  # type: ignore[return-value]

    @property
    def answered(self) -> bool:
        return self._ctx is None

    async def reply(self, value: Any, *, kind: str = "reply", inline: bool = False) -> None:
        """Send ``value`` back to the surveyor (at most once).

        A value that cannot be encoded raises :class:`EncodeError` and leaves the
        survey unanswered, so the caller can still reply with something else. If the
        surveyor has gone, NNG drops the reply. ``inline=True``: no shared-memory placement.
        """
        resp = self._respondent
        if self._ctx is None:
            raise Closed(f"{self!r} was already answered or declined")
        ident, survey, guard = resp.next_id(), self.envelope.id, resp.guard
        # The common small reply: no Envelope, no placement (sealed whole, with a guard).
        data = common_frame(kind, resp.name, ident, value, survey, None,
                            limit=GAP_MIN if inline else resp._placed_limit,
                            max_size=resp.max_message_size if guard is None else
                            resp.max_message_size - guard.overhead)  # fmt: skip
        if data is not None:
            if guard is not None:
                data = guard.seal(data, kind)
            ctx, self._ctx = self._ctx, None
            await resp._send_reply(ctx, data, self.envelope.deadline, survey)
            return
        envelope = Envelope(kind, resp.name, ident, value, survey)
        placement = None if inline else resp._placement(1)
        data = resp._frame(envelope, placement)
        ctx, self._ctx = self._ctx, None
        with delivering(placement):
            await resp._send_reply(ctx, data, self.envelope.deadline, survey)

    def reply_threadsafe(self, value: Any, *, kind: str, ident: int,
                         inline: bool = False) -> int | Callable[[], int] | None:  # fmt: skip
        """:meth:`reply` from a thread that is not trio's (a plain handler's), for a small
        plain ``value``: encodes it and hands it to NNG on this survey's context, without
        waiting. Returns the frame's size when it left at once (the connection was free); a
        function that waits, in the calling thread (never trio's), until it has left and then
        returns its size, when it is queued behind an earlier reply; or None when it cannot go
        this way (a guard seals frames; the value needs shared memory, splicing or the
        general encoder): :meth:`reply` sends it then.

        ``ident``: the reply's envelope id, taken with :meth:`Respondent.next_id` in trio's
        thread. Counts nothing and keeps the context: trio calls :meth:`settle_threadsafe`
        afterwards. The caller sees to it that trio neither answers nor declines this survey
        meanwhile. Raises (also the waiting function) :class:`Closed` (the socket closed),
        :class:`MessageTooLarge` and :class:`~patterns.Timeout` (the connection stayed busy)."""
        resp, ctx = self._respondent, self._ctx
        operation = f"reply to survey {self.envelope.id} from a handler thread"
        if ctx is None or resp._closed:
            raise Closed(f"{operation}: {self!r} was answered, or its socket closed")
        if resp.guard is not None:
            return None  # a guard's sequence is not thread-safe
        # Bodies holding a buffer this large may go to shared memory: the general path's.
        limit = GAP_MIN if inline or resp._beacons is None else min(GAP_MIN, resp.shared_memory.threshold)
        data = common_frame(kind, resp.name, ident, value, self.envelope.id, None, limit=limit,
                            max_size=resp.max_message_size)  # fmt: skip
        if data is None:
            return None
        wall = self.envelope.deadline  # trio's clock is not this thread's to read
        left = 0.0 if wall is None else max(wall - time.time(), 0.0)
        aio = submit_threadsafe(ctx, data, round(1000 * (left + QUEUED_REPLY_TIMEOUT)), operation, resp)
        size = len(data)
        if not lib.nng_aio_busy(aio):  # NNG wrote it in this call
            err = result_and_free(aio)
            if err:
                raise_for(err, operation=operation, where=resp)
            return size

        def wait() -> int:
            err = wait_and_free(aio)
            if err:
                raise_for(err, operation=operation, where=resp)
            return size

        return wait

    def settle_threadsafe(self, size: int | None) -> None:
        """After :meth:`reply_threadsafe` (trio's thread): the context goes back to the pool
        and a reply of ``size`` bytes is counted (None: nothing went out)."""
        resp = self._respondent
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            resp._release(ctx)
        if size is not None:
            resp._sent += 1
            resp._bytes_sent += size

    def decline(self) -> None:
        """Do not answer (the surveyor sees no reply from us)."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            self._respondent._release(ctx)

    def release_elsewhere(self) -> None:
        """After :meth:`reply_threadsafe`, or to decline, from the thread that took this
        survey with a :class:`SurveyTaker`: its context back to the pool, nothing counted
        (the taker's owner counts sends with :meth:`Respondent.count_sent`; :mod:`patterns._taker`)."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            self._respondent._release(ctx)  # one list append: atomic under the GIL


class Respondent(FdSocket):
    """A respondent0 socket: receives surveys; each can be answered in any order."""

    _protocol = "Respondent0"
    _spare_aio: Any = None  # the aio of a reply sent at once, for the next reply to reuse

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
        try:
            envelope = self._unpack(body)  # (a small common frame: decode's fast path)
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
            await trio.lowlevel.checkpoint_if_cancelled()
            survey = self._try_receive("receive()")
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
            aio = self._submit(ctx, data, round(1000 * (left + QUEUED_REPLY_TIMEOUT)), survey)
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

    def _submit(self, ctx: Any, data: bytes, timeout_ms: int, survey: int) -> Any:
        """Hand ``data`` to NNG on ``ctx`` with a callback-less aio; returns the aio.
        When the connection is free NNG writes the frame in this call."""
        if self._closed:
            self._require_open(f"reply to survey {survey}")
        aio, self._spare_aio = self._spare_aio, None
        if aio is None:
            err = lib.nng_aio_alloc(self._aio_out, _NULL, _NULL)
            if err:
                raise_for(err, operation=f"reply to survey {survey}", where=self)
            aio = self._aio_out[0]
        err = lib.nng_msg_alloc(self._msg_out, len(data))
        if err:
            lib.nng_aio_free(aio)
            raise_for(err, operation=f"reply to survey {survey}", where=self)
        msg = self._msg_out[0]
        ffi.memmove(lib.nng_msg_body(msg), data, len(data))
        lib.nng_aio_set_msg(aio, msg)
        lib.nng_aio_set_timeout(aio, timeout_ms)
        lib.nng_ctx_send(ctx, aio)
        return aio
