"""A member's surveys read on a reader thread, for ``consensus.blocking`` (docs/asyncio.md §4.7).

Through ``consensus.blocking`` a member's plain ``on_poll``/``on_vote`` ran on the trio
run's handler crew, but trio read each survey, parsed it, froze its ticket and handed it
over: two threads woken per poll, and trio's machinery between them. With
:class:`ThreadSurveys` one reader thread per process reads the respondents of every member
it opened through ``consensus.blocking`` itself: it waits on their NNG receive descriptors
(``select.poll``, the GIL released; a pipe wakes it for a member coming or going), takes
the surveys (:meth:`~consensus.room.lent_surveys.LentSurveys.drain`), hands a welcomed
member's polls and votes to a :class:`~consensus.runtime.crew.Crew` of its own (one thread
woken for the burst: eight members' handlers of one poll, one after another; a job that
waits behind a slow handler for ``PATIENCE`` gets a thread of its own, at the reader's
timer) and hands everything else to trio in order. The reader runs no handler: it stays
free to read and to keep the deadlines (exactly one answer, the handler's or ``Timeout``;
a plain handler cannot be cancelled: its late answer is dropped and counted in
:attr:`~consensus.room.lent_surveys.LentSurveys.late`). The crew thread sends the reply.

Thread safety: the reader's thread alone reads the sockets, keeps the deadlines and its
members' table; members come and go through :attr:`_Reader._changes` behind its lock; the
rest is :class:`~consensus.room.lent_surveys.LentSurveys`'s.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import trio

from consensus.room.lent_surveys import Item, LentSurveys, Pending
from consensus.room.member_protocol import MemberProtocol
from consensus.room.member_surveys import ReplyTicket
from consensus.runtime.context import Kind
from consensus.runtime.crew import Crew
from patterns import Closed, IncomingSurvey, Respondent

__all__ = ["READ_IN_THREAD", "Plain", "ThreadSurveys"]

log = logging.getLogger("consensus.room")

READ_IN_THREAD: ContextVar[bool] = ContextVar("consensus_read_surveys_in_thread", default=False)
"""Set by ``consensus.blocking.join`` around opening a member: a reader thread may read its surveys."""


@dataclass(frozen=True, slots=True)
class Plain:
    """A plain poll or vote handler the crew runs, its reply sent from the crew's thread."""

    handler: Callable[..., Any]
    kind: Kind
    name: str  # for the Timeout error and the logs


class ThreadSurveys(LentSurveys):
    """One member's respondent read on the process's survey reader thread; made in trio by
    :meth:`Answerer.lend_thread <consensus.room.answering.Answerer.lend_thread>`."""

    plain = True

    def __init__(self, respondent: Respondent, protocol: MemberProtocol, handlers: dict[str, Plain], *,
                 handler_timeout: float | None, into_trio: Callable[[list[Item]], None]) -> None:  # fmt: skip
        super().__init__(respondent, protocol, {kind: on.name for kind, on in handlers.items()},
                         handler_timeout=handler_timeout, into_trio=into_trio)  # fmt: skip
        self._handlers = handlers
        self._jobs: list[Callable[[], object]] = []  # the reader's: started in this wake-up
        self._registered = False  # trio's: handed to the reader
        self.fd = -1  # NNG's receive descriptor, once started
        self.paused = False  # the reader's: its descriptor is not watched (the backlog)

    # ------------------------------------------------------------------ trio's side
    def start(self) -> None:
        """Have the process's reader thread read this member's surveys (trio's thread)."""
        try:
            self.fd = self._respondent.receive_descriptor
        except Closed:
            self.stopped = True
            return
        self._registered = True
        _reader().change(self, "add", then=None)

    async def aclose(self) -> None:
        """Make the reader let go of the socket (trio's thread, before it closes); waits a second at most."""
        if not self._registered:
            return
        self._registered = False
        done = trio.Event()
        token = self._token
        ending: list[threading.Thread] = []

        def tell(thread: threading.Thread | None) -> None:  # on the reader
            if thread is not None:
                ending.append(thread)
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        _reader().change(self, "remove", then=tell)
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await done.wait()
            if ending:  # the last member: nothing of the reader outlives it
                await trio.to_thread.run_sync(ending[0].join, 1.0)

    # ------------------------------------------------------------------ the reader's side
    def _start(self, survey: IncomingSurvey, ticket: ReplyTicket, job: Pending) -> None:
        """Queue the handler for the crew (submitted once the reader's wake-up is done)."""
        on = self._handlers[ticket.survey.kind]
        args, context = self.call_of(on.kind, survey, ticket)
        self._jobs.append(functools.partial(self._run, job, on.handler, args, context))

    def _watch(self, on: bool) -> None:
        _reader().change(self, "resume" if on else "pause", then=None)

    def take_jobs(self) -> list[Callable[[], object]]:
        jobs, self._jobs = self._jobs, []
        return jobs

    # ------------------------------------------------------------------ the crew's side
    def _run(self, job: Pending, handler: Callable[..., Any], args: tuple[Any, ...],
             context: contextvars.Context) -> None:  # fmt: skip
        try:
            result = context.run(handler, *args)
        except Exception as exc:  # noqa: BLE001 - the host hears it as the handler's error
            self._done(job, False, exc)
        else:
            self._done(job, True, result)


