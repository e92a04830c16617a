"""The roles of the threads that read a lent line and serve its plain ``on_ask``
(:mod:`consensus.hotline.thread_serve`; docs/asyncio.md §4.10): leader/followers with a watch.

* The **leader** reads the line (:class:`~consensus.hotline.serve_reading.ReadingCrew`,
  which extends :class:`Crew`: how it polls and what goes where). An ask for the handler it
  runs itself (:meth:`ThreadAnswers.serve <consensus.hotline.threaded.ThreadAnswers.serve>`),
  then reads on (:meth:`Crew._take` decides who runs an ask, :meth:`Crew._after` what a
  thread does once its handler returned).
* The **watch** (an idle thread, :class:`~consensus.runtime.watch.Watch`) looks every
  :data:`PATIENCE` while handlers run inline and takes the leadership from a leader whose
  handler ran through a whole period; it sleeps untimed after a period with no handler. A
  handler asking on its own line hands the leadership on at once (:meth:`Crew.ask`).
  :data:`INLINE` False hands it to a follower before every handler instead (measured slower).
* **Followers** wait on their own lock to be promoted, made the watch, or ended.
* At most ``handler_threads`` handlers run and ``handler_threads + 1`` threads exist; an ask
  taken while every handler thread is busy waits in a queue the next thread to finish takes
  from; while :data:`QUEUE` wait the leader does not read (:attr:`Crew.stalls`). A trio
  line's crew (``refuses``) answers it ``Busy`` at once instead, as trio's path does.
* A thread that fails (a bug of ours) gives the line back to trio with what the crew held.

Thread safety: the leader alone receives from the socket and polls; leadership, the roles,
the queue and the counts change under the ``AskBook``'s lock (``_batch`` is the leader's
alone); a leader deposed while its handler runs never polls again before it is promoted
anew; each thread is woken through its own lock, released once per wake (``Hand.poke``).
"""

from __future__ import annotations

import contextvars
import enum
import logging
import os
import select
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from consensus.hotline.line import Hotline
from consensus.hotline.thread_asks import CLOSE_WAIT, Baton, ThreadAsks
from consensus.hotline.threaded import ThreadAnswers, Ticket
from consensus.runtime.watch import PATIENCE, Hand, Watch
from patterns import Fields

__all__ = ["INLINE", "PATIENCE", "QUEUE", "SETTLE_EVERY", "Crew", "Job", "Next"]

log = logging.getLogger("consensus.hotline")

QUEUE: Final = 256  # asks taken while every handler runs; past it the leader stops reading
SETTLE_EVERY: Final = 256  # answers sent here between two settlements in trio (bounds the records)
INLINE = True
"""True (kept, docs/asyncio.md §4.10): the leader runs a handler without handing the reading
on; a *watch* (an idle thread armed for it) takes the line when one handler has run through a
whole :data:`PATIENCE`. False: the leadership passes to a follower before every handler."""


@dataclass(frozen=True, slots=True)
class Job:
    """An ask taken off the line for the handler."""

    ticket: Ticket
    value: Any
    got: tuple[Fields, int]  # the frame, for trio should the threads fail


class Next(enum.Enum):
    """What a crew thread does next (or a :class:`Job`: run that handler)."""

    LEAD = "lead"
    WAIT = "wait"
    WATCH = "watch"
    STOP = "stop"


