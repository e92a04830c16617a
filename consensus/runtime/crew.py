"""Plain handlers of one trio run on a few long-lived threads, a burst per wake-up: :class:`Crew`.

trio's thread cache gives each plain handler a thread of its own, woken from sleep: a
process whose eight members answer one poll wakes eight threads (about 50 µs each on a
2-core VM, more under load), which then fight each other and trio for the GIL. A crew
wakes one thread for a burst: a job submitted while a crew thread is awake and looking for
work, or busy with an earlier job, waits for it instead of waking another.

A slow handler must not hold up the jobs behind it: a job that has waited :data:`PATIENCE`
gets a thread of its own. trio checks that at a timer (a system task of the run, its cancel
scope's deadline moved, never a thread polling); the timer is armed by a submit and
disarmed when it finds nothing waiting, so back-to-back bursts cost it at most one trio
wake-up per ``PATIENCE``.

Threads: started when no idle one is left, never more than the jobs in flight; an idle
thread ends after :data:`IDLE_EXIT` seconds, as trio's own cache does, and every thread
ends once the trio run has ended and the queue is empty. A job is a plain callable that
reports its own outcome (:class:`~consensus.room.thread_replies.ThreadReplies` sends the
reply and hands trio its books); an exception escaping it is logged, never raised.

A crew may also serve a thread outside trio (the survey reader of ``consensus.blocking``,
:mod:`consensus.room.survey_reader`): :meth:`Crew.submit_here` and :meth:`Crew.rescue_here`,
the reader's own clock and timer instead of trio's.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from consensus.runtime.batch import at_batch_end

__all__ = ["IDLE_EXIT", "PATIENCE", "Crew", "CrewStatistics", "crew"]

log = logging.getLogger("consensus")

PATIENCE = 0.01
"""Seconds a job may wait behind a busy crew thread before it gets a thread of its own:
well above a quick handler (microseconds) and a loaded machine's scheduling delays (a few
milliseconds), well below a survey's deadline; the timer fires at most once per PATIENCE."""

IDLE_EXIT = 10.0
"""An idle crew thread ends after this many seconds (trio's thread cache keeps its own as long)."""


@dataclass(frozen=True, slots=True)
class CrewStatistics:
    threads: int  # alive
    idle: int  # of them asleep, waiting for work
    waiting: int  # jobs submitted and not started yet


class _Hand:
    """One crew thread: sleeps on ``wake`` (held while it sleeps) until given work."""

    __slots__ = ("looking", "wake")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.looking = False  # awake, not in a job: it takes the next job before sleeping


