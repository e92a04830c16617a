"""What every reader of a member's surveys outside trio shares (docs/asyncio.md §4.6, §4.7).

A member's respondent may be lent to another thread before trio ever reads it: an asyncio
loop (:class:`~consensus.room.loop_surveys.LoopSurveys`) or a reader thread of
``consensus.blocking`` (:class:`~consensus.room.thread_surveys.ThreadSurveys`). Either
takes the surveys itself (:class:`patterns.SurveyTaker`, at most :data:`DRAIN` per
wake-up; read into fields as trio's receive reads them: the host's polls from their
shape), answers a welcomed member's polls and votes start to end (a frozen
:class:`~consensus.room.member_surveys.ReplyTicket`, the reply sent from its own thread
with :meth:`patterns.IncomingSurvey.reply_threadsafe`, a poll's answer written from its
shape, the handler's deadline kept on its
own clock: exactly one answer, the handler's or ``Timeout``) and hands everything else to
trio in order, where the :class:`~consensus.room.answering.Answerer` receives it as if it
had read it itself (what it hands over: :mod:`consensus.room.lent_items`).
:class:`LentSurveys` is that part, whatever the driver; a driver says
how a handler starts (:meth:`LentSurveys._start`), how a deadline is waited for
(:meth:`LentSurveys._arm`) and how a late handler is told (:meth:`LentSurveys._cancel`).

Thread safety:

* The reading thread alone: the socket's receiving side (trio never receives on a lent
  respondent), the deadline heap (``_due``).
* Behind :attr:`LentSurveys._lock`: who answers a survey (``_pending``: the handler's
  thread and the deadline's claim it by taking it out), the books of replies sent from
  here, the frames waiting for trio and whether a hand-over is on its way.
* Trio's thread alone: the protocol's books (counts come over in :meth:`settle`) and the
  socket's send counters (:meth:`patterns.Respondent.count_sent`).
* Read across threads, written by trio alone: the membership's state
  (``MemberProtocol.state``); a survey read just as it changes is answered as trio would
  have answered it had it read it a moment earlier.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import trio

from consensus.failure import Failure
from consensus.room import protocol as P
from consensus.room.lent_items import GIVE_BACK, Adopted, Item, Pending
from consensus.room.member_protocol import MemberProtocol
from consensus.room.member_surveys import ReplyTicket
from consensus.runtime.context import HandlerContext, Kind, set_current
from consensus.runtime.handback import ignore_outcome
from consensus.runtime.handlers import trio_deadline
from patterns import HOLE, Closed, IncomingSurvey, MessageTooLarge, Respondent, Shape, SurveyTaker

__all__ = ["BACKLOG", "DRAIN", "LentSurveys", "expect_polls"]

log = logging.getLogger("consensus.room")

DRAIN: Final = 64  # surveys taken per wake-up at most: a flooding host must not starve the reader
BACKLOG: Final = 256
"""Surveys handed to trio that its receive loop has not taken yet: past this many the
reader stops reading until trio caught up (as ``consensus.hotline.foreign.BACKLOG``), so
NNG's own queue, bounded, holds the rest instead of memory."""
MAX_ASKERS: Final = 8  # handler contexts kept per reader (the askers are the room's hosts: one, or a few)


def expect_polls(respondent: Respondent, host: str) -> None:
    """``respondent`` reads the polls of ``host`` from their shape from now on (trio's
    Answerer and the lent readers alike; either writes one whole tuple)."""
    try:
        shape = respondent.shape(P.POLL, re=False, deadline=True, body=P.poll_body(HOLE), sender=host,
                                 scalars=True)  # fmt: skip
    except ValueError:  # a name with no common form: the common reader reads them
        respondent.expect()
    else:
        respondent.expect(shape)


