"""A member's surveys read on the caller's asyncio loop (docs/asyncio.md §4.6).

Through ``consensus.aio`` a member's asyncio ``on_poll``/``on_vote`` ran on the caller's loop,
but trio read each survey, parsed it, froze its ticket and handed it over (the members'
side of a poll: two phases on two threads that the GIL keeps from overlapping). With
:class:`LoopSurveys` the loop reads the member's respondent itself, as
:class:`~consensus.hotline.foreign.ForeignReader` reads a line: ``loop.add_reader`` on NNG's
receive descriptor, non-blocking receives (:class:`patterns.SurveyTaker`, with buffers of its
own), at most :data:`DRAIN` surveys per wake-up. A poll or a vote of a kind whose handler
lives on this loop, once the member is welcomed (:meth:`MemberProtocol.ticket_elsewhere
<consensus.room.member_protocol.MemberProtocol.ticket_elsewhere>` decides, purely), is
answered here start to end: its handler starts as a task of the loop, the reply is built
from the frozen ticket and sent from the loop's thread
(:meth:`patterns.IncomingSurvey.reply_threadsafe`), and the handler's deadline is kept by
one ``loop.call_at`` timer (at the earliest pending deadline): whichever of the handler and
its deadline comes first answers, once (both run on the loop). Everything else (surveys
before the welcome, deliberations, observers, malformed frames, frames referring to shared
memory, incomplete bodies) is handed to trio in order, one ``run_sync_soon`` per wake-up, where the
:class:`~consensus.room.answering.Answerer` receives it as if it had read it itself.

Thread safety:

* The loop's thread alone: the socket's receiving side (trio never receives on a lent
  respondent: it alone opens contexts and writes the receive counters), the handler tasks
  and their deadlines (:attr:`LoopSurveys._pending`, ``_due``).
* Trio's thread alone: the protocol's books (counts come over in :meth:`settle`) and the
  socket's send counters (:meth:`patterns.Respondent.count_sent`).
* Behind :attr:`LoopSurveys._lock`: the books of replies sent from here, the frames waiting
  for trio and whether a hand-over is on its way.
* Read across threads, written by trio alone: the membership's state
  (``MemberProtocol.state``, one attribute); a survey read just as it changes is answered
  as trio would have answered it had it read it a moment earlier.
* Contexts go back to the pool from either thread (a list append, atomic under the GIL);
  only the loop takes them.

Sealed rooms keep the trio path (a guard's sequence is trio's alone), as do handlers that
are plain functions or live on another loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from consensus.failure import Failure
from consensus.room import protocol as P
from consensus.room.member_protocol import MemberProtocol
from consensus.room.member_surveys import ReplyTicket
from consensus.runtime.context import HandlerContext, Kind, set_current
from consensus.runtime.handback import ignore_outcome
from consensus.runtime.handlers import trio_deadline
from patterns import Closed, IncomingSurvey, MessageTooLarge, Respondent, SurveyTaker, Taken

__all__ = ["DRAIN", "GIVE_BACK", "READ_ON", "Adopted", "GiveBack", "HereHandler", "Item", "LoopSurveys", "OnThisLoop"]

log = logging.getLogger("consensus.room")

DRAIN: Final = 64  # surveys taken per wake-up at most: a flooding host must not starve the loop

READ_ON: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar("consensus_read_surveys_on", default=None)
"""Set by ``consensus.aio.join`` around opening a member: the loop that may read its surveys."""


class HereHandler(Protocol):
    """An asyncio handler that can be started from its loop's thread (the bridge's ``OnLoop``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def start_here(self, args: tuple[Any, ...], context: contextvars.Context,
                   done: Callable[[bool, Any], None]) -> asyncio.Task[Any] | None: ...  # fmt: skip


@dataclass(frozen=True, slots=True)
class OnThisLoop:
    """A poll or vote handler the loop runs itself."""

    handler: HereHandler
    kind: Kind
    name: str  # for the Timeout error and the logs


@dataclass(frozen=True, slots=True)
class Adopted:
    """A survey answered on the loop whose reply only trio can send (too large, say)."""

    survey: IncomingSurvey
    ticket: ReplyTicket
    outcome: tuple[bool, Any]


class GiveBack:
    """The loop stopped reading for good (NNG failed under it): trio reads from now on."""


GIVE_BACK: Final = GiveBack()

Item = IncomingSurvey | Taken | Adopted | GiveBack  # what the loop hands to trio, in order


class _Pending:
    """A survey whose handler runs on the loop (the loop's thread only)."""

    __slots__ = ("ident", "name", "survey", "task", "ticket")

    def __init__(self, survey: IncomingSurvey, ticket: ReplyTicket, ident: int, name: str) -> None:
        self.survey = survey
        self.ticket = ticket
        self.ident = ident  # the reply's envelope id
        self.name = name
        self.task: asyncio.Task[Any] | None = None


