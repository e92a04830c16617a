"""A member's surveys read on a reader thread, for ``consensus.blocking`` (docs/asyncio.md §4.7).

Through ``consensus.blocking`` a member's plain ``on_poll``/``on_vote`` ran on the trio
run's handler crew, but trio read each survey, parsed it, froze its ticket and handed it
over: two threads woken per poll, and trio's machinery between them. With
:class:`ThreadSurveys` one reader thread per process reads the respondents of every member
it opened through ``consensus.blocking`` itself
(:mod:`consensus.room.survey_reader`): it takes the surveys
(:meth:`~consensus.room.lent_surveys.LentSurveys.drain`), runs a welcomed member's polls
and votes itself, one after another, each handler sending its reply, while a watch stands
ready to take the reading over from a slow handler (so that the process's other members
and the deadlines go on: exactly one answer, the handler's or ``Timeout``; a plain handler
cannot be cancelled: its late answer is dropped and counted in
:attr:`~consensus.room.lent_surveys.LentSurveys.late`), and hands everything else to trio
in order.

Thread safety: the reading thread alone reads the socket and keeps the deadlines; the rest
is :class:`~consensus.room.lent_surveys.LentSurveys`'s.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import trio

from consensus.room.lent_items import Item, Pending
from consensus.room.lent_surveys import LentSurveys
from consensus.room.member_protocol import MemberProtocol
from consensus.room.member_surveys import ReplyTicket
from consensus.room.survey_reader import reader
from consensus.runtime.context import Kind
from patterns import Closed, IncomingSurvey, Respondent

__all__ = ["READ_IN_THREAD", "Plain", "ThreadSurveys"]

READ_IN_THREAD: ContextVar[bool] = ContextVar("consensus_read_surveys_in_thread", default=False)
"""Set by ``consensus.blocking.join`` around opening a member: a reader thread may read its surveys."""


@dataclass(frozen=True, slots=True)
class Plain:
    """A plain poll or vote handler the reader (or its crew) runs, its reply sent from that thread."""

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
        reader().change(self, "add", then=None)

    async def aclose(self) -> None:
        """Make the reader let go of the socket (trio's thread, before it closes); waits a second at most."""
        if not self._registered:
            return
        self._registered = False
        done = trio.Event()
        token = self._token
        ending: list[threading.Thread] = []

        def tell(threads: tuple[threading.Thread, ...]) -> None:  # on the reader
            ending.extend(threads)
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        reader().change(self, "remove", then=tell)
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await done.wait()
            for thread in ending:  # the last member: nothing of the reader (nor its watch) outlives it
                await trio.to_thread.run_sync(thread.join, 1.0)

    # ------------------------------------------------------------------ the reader's side
    def _start(self, survey: IncomingSurvey, ticket: ReplyTicket, job: Pending) -> None:
        """Queue the handler (run once the reader's wake-up is done)."""
        on = self._handlers[ticket.survey.kind]
        args, context = self.call_of(on.kind, survey, ticket)
        self._jobs.append(functools.partial(self._run, job, on.handler, args, context))

    def _watch(self, on: bool) -> None:
        reader().change(self, "resume" if on else "pause", then=None)

    def take_jobs(self) -> list[Callable[[], object]]:
        jobs, self._jobs = self._jobs, []
        return jobs

    # ------------------------------------------------------------------ the handler's thread
    def _run(self, job: Pending, handler: Callable[..., Any], args: tuple[Any, ...],
             context: contextvars.Context) -> None:  # fmt: skip
        try:
            result = context.run(handler, *args)
        except Exception as exc:  # noqa: BLE001 - the host hears it as the handler's error
            self._done(job, False, exc)
        else:
            self._done(job, True, result)