_Then = Callable[[threading.Thread | None], None]


class _Reader:
    """The process's survey reader thread: started by the first member, ended with the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[ThreadSurveys, str, _Then | None]] = []  # behind the lock
        self._thread: threading.Thread | None = None  # behind the lock: alive while not None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def change(self, surveys: ThreadSurveys, what: str, *, then: _Then | None) -> None:
        """Add, remove, pause or resume a member (any thread); ``then(ending)`` runs on the
        reader once it is done (``ending``: the reader's thread, when it ends for want of members)."""
        with self._lock:
            self._changes.append((surveys, what, then))
            start = self._thread is None
            if start:
                self._thread = threading.Thread(target=self._run, name="consensus survey reader", daemon=True)
        if start:
            assert self._thread is not None
            self._thread.start()
        else:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:  # the pipe is full: the reader is waking anyway
                pass

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        members: dict[int, ThreadSurveys] = {}
        crew = Crew("consensus survey handler")
        crew_at = math.inf
        try:
            while True:
                if not self._apply(poller, members):
                    return
                at = min([crew_at, *(s.next_due() for s in members.values())])
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
                if jobs:
                    crew_at = crew.submit_here(jobs, now)
                if crew_at <= now:  # even while bursts keep coming: a slow handler must not hold up the rest
                    crew_at = crew.rescue_here(now)
        except Exception:  # a bug of ours: the members must not go deaf for it
            log.exception("the survey reader thread failed: trio reads its members' surveys again")
            self._orphan(members)
        finally:
            crew.close()

    def _orphan(self, members: dict[int, ThreadSurveys]) -> None:
        """The reader failed: each member it read goes back to trio's reading, each change
        waiting is told, and the next member to come starts a reader afresh."""
        with self._lock:
            changes, self._changes = self._changes, []
            self._thread = None
        for surveys in [*members.values(), *(s for s, what, _ in changes if what == "add")]:
            if not surveys.stopped:
                surveys.give_back()
        for surveys, what, then in changes:
            if what == "remove":
                surveys.stop()
            if then is not None:
                then(None)

    def _apply(self, poller: select.poll, members: dict[int, ThreadSurveys]) -> bool:
        """Members coming and going (the reader's thread); False: none left, the thread ends
        (told to the last one leaving, who joins it)."""
        with self._lock:
            changes, self._changes = self._changes, []
        told: list[Callable[[threading.Thread | None], None]] = []
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
        ending: threading.Thread | None = None
        if not members:
            with self._lock:
                if not self._changes:
                    ending, self._thread = self._thread, None
        for then in told:
            then(ending)
        return ending is None

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


def _reader() -> _Reader:
    global _the_reader
    with _making:
        if _the_reader is None:
            _the_reader = _Reader()
        return _the_reader
