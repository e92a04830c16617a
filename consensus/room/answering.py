"""How a member answers the host's surveys (polls, votes, deliberation rounds): the driver part.

:class:`Answerer` receives each survey on the member's respondent socket, asks the member's
protocol object which handler answers it (:meth:`MemberProtocol.receive_survey`), runs the
handler under the survey's deadline, and sends the reply the protocol object builds. An
async handler runs in the receiving task until it first waits (most answer at once); then a
new task takes over receiving and this one finishes the answer. Plain handlers run in
threads (at most ``threads`` at once): a poll's or a vote's on the trio run's handler
threads (:mod:`consensus.runtime.crew`: a burst of surveys for one wake-up) and sends its own
reply (:mod:`consensus.room.thread_replies`); the others' come back to a task of their own.

What does not change from one answer to the next is worked out once per handler (a
:class:`Plan`: whether it is async, its name, its :class:`HandlerContext` per asker), and
an inline answer's deadline only when its handler waits: one member process answers its
members one after another, so this bookkeeping is the serial part of a poll.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from consensus.failure import Failure
from consensus.room import protocol as P
from consensus.room.answer_plan import Plan
from consensus.room.events import Handle, HandlerKind, Output, Send
from consensus.room.lent_surveys import BACKLOG, expect_polls
from consensus.room.loop_surveys import Adopted, GiveBack, HereHandler, Item, LoopSurveys, OnThisLoop
from consensus.room.member_protocol import MemberProtocol
from consensus.room.thread_replies import Away, Fate, Finished, ThreadReplies
from consensus.room.thread_surveys import Plain, ThreadSurveys
from consensus.runtime.context import HandlerContext, set_current
from consensus.runtime.handlers import (
    Handler,
    run_handler,
    run_unbounded,
    trio_deadline,
)
from consensus.runtime.logs import RateLimited
from patterns import (
    HOLE,
    Closed,
    EncodeError,
    IncomingSurvey,
    MalformedMessage,
    MessageTooLarge,
    Respondent,
    Shape,
    Taken,
    Timeout,
    TransportError,
)

__all__ = ["Answerer"]

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # malformed surveys, lost replies: one line per kind every 10 s at most

class Answerer:
    """The surveys one member has received and not answered yet, and the tasks that answer them."""

    def __init__(self, respondent: Respondent, protocol: MemberProtocol, handlers: Mapping[HandlerKind, Handler],
                 *, handler_timeout: float | None, threads: trio.CapacityLimiter,
                 act: Callable[[list[Output]], Awaitable[None]]) -> None:  # fmt: skip
        self._respondent = respondent
        self._protocol = protocol
        self._plans = {kind: Plan.of(kind, handler) for kind, handler in handlers.items()}
        self._handler_timeout = handler_timeout
        self._threads = threads
        self._act = act  # the member's: what the protocol returns besides a handler to run
        self._surveys: dict[int, IncomingSurvey] = {}  # received and not answered yet, by key
        self._keys = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        # Plain and asyncio poll and vote handlers reply from their own thread (see thread_replies).
        plain = any(p.away for kind, p in self._plans.items() if kind is not HandlerKind.DELIBERATE)
        self._away = ThreadReplies(threads, self._settled, self._expired) if plain else None
        self._receive: Callable[[], Awaitable[IncomingSurvey]] = respondent.receive
        # A poll's answer is written from its shape (patterns' Shape: the frame's fixed bytes
        # around the value), and the host's polls read from theirs once one came (:meth:`_expect`).
        try:
            self._answer_shape: Shape | None = respondent.shape(P.ANSWER, re=True, deadline=False,
                                                                body=P.answer_body(HOLE), scalars=True)  # fmt: skip
        except ValueError:  # a name with no common form: the general writer
            self._answer_shape = None
        self._host = ""  # the sender of the polls the respondent expects (its shape)
        self.lent: LoopSurveys | ThreadSurveys | None = None  # who reads the surveys outside trio, if lent

    def lend(self, loop: asyncio.AbstractEventLoop) -> LoopSurveys | None:
        """Let ``loop`` read the surveys (trio's thread, before :meth:`start`; then
        :meth:`LoopSurveys.start` on the loop): its poll and vote handlers of that loop
        answer there, the rest comes back here in order. None when the trio path stays: a
        sealed respondent, or no poll or vote handler of that loop."""
        if self._respondent.guard is not None:
            return None
        here: dict[str, OnThisLoop] = {}
        for kind, wire in ((HandlerKind.POLL, "poll"), (HandlerKind.VOTE, "vote")):
            plan = self._plans.get(kind)
            runner = None if plan is None else plan.runner
            if plan is not None and getattr(runner, "loop", None) is loop and hasattr(runner, "start_here"):
                handler: HereHandler = runner  # type: ignore[assignment]  # the bridge's OnLoop: checked above
                here[wire] = OnThisLoop(handler, plan.kind, plan.name)
        if not here:
            return None
        send, receive = trio.open_memory_channel[Item](math.inf)  # bounded by the loop's reads, as NNG's queue
        self.lent = LoopSurveys(self._respondent, self._protocol, here, loop, handler_timeout=self._handler_timeout,
                                into_trio=functools.partial(self._from_loop, send))  # fmt: skip
        self._receive = functools.partial(self._lent_receive, receive)
        return self.lent

    def lend_thread(self) -> ThreadSurveys | None:
        """Let the process's survey reader thread read the surveys (trio's thread, before
        :meth:`start`; then :meth:`ThreadSurveys.start`): its plain poll and vote handlers
        answer on the reader's crew, the rest comes back here in order. None when the trio
        path stays: a sealed respondent, or no plain poll or vote handler."""
        if self._respondent.guard is not None:
            return None
        here: dict[str, Plain] = {}
        for kind, wire in ((HandlerKind.POLL, "poll"), (HandlerKind.VOTE, "vote")):
            plan = self._plans.get(kind)
            if plan is not None and not plan.awaits and plan.runner is None:
                here[wire] = Plain(plan.handler, plan.kind, plan.name)
        if not here:
            return None
        send, receive = trio.open_memory_channel[Item](math.inf)  # bounded by the reader's reads, as NNG's queue
        self.lent = ThreadSurveys(self._respondent, self._protocol, here, handler_timeout=self._handler_timeout,
                                  into_trio=functools.partial(self._from_loop, send))  # fmt: skip
        self._receive = functools.partial(self._lent_receive, receive)
        return self.lent

    def unlend(self) -> None:
        """The loop cannot read after all (it closed before it started): trio reads (before :meth:`start`)."""
        self.lent = None
        self._receive = self._respondent.receive

    def _from_loop(self, send: trio.MemorySendChannel[Item], items: list[Item]) -> None:
        """What the loop handed over (trio's thread): surveys to receive as if read here,
        in order; replies only trio can send."""
        for item in items:
            if isinstance(item, Adopted):
                key = item.ticket.key
                self._protocol.adopt(item.ticket)
                self._surveys[key] = item.survey
                if item.awaits:  # a plain handler's awaitable: awaited here, under the survey's deadline
                    self._soon(self._await_outcome, key, item)
                else:
                    self._soon(self._reply_outcome, key, item.outcome)
            else:
                send.send_nowait(item)
        lent = self.lent
        if lent is not None and not lent.pausing and send.statistics().current_buffer_used >= BACKLOG:
            lent.pause()  # until the receive loop took them all

    async def _lent_receive(self, receive: trio.MemoryReceiveChannel[Item]) -> IncomingSurvey:
        item = await receive.receive()
        lent = self.lent
        if lent is not None and lent.pausing and not receive.statistics().current_buffer_used:
            lent.resume()
        if isinstance(item, GiveBack):  # the loop no longer reads: trio does, after what came before
            self._receive = self._respondent.receive
            return await self._receive()
        if isinstance(item, Taken):
            return item.open()  # MalformedMessage: counted here, logged by the receiving loop
        assert isinstance(item, IncomingSurvey)
        return item

    async def _reply_outcome(self, key: int, outcome: tuple[bool, Any]) -> None:
        await self.reply(self._protocol.reply(key, outcome))

    async def _await_outcome(self, key: int, item: Adopted) -> None:
        deadline = trio_deadline(item.survey.deadline, limit=self._handler_timeout)
        outcome = await run_handler(_returning(item.outcome[1]), deadline=deadline, limiter=self._threads, sync=False)
        await self.reply(self._protocol.reply(key, outcome))

    def start(self, nursery: trio.Nursery) -> None:
        """Receive surveys from now on (a survey before the welcome is kept, then answered)."""
        self._nursery = nursery
        nursery.start_soon(self._loop)
        if self._away is not None:
            nursery.start_soon(self._away.watch)

    def settle(self) -> None:
        """Take the replies handler threads sent into the books (before reading counters)."""
        if self._away is not None:
            self._away.settle()
        if self.lent is not None:
            self.lent.settle()

    def handle(self, handle: Handle) -> None:
        """Answer a survey the protocol held back (one that came before the welcome)."""
        assert self._nursery is not None
        self._nursery.start_soon(self._answer, handle)

    def decline(self, key: int) -> None:
        """Leave survey ``key`` unanswered (the protocol says it will not be answered)."""
        self._surveys.pop(key).decline()

    async def _loop(self) -> None:
        """Receive surveys and answer them until the socket closes, or until an async handler
        waits: then a new task receives, and this one finishes that handler's answer."""
        # The deadline of an async handler is this task's scope, entered once per task, not
        # once per survey (a cancel scope with a deadline costs 10-16 µs here, more than the
        # rest of a quick answer's Python): it gets the deadline only when a handler waits,
        # and by then this task does nothing else (receiving moved to a new task). One
        # coroutine for both parts: every wake-up resumes each frame of the await chain.
        assert self._nursery is not None
        nursery, protocol, plans = self._nursery, self._protocol, self._plans
        now = trio.lowlevel.current_clock().current_time  # (a call, not the three of trio.current_time)
        suspended: tuple[int, Plan] | None = None  # the survey whose handler waited, if any
        answered: tuple[bool, Any] | None = None
        current: HandlerContext | None = None  # the context this task set last

        def hand_off() -> None:  # called while the handler of this very iteration runs: its names are current
            nonlocal suspended
            suspended = (key, plan)
            bound.deadline = trio_deadline(survey.deadline, limit=self._handler_timeout, now=received)
            nursery.start_soon(self._loop)

        with trio.CancelScope() as bound:
            while True:
                try:
                    survey = await self._receive()
                except MalformedMessage as exc:
                    hostile.warning("survey", "member %r ignored a malformed survey: %s", protocol.name, exc)
                    continue
                except Closed:
                    return
                key = next(self._keys)
                self._surveys[key] = survey
                received = now()
                if survey.sender != self._host and survey.kind == P.POLL:
                    self._expect(survey.sender)
                outputs = protocol.receive_fields(key, survey.kind, survey.body, received)
                if outputs is None:  # (a deliberation: its prompt is read from the envelope)
                    outputs = protocol.receive_survey(key, survey.envelope, received)
                if len(outputs) != 1 or not isinstance(outputs[0], Handle):
                    await self._act(outputs)
                    continue
                handle = outputs[0]
                plan = plans[handle.handler]
                if plan.away:
                    if not self._hand_to_thread(handle, survey, plan, received):
                        nursery.start_soon(self._answer, handle)
                    continue
                context = plan.context(survey.sender)
                if context is not current:  # this task runs only handlers: set, never reset
                    set_current(context)
                    current = context
                outcome = await run_unbounded(plan.handler, handle.args, hand_off)
                if suspended is not None:
                    answered = outcome  # replied to outside ``bound``: its deadline is the handler's only
                    break
                shape = self._answer_shape  # (None: a name with no common form; the Send's way)
                if shape is not None and protocol.poll_answer(key, outcome):  # its fields, no Send
                    await self._send(key, P.ANSWER, None, protocol.inline, shape, outcome[1])
                else:
                    await self.reply(protocol.reply(key, outcome))
        if suspended is None:
            return  # (mypy: only a handler that waited leaves the loop)
        if answered is None:  # only a missed deadline gets here without an outcome
            assert bound.cancelled_caught
            why = f"handler {suspended[1].name} did not finish before the deadline"
            answered = (False, Failure("Timeout", why))
        await self.reply(self._protocol.reply(suspended[0], answered))

    def _hand_to_thread(self, handle: Handle, survey: IncomingSurvey, plan: Plan, now: float) -> bool:
        """Run a plain handler in a thread that sends its reply; False: the trio path answers."""
        if self._away is None or (ticket := self._protocol.ticket(handle.survey)) is None:
            return False
        deadline = trio_deadline(survey.deadline, limit=self._handler_timeout, now=now)
        away = Away(ticket, survey, self._respondent.next_id(), plan.name, deadline)
        return self._away.start(away, plan.handler, handle.args, plan.context(survey.sender), now,
                                plan.runner)  # fmt: skip

    def _settled(self, record: Finished) -> None:
        """What a handler thread left: its books, or the reply for trio to send."""
        key, survey = record.away.key, record.away.survey
        if record.fate is Fate.SENT:
            survey.settle_threadsafe(record.size)
            self._surveys.pop(key, None)
            self._protocol.replied(key, record.counter)
        elif record.fate in (Fate.DROPPED, Fate.LOST):
            survey.settle_threadsafe(None)
            self._surveys.pop(key, None)
            if record.fate is Fate.LOST:
                self._lost(key, survey, "its connection stayed busy")
            else:
                self._protocol.dropped(key)
        else:
            assert record.outcome is not None
            self._soon(self._finish, record.away, record.fate is Fate.AWAIT, record.outcome)

    def _expired(self, away: Away) -> None:
        """Trio claimed a survey whose handler thread missed the deadline: it answers Timeout."""
        failure = Failure("Timeout", f"handler {away.name} did not finish before the deadline")
        self._soon(self._finish, away, False, (False, failure))

    def _soon(self, *task: Any) -> None:
        try:
            assert self._nursery is not None
            self._nursery.start_soon(*task)
        except RuntimeError:  # the membership is ending: nobody answers any more
            pass

    async def _finish(self, away: Away, awaits: bool, outcome: tuple[bool, Any]) -> None:
        """Send from trio what a thread could not: a value only trio can send, the Timeout
        error, or the outcome of the awaitable a plain handler returned."""
        if awaits:  # under the survey's deadline, as the trio path awaits it
            outcome = await run_handler(_returning(outcome[1]), deadline=away.deadline, limiter=self._threads,
                                        sync=False)  # fmt: skip
        await self.reply(self._protocol.reply(away.key, outcome))

    async def _answer(self, handle: Handle) -> None:
        survey = self._surveys[handle.survey]
        deadline = trio_deadline(survey.deadline, limit=self._handler_timeout)
        plan = self._plans[handle.handler]
        set_current(plan.context(survey.sender))  # a task of its own: no reset needed
        outcome = await run_handler(plan.handler, *handle.args, deadline=deadline, limiter=self._threads,
                                    sync=not plan.awaits)  # fmt: skip
        await self.reply(self._protocol.reply(handle.survey, outcome))

    def _expect(self, host: str) -> None:
        """Read the polls of ``host`` (the sender of the one just received) from their shape."""
        expect_polls(self._respondent, host)
        self._host = host

    async def reply(self, frame: Send) -> None:
        """Send a reply frame on the survey it answers; a reply with no wire form becomes an error."""
        await self._send(frame.survey, frame.kind, frame.body, frame.inline, None, None)

    async def _send(self, key: int, kind: str, body: Any, inline: bool, shape: Shape | None, hole: Any) -> None:
        """:meth:`reply` of survey ``key`` from a frame's fields (with ``shape``: ``hole`` in
        it, ``body`` unread: :meth:`patterns.IncomingSurvey.reply`)."""
        survey = self._surveys.pop(key)
        try:
            try:
                await survey.reply(body, kind=kind, inline=inline, shape=shape, hole=hole)
            except (EncodeError, MessageTooLarge) as exc:  # the answer has no wire form: say so instead
                frame = self._protocol.unencodable(key, exc)
                await survey.reply(frame.body, kind=frame.kind, inline=frame.inline)
        except Closed:
            self._protocol.dropped(key)
            return
        except (Timeout, TransportError) as exc:  # NNG could not send it: the member answers on
            self._lost(key, survey, str(exc))
            return
        self._protocol.sent(key)

    def _lost(self, key: int, survey: IncomingSurvey, why: str) -> None:
        """The reply to ``key`` could not be sent while the host waited: counted and logged."""
        self._protocol.lost(key)
        hostile.warning("lost", "member %r could not send its reply to a %r from %r: %s", self._protocol.name,
                        survey.kind, survey.sender, why)  # fmt: skip


def _returning(awaitable: Any) -> Callable[[], Awaitable[Any]]:
    """An async function awaiting ``awaitable`` (what a plain handler returned)."""

    async def awaited() -> Any:
        return await awaitable

    return awaited
