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

The reading, the hand-over to trio, the books and who answers are
:class:`~consensus.room.lent_surveys.LentSurveys`'s (shared with the reader thread of
``consensus.blocking``, §4.7); this module adds the loop: the watch, the tasks, the timer.

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
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from consensus.room.lent_items import GIVE_BACK, Adopted, GiveBack, Item, Pending
from consensus.room.lent_surveys import DRAIN, LentSurveys
from consensus.room.member_protocol import MemberProtocol
from consensus.room.member_surveys import ReplyTicket
from consensus.runtime.context import Kind
from patterns import Closed, IncomingSurvey, Respondent

__all__ = ["DRAIN", "GIVE_BACK", "READ_ON", "Adopted", "GiveBack", "HereHandler", "Item", "LoopSurveys", "OnThisLoop"]

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


class LoopSurveys(LentSurveys):
    """One member's respondent read on one asyncio loop; made in trio by
    :meth:`Answerer.lend <consensus.room.answering.Answerer.lend>`, started and stopped on the loop."""

    def __init__(self, respondent: Respondent, protocol: MemberProtocol, handlers: dict[str, OnThisLoop],
                 loop: asyncio.AbstractEventLoop, *, handler_timeout: float | None,
                 into_trio: Callable[[list[Item]], None]) -> None:  # fmt: skip
        """``handlers``: by survey kind (``"poll"``, ``"vote"``); ``into_trio(items)`` (trio's
        thread) receives what the loop hands over, in order."""
        super().__init__(respondent, protocol, {kind: on.name for kind, on in handlers.items()},
                         handler_timeout=handler_timeout, into_trio=into_trio)  # fmt: skip
        self.loop = loop
        self._clock = loop.time  # type: ignore[method-assign]  # the loop's clock, without a frame per call
        self._handlers = handlers
        # One timer for the earliest deadline: a TimerHandle per survey costs more than the
        # rest of its bookkeeping.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._fd: int | None = None  # the loop's: watched while not None

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
        self.loop.add_reader(self._fd, self.drain)

    def stop(self) -> None:
        """Stop reading (the loop's thread, before the socket closes): the handlers still
        running are cancelled and their surveys declined (the host hears nothing, as when
        trio's path ends a membership)."""
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self._fd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        super().stop()

    def _watch(self, on: bool) -> None:
        try:
            self.loop.call_soon_threadsafe(self._watch_here, on)
        except RuntimeError:  # the loop is closed: nothing reads any more
            pass

    def _watch_here(self, on: bool) -> None:
        if self._fd is None:
            return
        if on:
            self.loop.add_reader(self._fd, self.drain)
        else:
            self.loop.remove_reader(self._fd)

    def _start(self, survey: IncomingSurvey, ticket: ReplyTicket, job: Pending) -> None:
        """Run the survey's handler as a task of the loop."""
        on = self._handlers[ticket.survey.kind]
        args, context = self.call_of(on.kind, survey, ticket)
        job.task = on.handler.start_here(args, context, lambda ok, result: self._done(job, ok, result))

    def _arm(self, at: float) -> None:
        if at >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(at, self._on_timer), at

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._expire_due()

    def _cancel(self, job: Pending) -> None:
        if job.task is not None:
            job.task.cancel()