class LoopSurveys:
    """One member's respondent read on one asyncio loop; made in trio by
    :meth:`Answerer.lend <consensus.room.answering.Answerer.lend>`, started and stopped on the loop."""

    def __init__(self, respondent: Respondent, protocol: MemberProtocol, handlers: dict[str, OnThisLoop],
                 loop: asyncio.AbstractEventLoop, *, handler_timeout: float | None,
                 into_trio: Callable[[list[Item]], None]) -> None:  # fmt: skip
        """``handlers``: by survey kind (``"poll"``, ``"vote"``); ``into_trio(items)`` (trio's
        thread) receives what the loop hands over, in order."""
        self.loop = loop
        self._respondent = respondent
        self._taker = SurveyTaker(respondent)
        self._protocol = protocol
        self._handlers = handlers
        self._here = frozenset(handlers)
        self._handler_timeout = handler_timeout
        self._into_trio = into_trio
        self._token = trio.lowlevel.current_trio_token()
        self._keys = itertools.count(-1, -1)  # never one of the Answerer's (they count up from 1)
        self._pending: dict[int, _Pending] = {}  # the loop's
        # The loop's: the handlers' deadlines (loop.time(), key), one timer for the earliest:
        # a TimerHandle per survey costs more than the rest of its bookkeeping.
        self._due: list[tuple[float, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._fd: int | None = None  # the loop's: watched while not None
        self._lock = threading.Lock()
        self._for_trio: list[Item] = []  # behind the lock
        self._scheduled = False  # behind the lock: a hand-over to trio is on its way
        self._sent = self._bytes = 0  # behind the lock: replies sent from here, not settled yet
        self._counts: dict[str, int] = {}  # behind the lock: the protocol's counters, likewise
        self.stopped = False  # the loop's to write: it no longer reads (trio may read it)

    # ------------------------------------------------------------------ trio's side
    def settle(self) -> None:
        """The books of replies sent from the loop, into the socket's and the protocol's (trio's thread)."""
        with self._lock:
            sent, size, counts = self._sent, self._bytes, self._counts
            if not sent and not counts:
                return
            self._sent = self._bytes = 0
            self._counts = {}
        self._respondent.count_sent(sent, size)
        self._protocol.count_elsewhere(counts)

    def _hand_over(self) -> None:
        with self._lock:
            items, self._for_trio = self._for_trio, []
            self._scheduled = False
        self.settle()
        self._into_trio(items)

    async def aclose(self) -> None:
        """Make the loop stop reading (trio's thread, before the socket closes); waits for
        it a second at most (a loop that is stuck or gone cannot be waited for)."""
        if self.stopped:
            return
        done = trio.Event()
        token = self._token

        def stop_and_tell() -> None:  # on the loop
            self.stop()
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        try:
            self.loop.call_soon_threadsafe(stop_and_tell)
        except RuntimeError:  # the loop is closed: nothing reads any more
            return
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await done.wait()

    # ------------------------------------------------------------------ the loop's side
    def start(self) -> None:
        """Watch the respondent on this loop (the loop's thread)."""
        if self.stopped or self._fd is not None:
            return
        try:
            self._fd = self._respondent.receive_descriptor
        except Closed:
            self.stopped = True
            return
        self.loop.add_reader(self._fd, self._readable)

    def stop(self) -> None:
        """Stop reading (the loop's thread, before the socket closes): the handlers still
        running are cancelled and their surveys declined (the host hears nothing, as when
        trio's path ends a membership)."""
        self.stopped = True
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self._fd = None
        pending, self._pending = self._pending, {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        self._due.clear()
        for job in pending.values():
            if job.task is not None:
                job.task.cancel()
            job.survey.release_elsewhere()

    def _readable(self) -> None:
        """NNG has surveys queued: take them (up to :data:`DRAIN`), answer ours, hand the rest to trio."""
        taker, protocol, here = self._taker, self._protocol, self._here
        for_trio: list[Item] = []
        for _ in range(DRAIN):
            try:
                got = taker.take()
            except Closed:  # the socket closed under this loop
                self.stop()
                break
            except Exception:  # NNG's failure (out of memory...): trio's reader takes over, in order
                log.exception("member %r: its surveys are read by trio again", self._protocol.name)
                self.stop()
                for_trio.append(GIVE_BACK)
                break
            if got is None:
                break
            if type(got) is IncomingSurvey:
                ticket = protocol.ticket_elsewhere(next(self._keys), got.envelope, here)
                if ticket is not None:
                    self._start(got, ticket)
                    continue
            for_trio.append(got)
        if for_trio:
            self._to_trio(for_trio)

    def _to_trio(self, items: list[Item]) -> None:
        with self._lock:
            self._for_trio += items
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            try:
                self._token.run_sync_soon(self._hand_over)
            except trio.RunFinishedError:  # trio's thread ended: the membership is gone
                self.stop()

    def _start(self, survey: IncomingSurvey, ticket: ReplyTicket) -> None:
        """Run the survey's handler as a task of the loop, under its deadline."""
        on = self._handlers[ticket.survey.kind]
        job = _Pending(survey, ticket, self._respondent.next_id(), on.name)
        self._pending[ticket.key] = job
        question = ticket.survey
        args = (question.question,) if question.kind == P.POLL else (question.motion, question.options)
        context = contextvars.copy_context()  # as trio's path: each handler its own copy
        context.run(set_current, HandlerContext(on.kind, survey.envelope.sender))
        job.task = on.handler.start_here(args, context, lambda ok, result: self._done(job, ok, result))
        now = time.time()  # the survey's deadline travels on the wall clock
        deadline = trio_deadline(survey.envelope.deadline, limit=self._handler_timeout, now=now)
        if deadline < math.inf and ticket.key in self._pending:
            at = self.loop.time() + (deadline - now)
            heapq.heappush(self._due, (at, ticket.key))
            if at < self._timer_at:
                self._arm(at)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(at, self._expire_due), at

    def _expire_due(self) -> None:
        """The earliest deadline came: the handlers past theirs are answered ``Timeout``."""
        self._timer, self._timer_at = None, math.inf
        due, pending = self._due, self._pending
        now = self.loop.time() + 0.001  # asyncio may run a timer a hair early
        while due and due[0][0] <= now:
            job = pending.get(heapq.heappop(due)[1])
            if job is not None:
                self._expire(job)
        self._forget_answered()
        if due:
            self._arm(due[0][0])

    def _forget_answered(self) -> None:
        """Deadlines of surveys answered meanwhile: off the top of the heap, and the whole
        heap rebuilt once they are most of it (amortised O(1) each)."""
        due, pending = self._due, self._pending
        while due and due[0][1] not in pending:
            heapq.heappop(due)
        if len(due) > 2 * len(pending) + 8:
            self._due = [entry for entry in due if entry[1] in pending]
            heapq.heapify(self._due)

    def _done(self, job: _Pending, ok: bool, result: Any) -> None:
        """The handler ended (on the loop): reply, unless its deadline or the end came first."""
        if self._pending.pop(job.ticket.key, None) is None:
            return
        self._forget_answered()
        if not ok:
            log.info("handler %s failed: %r", job.name, result)
            result = Failure.from_exception(result)
        self._reply(job, (ok, result))

    def _expire(self, job: _Pending) -> None:
        """The handler missed its deadline: the host hears ``Timeout``; the task is cancelled."""
        if self._pending.pop(job.ticket.key, None) is None:
            return
        if job.task is not None:
            job.task.cancel()
        self._reply(job, (False, Failure("Timeout", f"handler {job.name} did not finish before the deadline")))

    def _reply(self, job: _Pending, outcome: tuple[bool, Any]) -> None:
        frame, counter = job.ticket.reply(outcome)
        survey = job.survey
        sent: int | Callable[[], int] | None = None
        with self._lock:  # booked in the send's critical section: trio's settle() sees every reply out
            try:
                sent = survey.reply_threadsafe(frame.body, kind=frame.kind, ident=job.ident, inline=frame.inline)
            except Closed:  # the membership is ending: nobody hears it
                survey.release_elsewhere()
                return
            except MessageTooLarge:  # trio's path answers with the error
                sent = None
            except Exception as exc:  # noqa: BLE001 - NNG gave up (a connection busy past the deadline): lost
                self._lost_locked(job, exc)
                return
            if isinstance(sent, int):
                survey.release_elsewhere()
                self._book_locked(counter, sent)
                return
        if sent is None:  # no small plain frame: trio sends it, books it as its own
            self._to_trio([Adopted(survey, job.ticket, outcome)])
        else:  # queued behind an earlier reply on its connection: a thread waits, not the loop
            waiting = sent
            trio.lowlevel.start_thread_soon(lambda: self._wait(job, waiting, counter), ignore_outcome)

    def _wait(self, job: _Pending, waiting: Callable[[], int], counter: str) -> None:
        try:
            size = waiting()
        except Closed:
            job.survey.release_elsewhere()
            return
        except Exception as exc:  # noqa: BLE001 - the connection stayed busy past the deadline
            with self._lock:
                self._lost_locked(job, exc)
            return
        job.survey.release_elsewhere()
        with self._lock:
            self._book_locked(counter, size)

    def _book_locked(self, counter: str, size: int) -> None:
        self._sent += 1
        self._bytes += size
        self._counts[counter] = self._counts.get(counter, 0) + 1

    def _lost_locked(self, job: _Pending, exc: Exception) -> None:
        job.survey.release_elsewhere()
        log.warning("member %r could not send its reply to a %r: %s", self._protocol.name,
                    job.survey.envelope.kind, exc)  # fmt: skip
        self._counts["replies_lost"] = self._counts.get("replies_lost", 0) + 1