class Crew:
    """Threads that run submitted jobs in order, as few as keep every job moving."""

    def __init__(self, name: str = "consensus handler") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._jobs: deque[tuple[Callable[[], object], float]] = deque()  # (job, trio time queued)
        self._idle: list[_Hand] = []  # sleeping, most recent last (its caches are warm)
        self._looking = 0  # hands awake and not in a job
        self._threads = 0  # alive
        self._closed = False  # the trio run ended: threads leave once the queue is empty
        self._check_at = math.inf  # trio's: when the timer looks for jobs waiting too long
        self._scope: trio.CancelScope | None = None

    # ------------------------------------------------------------------ trio's side
    def submit(self, job: Callable[[], object], now: float) -> None:
        """Run ``job()`` in a crew thread soon (trio's thread; ``now``: trio's clock)."""
        with self._lock:
            self._jobs.append((job, now))
            idle = self._looking == 0 and self._threads == len(self._idle)  # nobody awake or busy
            hands = self._hands_locked(1) if idle else None
        if hands is not None:  # at the end of trio's batch: the thread gets the whole burst
            at_batch_end(self._start, hands)
        if self._check_at == math.inf:  # a busy or slow hand may hold this job: look again soon
            self._arm(now + PATIENCE)

    # ------------------------------------------------------------------ a reader thread's side
    def submit_here(self, jobs: list[Callable[[], object]], now: float) -> float:
        """Run ``jobs`` in crew threads soon, from a thread that keeps the crew's timer itself
        (a survey reader: ``now`` on its clock); returns when to call :meth:`rescue_here`."""
        with self._lock:
            self._jobs.extend((job, now) for job in jobs)
            idle = self._looking == 0 and self._threads == len(self._idle)
            hands = self._hands_locked(1) if idle else None
        if hands is not None:  # the whole burst is queued: one thread wakes for it
            self._start(hands)
        if self._check_at == math.inf:
            self._check_at = now + PATIENCE
        return self._check_at

    def rescue_here(self, now: float) -> float:
        """A thread for each job that waited :data:`PATIENCE` (the reader's timer); returns
        when to look again (inf: nothing waits)."""
        self._rescue(now)
        return self._check_at

    def statistics(self) -> CrewStatistics:
        with self._lock:
            return CrewStatistics(self._threads, len(self._idle), len(self._jobs))

    async def watch(self) -> None:
        """Give a thread to each job that waited :data:`PATIENCE` (a system task of the run;
        when the run ends, the crew closes)."""
        try:
            while True:
                with trio.CancelScope(deadline=self._check_at) as self._scope:
                    await trio.sleep_forever()
                self._scope = None
                self._rescue(trio.current_time())
        finally:
            self._scope = None
            self.close()

    def close(self) -> None:
        """No more jobs come: threads finish the queue, then end (any thread)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for hand in idle:
            hand.wake.release()

    def _rescue(self, now: float) -> None:
        with self._lock:
            late = 0
            for _, queued in self._jobs:  # oldest first
                if queued > now - PATIENCE:
                    break
                late += 1
            hands = self._hands_locked(late - self._looking) if late > self._looking else None
            left = bool(self._jobs)
        if hands is not None:
            self._start(hands)
        self._check_at = now + PATIENCE if left else math.inf

    def _arm(self, at: float) -> None:
        self._check_at = at
        if self._scope is not None:
            self._scope.deadline = at

    def _hands_locked(self, count: int) -> tuple[list[_Hand], int]:
        """Put ``count`` more hands to work: the idle ones to wake (most recent first: its
        caches are warm), and how many threads to start; the caller does both, unlocked."""
        woken = []
        while count > 0 and self._idle:
            hand = self._idle.pop()
            hand.looking = True
            woken.append(hand)
            count -= 1
        self._looking += len(woken) + count
        self._threads += count
        return woken, count

    def _start(self, hands: tuple[list[_Hand], int]) -> None:
        woken, new = hands
        for hand in woken:
            hand.wake.release()
        for _ in range(new):
            hand = _Hand()
            hand.looking = True
            threading.Thread(target=self._run, args=(hand,), name=self._name, daemon=True).start()

    # ------------------------------------------------------------------ the crew thread's side
    def _run(self, hand: _Hand) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            with lock:
                if hand.looking:
                    hand.looking = False
                    self._looking -= 1
                if jobs:
                    job = jobs.popleft()[0]
                elif self._closed:
                    self._threads -= 1
                    return
                else:
                    job = None
                    self._idle.append(hand)
            if job is not None:
                try:
                    job()
                except BaseException:  # a job reports its own outcome: whatever escapes, keep the thread
                    log.exception("a job of the handler threads raised")
                continue
            if hand.wake.acquire(timeout=IDLE_EXIT):
                continue
            with lock:  # idle too long: leave, unless a submit picked this hand meanwhile
                if hand in self._idle:
                    self._idle.remove(hand)
                    self._threads -= 1
                    return
            hand.wake.acquire()  # picked: its wake-up is on the way


_crews: trio.lowlevel.RunVar[Crew] = trio.lowlevel.RunVar("consensus handler crew")


def crew() -> Crew:
    """The running trio run's crew (called in trio); the first call starts its timer."""
    try:
        return _crews.get()
    except LookupError:
        found = Crew()
        _crews.set(found)
        try:
            trio.lowlevel.spawn_system_task(found.watch, name="consensus handler crew")
        except RuntimeError:  # the run is shutting down: no timer, and the threads end after the queue
            found.close()
        return found
