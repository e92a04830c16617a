"""How a member answers the host's surveys (polls, votes, deliberation rounds): the driver part.

:class:`Answerer` receives each survey on the member's respondent socket, asks the member's
protocol object which handler answers it (:meth:`MemberProtocol.receive_survey`), runs the
handler under the survey's deadline, and sends the reply the protocol object builds. An
async handler runs in the receiving task until it first waits (most answer at once); then a
new task takes over receiving and this one finishes the answer. Plain handlers get a task
each (they run in a thread, at most ``threads`` at once).
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping

import trio

from consensus.room.events import Handle, HandlerKind, Output, Send
from consensus.room.member_protocol import MemberProtocol
from consensus.runtime.context import HandlerContext, Kind, serving
from consensus.runtime.handlers import Handler, run_handler, run_inline, trio_deadline
from consensus.runtime.logs import RateLimited
from patterns import Closed, EncodeError, IncomingSurvey, MalformedMessage, MessageTooLarge, Respondent

__all__ = ["Answerer"]

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # malformed surveys: one line every 10 s at most


class Answerer:
    """The surveys one member has received and not answered yet, and the tasks that answer them."""

    def __init__(self, respondent: Respondent, protocol: MemberProtocol, handlers: Mapping[HandlerKind, Handler],
                 *, handler_timeout: float | None, threads: trio.CapacityLimiter,
                 act: Callable[[list[Output]], Awaitable[None]]) -> None:  # fmt: skip
        self._respondent = respondent
        self._protocol = protocol
        self._handlers = dict(handlers)
        self._handler_timeout = handler_timeout
        self._threads = threads
        self._act = act  # the member's: what the protocol returns besides a handler to run
        self._surveys: dict[int, IncomingSurvey] = {}  # received and not answered yet, by key
        self._keys = itertools.count(1)
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Receive surveys from now on (a survey before the welcome is kept, then answered)."""
        self._nursery = nursery
        nursery.start_soon(self._loop)

    def handle(self, handle: Handle) -> None:
        """Answer a survey the protocol held back (one that came before the welcome)."""
        assert self._nursery is not None
        self._nursery.start_soon(self._answer, handle)

    def decline(self, key: int) -> None:
        """Leave survey ``key`` unanswered (the protocol says it will not be answered)."""
        self._surveys.pop(key).decline()

    async def _loop(self) -> None:
        assert self._nursery is not None
        nursery, protocol = self._nursery, self._protocol
        while True:
            try:
                survey = await self._respondent.receive()
            except MalformedMessage as exc:
                hostile.warning("survey", "member %r ignored a malformed survey: %s", protocol.name, exc)
                continue
            except Closed:
                return
            key = next(self._keys)
            self._surveys[key] = survey
            outputs = protocol.receive_survey(key, survey.envelope, trio.current_time())
            if len(outputs) != 1 or not isinstance(outputs[0], Handle):
                await self._act(outputs)
                continue
            handle = outputs[0]
            handler = self._handlers[handle.handler]
            if not inspect.iscoroutinefunction(handler):
                nursery.start_soon(self._answer, handle)
                continue
            receiving = True

            def hand_off() -> None:
                nonlocal receiving
                receiving = False
                nursery.start_soon(self._loop)

            deadline = trio_deadline(survey.deadline, limit=self._handler_timeout)
            with serving(_context(handle, survey)):
                outcome = await run_inline(handler, *handle.args, deadline=deadline, on_suspend=hand_off)
            await self.reply(protocol.reply(key, outcome))
            if not receiving:
                return

    async def _answer(self, handle: Handle) -> None:
        survey = self._surveys[handle.survey]
        deadline = trio_deadline(survey.deadline, limit=self._handler_timeout)
        handler = self._handlers[handle.handler]
        with serving(_context(handle, survey)):
            outcome = await run_handler(handler, *handle.args, deadline=deadline, limiter=self._threads)
        await self.reply(self._protocol.reply(handle.survey, outcome))

    async def reply(self, frame: Send) -> None:
        """Send a reply frame on the survey it answers; a reply with no wire form becomes an error."""
        survey = self._surveys.pop(frame.survey)
        try:
            try:
                await survey.reply(frame.body, kind=frame.kind, inline=frame.inline)
            except (EncodeError, MessageTooLarge) as exc:  # the answer has no wire form: say so instead
                frame = self._protocol.unencodable(frame.survey, exc)
                await survey.reply(frame.body, kind=frame.kind, inline=frame.inline)
        except Closed:
            self._protocol.dropped(frame.survey)
            return
        self._protocol.sent(frame.survey)


def _context(handle: Handle, survey: IncomingSurvey) -> HandlerContext:
    """What :func:`consensus.handler_context` says while ``handle`` runs."""
    return HandlerContext(_KINDS[handle.handler], survey.envelope.sender)


_KINDS: dict[HandlerKind, Kind] = {
    HandlerKind.POLL: "poll",
    HandlerKind.VOTE: "vote",
    HandlerKind.DELIBERATE: "deliberate",
}