class LentSurveys:
    """One member's respondent read outside trio: the driver-agnostic part."""

    plain = False  # the handlers are plain functions: one that returns an awaitable has trio await it

    def __init__(self, respondent: Respondent, protocol: MemberProtocol, names: dict[str, str], *,
                 handler_timeout: float | None, into_trio: Callable[[list[Item]], None]) -> None:  # fmt: skip
        """``names``: the handlers' names (for the Timeout error and the logs) by the survey
        kinds answered here (``"poll"``, ``"vote"``); ``into_trio(items)`` (trio's thread)
        receives what is handed over, in order."""
        self._respondent = respondent
        self._taker = SurveyTaker(respondent)
        self._protocol = protocol
        self._here = frozenset(names)
        self._names = names
        self._handler_timeout = handler_timeout
        self._into_trio = into_trio
        self._token = trio.lowlevel.current_trio_token()
        self._keys = itertools.count(-1, -1)  # never one of the Answerer's (they count up from 1)
        self._lock = threading.Lock()
        self._pending: dict[int, Pending] = {}  # behind the lock
        # The reader's: the handlers' deadlines (its clock, key), waited for at the earliest.
        self._due: list[tuple[float, int]] = []
        self._for_trio: list[Item] = []  # behind the lock
        self._scheduled = False  # behind the lock: a hand-over to trio is on its way
        self._sent = self._bytes = 0  # behind the lock: replies sent from here, not settled yet
        self._counts: dict[str, int] = {}  # behind the lock: the protocol's counters, likewise
        self.late = 0  # behind the lock: answers that came after their Timeout, dropped
        self.stopped = False  # the reader's to write: it no longer reads (trio may read it)
        self.pausing = False  # trio's: it asked the reader to stop reading (the backlog)
        self.pauses = 0  # trio's: times the backlog stopped the reading
        self._contexts: dict[tuple[Kind, str], HandlerContext] = {}  # the reader's: one object per kind and asker
        # As trio's Answerer: a poll's answer written from its shape, the host's polls read
        # from theirs (the taker reads the respondent's expected shapes) once one came.
        try:
            self._answer_shape: Shape | None = respondent.shape(P.ANSWER, re=True, deadline=False,
                                                                body=P.answer_body(HOLE), scalars=True)  # fmt: skip
        except ValueError:  # a name with no common form: the common writer
            self._answer_shape = None
        self._host = ""  # the reader's: the sender of the polls the respondent expects

    # ------------------------------------------------------------------ the driver's part
    def _clock(self) -> float:
        """The reader's clock, in seconds (deadlines in ``_due`` are on it)."""
        return time.monotonic()

    def _start(self, survey: IncomingSurvey, ticket: ReplyTicket, job: Pending) -> None:
        """Start the handler of ``job`` (the reader's thread); it ends with :meth:`_done`."""
        raise NotImplementedError

    def _arm(self, at: float) -> None:
        """Make the reader call :meth:`_expire_due` at ``at`` (its clock), or earlier."""

    def _cancel(self, job: Pending) -> None:
        """``job`` missed its deadline and was answered Timeout: tell its handler if it can be told."""

    def stop(self) -> None:
        """Stop reading; the reader's thread (the driver does the rest)."""
        self.stopped = True
        with self._lock:
            pending, self._pending = self._pending, {}
        self._due.clear()
        for job in pending.values():
            self._cancel(job)
            job.survey.release_elsewhere()

    # ------------------------------------------------------------------ trio's side
    def settle(self) -> None:
        """The books of replies sent from here, into the socket's and the protocol's (trio's thread)."""
        with self._lock:
            sent, size, counts = self._sent, self._bytes, self._counts
            if not sent and not counts:
                return
            self._sent = self._bytes = 0
            self._counts = {}
        self._respondent.count_sent(sent, size)
        self._protocol.count_elsewhere(counts)

    def pause(self) -> None:
        """Trio holds :data:`BACKLOG` surveys not received yet: stop reading until it took
        them all (trio's thread)."""
        self.pausing = True
        self.pauses += 1
        self._watch(False)

    def resume(self) -> None:
        """Trio took every survey handed over: read again (trio's thread)."""
        self.pausing = False
        self._watch(True)

    def _watch(self, on: bool) -> None:
        """Have the reader watch the descriptor again, or stop watching it (trio's thread)."""
        raise NotImplementedError

    def _hand_over(self) -> None:
        with self._lock:
            items, self._for_trio = self._for_trio, []
            self._scheduled = False
        self.settle()
        self._into_trio(items)

    # ------------------------------------------------------------------ the reader's side
    def drain(self) -> None:
        """NNG has surveys queued: take them (up to :data:`DRAIN`), start ours, hand the rest to trio."""
        taker, protocol, here = self._taker, self._protocol, self._here
        for_trio: list[Item] = []
        for _ in range(DRAIN):
            try:
                got = taker.take()
            except Closed:  # the socket closed under the reader
                self.stop()
                break
            except Exception:  # NNG's failure (out of memory...): trio's reader takes over, in order
                log.exception("member %r: its surveys are read by trio again", protocol.name)
                self.stop()
                for_trio.append(GIVE_BACK)
                break
            if got is None:
                break
            if type(got) is IncomingSurvey:
                if got.sender != self._host and got.kind == P.POLL:
                    self._expect(got.sender)
                ticket = protocol.ticket_elsewhere(next(self._keys), got.kind, got.body, here)
                if ticket is not None:
                    self._begin(got, ticket)
                    continue
            for_trio.append(got)
        if for_trio:
            self._to_trio(for_trio)

    def _expect(self, host: str) -> None:
        """Read the polls of ``host`` from their shape (the reader's thread; trio's Answerer
        does the same for the surveys it receives: either writes one whole tuple)."""
        expect_polls(self._respondent, host)
        self._host = host

    def give_back(self) -> None:
        """The reader failed: stop reading and let trio read the socket again, after what
        it was handed before (the reader's thread)."""
        self.stop()
        self._to_trio([GIVE_BACK])

    def _to_trio(self, items: list[Item]) -> None:
        with self._lock:
            self._for_trio += items
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            try:
                self._token.run_sync_soon(self._hand_over)
            except trio.RunFinishedError:  # trio's thread ended: the membership is gone
                self.stop()

    def _begin(self, survey: IncomingSurvey, ticket: ReplyTicket) -> None:
        job = Pending(survey, ticket, self._respondent.next_id(), self._names[ticket.survey.kind])
        key = ticket.key
        with self._lock:
            self._pending[key] = job
        now = time.time()  # the survey's deadline travels on the wall clock
        deadline = trio_deadline(survey.wall, limit=self._handler_timeout, now=now)
        if deadline < math.inf:
            self._forget_answered()
            at = self._clock() + (deadline - now)
            heapq.heappush(self._due, (at, key))
            if self._due[0][1] == key:
                self._arm(at)
        self._start(survey, ticket, job)

    def call_of(self, kind: Kind, survey: IncomingSurvey,
                ticket: ReplyTicket) -> tuple[tuple[Any, ...], contextvars.Context]:  # fmt: skip
        """The handler's arguments for ``ticket``'s survey, and the context it runs in: a copy
        of the reader's that says who asks (each handler its own, as on trio's path)."""
        question = ticket.survey
        args = (question.question,) if question.kind == P.POLL else (question.motion, question.options)
        context = contextvars.copy_context()
        context.run(set_current, self.context(kind, survey.sender))
        return args, context

    def context(self, kind: Kind, asker: str) -> HandlerContext:
        """What :func:`consensus.handler_context` says while a ``kind`` handler answers ``asker``
        (the reader's thread; one object each, as the Answerer's plans keep them)."""
        key = (kind, asker)
        found = self._contexts.get(key)
        if found is None:
            if len(self._contexts) >= MAX_ASKERS:
                self._contexts.clear()
            found = self._contexts[key] = HandlerContext(kind, asker)
        return found

    def next_due(self) -> float:
        """When :meth:`_expire_due` should run next (the reader's clock; inf: never)."""
        return self._due[0][0] if self._due else math.inf

    def _expire_due(self) -> None:
        """The earliest deadline came: the handlers past theirs are answered ``Timeout``."""
        due, pending = self._due, self._pending
        now = self._clock() + 0.001  # a timer may fire a hair early
        while due and due[0][0] <= now:
            key = heapq.heappop(due)[1]
            with self._lock:
                job = pending.pop(key, None)
            if job is not None:
                job.timed_out = True
                self._cancel(job)
                failure = Failure("Timeout", f"handler {job.name} did not finish before the deadline")
                self._reply(job, (False, failure))
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

    # ------------------------------------------------------------------ the handler's side
    def _done(self, job: Pending, ok: bool, result: Any) -> None:
        """The handler ended (any thread): reply, unless its deadline or the end came first."""
        with self._lock:
            mine = self._pending.pop(job.ticket.key, None) is not None
            late = not mine and job.timed_out and ok
            self.late += late
        if late:
            log.info("handler %s answered after its deadline: dropped", job.name)
        if not mine:
            return
        if not ok:
            log.info("handler %s failed: %r", job.name, result)
            result = Failure.from_exception(result)
        elif self.plain and hasattr(result, "__await__"):  # a plain function that returned a coroutine: trio awaits it
            self._to_trio([Adopted(job.survey, job.ticket, (True, result), awaits=True)])
            return
        self._reply(job, (ok, result))

    def _reply(self, job: Pending, outcome: tuple[bool, Any]) -> None:
        ticket, survey = job.ticket, job.survey
        shape = self._answer_shape
        if outcome[0] and shape is not None and ticket.survey.kind == P.POLL:  # a poll's answer: its shape's hole
            kind, body, inline, counter = P.ANSWER, None, ticket.inline, "polls_answered"
        else:
            frame, counter = ticket.reply(outcome)
            kind, body, inline, shape = frame.kind, frame.body, frame.inline, None
        sent: int | Callable[[], int] | None = None
        with self._lock:  # booked in the send's critical section: trio's settle() sees every reply out
            try:
                sent = survey.reply_threadsafe(body, kind=kind, ident=job.ident, inline=inline, shape=shape,
                                               hole=outcome[1])  # fmt: skip
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
        else:  # queued behind an earlier reply on its connection: a thread waits, not the reader
            waiting = sent
            trio.lowlevel.start_thread_soon(lambda: self._wait(job, waiting, counter), ignore_outcome)

    def _wait(self, job: Pending, waiting: Callable[[], int], counter: str) -> None:
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

    def _lost_locked(self, job: Pending, exc: Exception) -> None:
        job.survey.release_elsewhere()
        log.warning("member %r could not send its reply to a %r: %s", self._protocol.name,
                    job.survey.kind, exc)  # fmt: skip
        self._counts["replies_lost"] = self._counts.get("replies_lost", 0) + 1