class Crew(ThreadAsks):
    """The threads that read a lent line and serve its plain ``on_ask``: who reads, who runs a
    handler, who watches (the roles); :class:`~consensus.hotline.serve_reading.ReadingCrew`
    adds how the leader reads, :class:`~consensus.hotline.thread_serve.ThreadServer` the
    line's side (closing, trio's backlog, joining)."""

    def __init__(self, line: Hotline, answers: ThreadAnswers, handler_threads: int, *, refuses: bool = False) -> None:
        super().__init__(line)
        self._refuses = refuses  # every handler thread busy: answer Busy (else queue the ask)
        self.baton = Baton.SERVED
        self._answers = answers
        self._limit = handler_threads
        self._context = contextvars.copy_context()  # trio's, as its handler threads get it
        self._leader: Hand | None = None
        self._idle: list[Hand] = []
        self._hands: list[Hand] = []  # every thread started (for join)
        self._busy = 0  # threads running a handler
        self._queue: deque[Job] = deque()
        self._stalled = False  # QUEUE asks wait: the leader does not read
        self._recall = False  # trio asks: the leader gives the line to trio (ThreadServer.recall)
        self._trio_reads = False  # ... and trio reads it now: nobody here leads until relend
        self._answered = 0  # answers since trio last settled them
        self._batch: list[tuple[Fields, int]] = []  # the leader's: frames taken for trio
        self._poll_wake = select.poll()  # the leader's while it must not read (stalled, backlog)
        self._poll_wake.register(self._wake, select.POLLIN)
        self._watch = Watch()  # (INLINE) who takes the line from a slow handler, and when
        self.takeovers = 0  # (INLINE) times the watch took the line from a slow handler
        self.pauses = 0  # times trio's backlog stopped the reading (trio's)
        self.stalls = 0  # times QUEUE waiting asks stopped it

    @property
    def threads(self) -> int:
        """How many threads the crew has started."""
        return len(self._hands)

    # ------------------------------------------------------------------ trio's side
    def start(self) -> None:
        """Start the leader and one follower (trio's thread, right after :func:`serve`)."""
        with self._lock:
            first, spare = self._spawn_locked(), self._spawn_locked()
            self._leader = first
            first.poke()
            self._idle.append(spare)
        first.thread.start()
        spare.thread.start()

    # ------------------------------------------------------------------ the crew's side
    def _end_idle_locked(self) -> None:
        idle, self._idle = self._idle, []
        if (watch := self._watch.release()) is not None:
            idle.append(watch)
        for hand in idle:
            hand.poke()  # they end

    def _reading_locked(self) -> bool:
        """A leader polls the line, or may (not while it runs a handler inline: it polls no more
        once the line is closed or failed)."""
        return self._leader is not None and self._watch.inline is not self._leader

    def _spawn_locked(self) -> Hand:
        hand = Hand(self._main, f"hotline {self._name} server {len(self._hands)}")
        self._hands.append(hand)
        return hand

    def _main(self, hand: Hand) -> None:
        try:
            self._work_as(hand)
        except Exception:  # a bug of ours: the line must not go deaf for it
            log.exception("hotline %s: a serving thread failed: trio reads the line again", self._name)
            self._fail(hand)
        finally:
            self._leave(hand)  # (a leader that ends before it ever polled: closing waits for it)

    def _work_as(self, hand: Hand) -> None:
        nxt: Job | Next = Next.WAIT  # (a thread made to lead starts with its lock released)
        while True:
            if nxt is Next.WAIT:
                hand.wake.acquire()  # promoted, made the watch, or told to end
                with self._lock:
                    if self.baton is not Baton.SERVED:
                        nxt = Next.STOP
                    elif self._leader is hand:
                        nxt = Next.LEAD
                    elif self._watch.hand is hand:
                        nxt = Next.WATCH
                    elif hand in self._idle:
                        nxt = Next.WAIT  # a poke left over from an earlier role: still idle
                    else:
                        nxt = Next.STOP
            if nxt is Next.WATCH:
                nxt = self._keep_watch(hand)
            if nxt is Next.STOP:
                return
            if nxt is Next.LEAD:
                nxt = self._lead(hand)
                continue
            assert isinstance(nxt, Job)
            self._context.copy().run(self._answers.serve, nxt.ticket, nxt.value)
            nxt = self._after(hand)

    def _after(self, hand: Hand) -> Job | Next:
        """A handler returned: the next queued ask, or lead, or wait to be promoted, or end."""
        settle = False
        with self._lock:
            self._busy -= 1
            self._answered += 1
            if self._answered >= SETTLE_EVERY:  # the books of answers sent here: into trio now and then
                self._answered, settle = 0, True
            if self._watch.inline is hand:
                self._watch.inline = None
            nxt: Job | Next
            if self.baton is not Baton.SERVED:
                nxt = Next.STOP  # closed, or the crew failed (its queue went to trio)
            elif self._leader is hand:
                nxt = Next.LEAD  # (INLINE) nobody took the line meanwhile (nor queued asks)
            elif self._queue:
                nxt = self._queue.popleft()
                self._busy += 1
                if self._stalled and len(self._queue) < QUEUE:
                    self._stalled = False
                    os.eventfd_write(self._wake, 1)  # the leader reads again
            elif self._leader is None and not self._trio_reads:
                self._leader, nxt = hand, Next.LEAD
            elif INLINE and self._watch.hand is None:
                self._watch.arm(hand, wake=False)  # (this thread: it looks next)
                nxt = Next.WATCH
            else:
                self._idle.append(hand)
                nxt = Next.WAIT
        if settle:
            self._soon_in_trio(self._settle_answers)
        return nxt

    def _lead(self, hand: Hand) -> Job | Next:
        """(The leader.) Read the line until this thread is to run a handler (the Job), or
        stops leading: :class:`~consensus.hotline.serve_reading.ReadingCrew`'s."""
        raise NotImplementedError

    def _keep_watch(self, hand: Hand) -> Next:
        """(INLINE, the watch.) Look every :data:`PATIENCE` while handlers run inline; take
        the line (LEAD) from a leader whose handler ran a whole period; sleep while none runs."""
        watch = self._watch
        while True:
            poked = watch.look(hand)
            with self._lock:
                if self.baton is not Baton.SERVED:
                    return Next.STOP
                if self._leader is hand:  # (a handler asks on this line: _hand_on)
                    # Its poke may have come after a look that timed out: take it now, or this
                    # thread, once idle, would wake from it at once and end while listed idle.
                    hand.wake.acquire(blocking=False)
                    return Next.LEAD
                if watch.hand is not hand:
                    return Next.STOP
                if watch.overdue(poked) and not self._trio_reads:
                    watch.take_over()  # (the old leader learns it when its handler returns)
                    self._leader = hand
                    self.takeovers += 1
                    return Next.LEAD

    def ask(self, value: Any, timeout: float) -> Any:
        self._hand_on()
        return super().ask(value, timeout)

    def _hand_on(self) -> None:
        """(INLINE) A handler asks on its own line: its answer must not wait for the watch,
        so the leadership passes on now (to the watch, an idle thread or a new one)."""
        hand = self._watch.inline
        if hand is None or hand.thread is not threading.current_thread():
            return
        start: Hand | None = None
        with self._lock:
            if self._watch.inline is not hand or self._leader is not hand or self.baton is not Baton.SERVED:
                return
            self._watch.inline = None
            nxt = self._watch.release()
            if nxt is None:  # (the busy ones, this one among them, and no idle one: fewer than the bound)
                nxt = self._idle.pop() if self._idle else (start := self._spawn_locked())
            self._leader = nxt
            nxt.poke()
        if start is not None:
            start.thread.start()

    def _take(self, hand: Hand, job: Job) -> bool:
        """(The leader.) An ask for the handler: True when this thread runs it (the leadership
        passed on); False when it waits for a free handler thread (or was refused)."""
        start: Hand | None = None
        refused = settle = False
        with self._lock:
            tell = self._flush_locked()
            if self.baton is not Baton.SERVED:  # the crew failed meanwhile: trio serves it
                self._for_trio.append(job.got)
                mine = False
            elif self._refuses and self._busy + self._answers.running >= self._limit:  # (+ trio's, started
                # while it held the line for its asks: one bound for both)
                mine, refused = False, True
                self._answered += 1  # (its record waits for trio's settling, as an answer's)
                if self._answered >= SETTLE_EVERY:
                    self._answered, settle = 0, True
            elif self._busy >= self._limit:
                self._queue.append(job)
                if len(self._queue) >= QUEUE:
                    self._stalled = True
                    self.stalls += 1
                mine = False
            elif INLINE:
                mine = True
                self._busy += 1
                self._watch.inline = hand  # the leader keeps the line, unread while its handler runs
                self._watch.begun += 1
                spare = None
                if self._watch.hand is None:  # (after a takeover) an idle thread, or a new one, watches
                    spare = self._idle.pop() if self._idle else (start := self._spawn_locked())
                self._watch.arm(spare)
            else:
                mine = True
                self._busy += 1
                if self._idle:
                    self._leader = self._idle.pop()  # the last to go idle: the warmest
                    self._leader.poke()
                else:  # (fewer than handler_threads + 1 threads: the busy ones and this one)
                    self._leader = start = self._spawn_locked()
                    start.poke()
        if start is not None:
            start.thread.start()
        if refused:
            self._answers.refuse(job.ticket, self._limit)
        if tell:
            self._soon_in_trio()
        if settle:
            self._soon_in_trio(self._settle_answers)
        return mine

    def _flush_locked(self) -> bool:
        """The leader's batch to trio's list, in order, and that the peer was heard (the lock
        held); True when an ``_into_trio`` must be scheduled."""
        now = time.monotonic()
        heard = now >= self._tell_heard
        if heard:  # the peer is alive: trio's heartbeats learn it now and then
            self._tell_heard = now + self._half_heartbeat
            self._heard = True
        if not (heard or self._batch):
            return False
        self._for_trio += self._batch
        self._batch.clear()
        schedule, self._scheduled = not self._scheduled, True
        return schedule

    def _leave(self, hand: Hand) -> Next:
        """The leader stops reading: the line closed, or the crew failed."""
        with self._lock:
            if self._leader is hand:
                self._leader = None
                if self._left is not None:
                    self._left.set()
        return Next.STOP

    def _fail(self, hand: Hand) -> None:
        """A thread failed: trio reads the line again, once the leader left it; what the
        crew held goes to trio first."""
        with self._lock:
            if self.baton is not Baton.SERVED:
                return
            self.baton = Baton.TRIO
            self._for_trio += self._batch
            self._batch.clear()
            self._for_trio += [job.got for job in self._queue]
            self._queue.clear()
            self._end_idle_locked()
            if self._leader is hand:
                self._leader = None
            left = self._left = threading.Event() if self._reading_locked() else None
            if left is not None:
                os.eventfd_write(self._wake, 1)
        if left is not None and not left.wait(CLOSE_WAIT):
            log.warning("hotline %s: the reading thread did not leave; trio reads the line anyway", self._name)
        with self._lock:
            self._left = None
        self._soon_in_trio(self._give_line_back)

    def _settle_answers(self) -> None:
        self._answers.settle()

    def _give_line_back(self) -> None:
        self._into_trio()
        self._reader.unlend()
