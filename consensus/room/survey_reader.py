"""The process's survey reader thread of ``consensus.blocking`` members, and its watch
(docs/asyncio.md §4.7; the members' side is :mod:`consensus.room.thread_surveys`).

One thread at a time, the *leader*, waits on the members' NNG receive descriptors
(``select.poll``, the GIL released; a pipe wakes it for a member coming or going), takes
their surveys, keeps their deadlines and runs a burst's plain handlers itself, one after
another (:data:`INLINE`: no thread woken per burst). While a burst runs, a *watch* (an
idle thread, :class:`~consensus.runtime.watch.Watch`, as a served hotline's) looks every
:data:`PATIENCE`; when one handler ran through a whole period it takes the reading over and
hands the rest of that burst to a :class:`~consensus.runtime.crew.Crew` (whose timer it now
keeps: a job waiting ``PATIENCE`` behind a slow one gets a thread of its own); the old
leader ends once its handler returns. After a period with no handler the watch sleeps
untimed. The reader starts with the first member and ends with the last.

Thread safety: the leader alone reads the sockets, keeps the deadlines, the crew's timer
and the members' table (handed over with the leadership, under the reader's lock, as are
the roles and the burst); members come and go through :attr:`_Reader._changes` behind that
lock; the rest is :class:`~consensus.room.lent_surveys.LentSurveys`'s.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from consensus.runtime.crew import Crew
from consensus.runtime.watch import PATIENCE, Hand, Watch

if TYPE_CHECKING:
    from consensus.room.thread_surveys import ThreadSurveys

__all__ = ["HANDLER", "INLINE", "PATIENCE", "READER", "WATCH", "reader"]

log = logging.getLogger("consensus.room")

_Then = Callable[[tuple[threading.Thread, ...]], None]

INLINE = True
"""True (kept, docs/asyncio.md §4.7): the reader runs a burst's plain handlers itself, while
a *watch* takes the reading over from a handler that runs through a whole :data:`PATIENCE`
(and hands the rest of its burst to the crew). False: every burst goes to the crew."""
READER: Final = "consensus survey reader"
WATCH: Final = "consensus survey watch"
HANDLER: Final = "consensus survey handler"  # the crew's threads, and a reader that lost the reading


class _Next(enum.Enum):
    """What a thread of the reader does next."""

    LEAD = "lead"  # read
    RUN = "run"  # run the burst it read
    WATCH = "watch"
    STOP = "stop"


class _Reader:
    """The process's survey reader: started by the first member, ended with the last; one
    thread reads at a time (the leader), and may run a burst of handlers while a watch waits
    to take the reading over."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[ThreadSurveys, str, _Then | None]] = []  # behind the lock
        self._thread: threading.Thread | None = None  # behind the lock: the leader's, alive while not None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # The leader's alone (made by the member that starts a reader, handed over with the
        # leadership, under the lock):
        self._poller: select.poll
        self._members: dict[int, ThreadSurveys]
        self._crew: Crew
        self._crew_at = math.inf
        # The roles, behind the lock:
        self._leader: Hand | None = None
        self._watch = Watch()  # its ``inline``: the leader, while it runs a burst
        self._burst: deque[Callable[[], object]] = deque()  # the rest of the burst running inline
        self.takeovers = 0  # times the watch took the reading from a handler

    def change(self, surveys: ThreadSurveys, what: str, *, then: _Then | None) -> None:
        """Add, remove, pause or resume a member (any thread); ``then(ending)`` runs on the
        reader once it is done (``ending``: the reader's thread and its watch's, to be joined, when
        they end for want of members; else empty)."""
        start: Hand | None = None
        with self._lock:
            self._changes.append((surveys, what, then))
            if self._thread is None:
                self._poller = select.poll()
                self._poller.register(self._wake_r, select.POLLIN)
                self._members, self._crew, self._crew_at = {}, Crew(HANDLER), math.inf
                self._leader = start = self._hand(lead=True)
                self._thread = start.thread
        if start is not None:
            start.thread.start()
        else:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:  # the pipe is full: the reader is waking anyway
                pass

    def _hand(self, *, lead: bool) -> Hand:
        return Hand(lambda hand: self._main(hand, lead), READER if lead else WATCH)

    def _main(self, hand: Hand, lead: bool) -> None:
        nxt = _Next.LEAD if lead else _Next.WATCH
        try:
            while nxt is not _Next.STOP:
                if nxt is _Next.WATCH:
                    nxt = self._keep_watch(hand)
                elif nxt is _Next.LEAD:
                    nxt = self._read()
                else:
                    nxt = self._run_burst(hand)
        except Exception:  # a bug of ours: the members must not go deaf for it
            log.exception("the survey reader thread failed: trio reads its members' surveys again")
            if self._leader is hand:  # (a watch has nothing of the reader's to give back)
                crew = self._crew
                self._orphan(self._members)
                crew.close()

    def _read(self) -> _Next:
        """Read until a burst of handlers comes (RUN: this thread runs it) or the last
        member left (STOP)."""
        poller, members, crew = self._poller, self._members, self._crew
        while True:
            if not self._apply(poller, members):
                crew.close()
                return _Next.STOP
            at = min([self._crew_at, *(s.next_due() for s in members.values())])
            timeout = None if at == math.inf else max(0, math.ceil((at - time.monotonic()) * 1000))
            events = poller.poll(timeout)
            jobs: list[Callable[[], object]] = []
            closed = False
            for fd, _ in events:
                if fd == self._wake_r:
                    self._empty_pipe()
                    continue
                surveys = members.get(fd)
                if surveys is not None and not surveys.stopped:
                    surveys.drain()
                    jobs += surveys.take_jobs()
                    closed = closed or surveys.stopped
            now = time.monotonic()
            if at <= now + 0.001 or closed:  # a deadline came, or a socket closed under its reader
                for surveys in list(members.values()):
                    if surveys.next_due() <= now + 0.001:
                        surveys._expire_due()
                    if surveys.stopped:
                        self._unwatch(poller, surveys)
                        del members[surveys.fd]
            if jobs and not INLINE:
                self._crew_at = crew.submit_here(jobs, now)
            if self._crew_at <= now:  # even while bursts keep coming: a slow handler must not hold up the rest
                self._crew_at = crew.rescue_here(now)
            if jobs and INLINE:
                return self._begin_burst(jobs)

    def _begin_burst(self, jobs: list[Callable[[], object]]) -> _Next:
        """(INLINE) The leader runs ``jobs`` itself: the watch looks meanwhile (one is started
        after a takeover; a sleeping one is woken by the first burst after a quiet while)."""
        start: Hand | None = None
        with self._lock:
            self._burst.extend(jobs)
            self._watch.inline = self._leader
            if self._watch.hand is None:
                start = self._hand(lead=False)  # (it starts looking: no wake-up needed)
            self._watch.arm(start, wake=False)
        if start is not None:
            start.thread.start()
        return _Next.RUN

    def _run_burst(self, hand: Hand) -> _Next:
        """(INLINE) Run the burst's handlers one after another; back to reading, unless the
        watch took the reading meanwhile: then this thread ends after its handler."""
        while True:
            with self._lock:
                if self._leader is not hand:
                    return _Next.STOP
                if not self._burst:
                    self._watch.inline = None
                    return _Next.LEAD
                job = self._burst.popleft()
                self._watch.begun += 1
            try:
                job()
            except BaseException:  # a job reports its own outcome: whatever escapes, keep reading
                log.exception("a survey handler job raised")

    def _keep_watch(self, hand: Hand) -> _Next:
        """(INLINE, the watch.) Look every PATIENCE while a burst runs inline; take the reading
        (LEAD) from a handler that ran a whole period; sleep while none runs."""
        watch = self._watch
        while True:
            poked = watch.look(hand)
            with self._lock:
                if watch.hand is not hand:  # the reader ended (or failed)
                    return _Next.STOP
                if watch.overdue(poked):
                    old, rest = watch.take_over(), list(self._burst)
                    self._burst.clear()
                    self._leader, self._thread = hand, hand.thread
                    old.thread.name, hand.thread.name = HANDLER, READER
                    self.takeovers += 1
                    break
        if rest:  # the rest of the slow handler's burst: to the crew, whose timer this thread keeps now
            self._crew_at = self._crew.submit_here(rest, time.monotonic())
        return _Next.LEAD

    def _orphan(self, members: dict[int, ThreadSurveys]) -> None:
        """The reader failed: each member it read goes back to trio's reading, each change
        waiting is told, and the next member to come starts a reader afresh."""
        with self._lock:
            changes, self._changes = self._changes, []
            self._end_locked()
        for surveys in [*members.values(), *(s for s, what, _ in changes if what == "add")]:
            if not surveys.stopped:
                surveys.give_back()
        for surveys, what, then in changes:
            if what == "remove":
                surveys.stop()
            if then is not None:
                then(())

    def _apply(self, poller: select.poll, members: dict[int, ThreadSurveys]) -> bool:
        """Members coming and going (the reader's thread); False: none left, the thread ends
        (told to the last one leaving, who joins it)."""
        with self._lock:
            changes, self._changes = self._changes, []
        told: list[_Then] = []
        for surveys, what, then in changes:
            mine = members.get(surveys.fd) is surveys
            if what == "add" and not surveys.stopped:
                members[surveys.fd] = surveys
                if not surveys.paused:
                    poller.register(surveys.fd, select.POLLIN)
            elif what == "remove":
                if mine:
                    del members[surveys.fd]
                    self._unwatch(poller, surveys)
                surveys.stop()
            elif what == "pause" and not surveys.paused:
                surveys.paused = True
                if mine:
                    poller.unregister(surveys.fd)
            elif what == "resume" and surveys.paused:
                surveys.paused = False
                if mine:
                    poller.register(surveys.fd, select.POLLIN)
            if then is not None:
                told.append(then)
        ending: tuple[threading.Thread, ...] = ()
        if not members:
            with self._lock:
                if not self._changes:
                    watch = self._watch.hand.thread if self._watch.hand is not None else None
                    ending = tuple(t for t in (self._thread, watch) if t is not None)
                    self._end_locked()
        for then in told:
            then(ending)
        return not ending

    def _end_locked(self) -> None:
        """No reader any more (the lock held): the watch ends, a handler still running inline
        ends after it, the next member starts a reader afresh."""
        if (watch := self._watch.release()) is not None:
            watch.poke()
        self._thread = self._leader = self._watch.inline = None
        self._burst.clear()

    @staticmethod
    def _unwatch(poller: select.poll, surveys: ThreadSurveys) -> None:
        if not surveys.paused:
            poller.unregister(surveys.fd)

    def _empty_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass


_the_reader: _Reader | None = None
_making = threading.Lock()


def reader() -> _Reader:
    """The process's survey reader (made at the first call)."""
    global _the_reader
    with _making:
        if _the_reader is None:
            _the_reader = _Reader()
        return _the_reader
