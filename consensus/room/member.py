"""The member side of a room: join, answer polls and votes, heartbeat, hear the mesh.

``async with consensus.join(address, name="claude", on_poll=..., on_vote=...) as me:``
connects to the host's survey and control endpoints, listens for the mesh, asks to
join (retrying until the host answers or ``join_timeout`` passes), then runs until
the block exits: every survey is answered in its own task, so polls and votes can
overlap; heartbeats keep the member in the roster; roster updates from the host
tell it which other members to dial so the mesh stays full.
"""

from __future__ import annotations

import inspect
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from consensus.decide.ballot import Ballot
from consensus.decide.tally import Decision
from consensus.endpoints import endpoints, member_mesh_address
from consensus.errors import InvalidDecision, NameTaken, RoomUnavailable
from consensus.failure import Failure
from consensus.hotline.line import Hotline
from consensus.room import protocol as P
from consensus.room.inbox import Inbox
from consensus.room.lines import RoomLines
from consensus.room.roster import check_name
from consensus.runtime.handlers import Handler, run_handler, run_inline, trio_deadline
from consensus.runtime.service import Pulse, service_nursery
from consensus.work.worker import Worker
from patterns import (
    Bus,
    Closed,
    EncodeError,
    Envelope,
    IncomingSurvey,
    MalformedMessage,
    MessageTooLarge,
    Respondent,
    TransportError,
)

__all__ = ["Member", "MemberStatistics", "join"]

log = logging.getLogger("consensus")


@dataclass(frozen=True, slots=True)
class MemberStatistics:
    members: int
    polls_answered: int
    votes_cast: int
    handler_errors: int
    decisions: int
    malformed: int
    messages_dropped: int
    duplicates_dropped: int
    hotlines_opened: int  # lines to other members, opened by either side


class Member:
    """This process's membership of a room. Create it with :func:`join`."""

    def __init__(self, address: str, *, name: str, on_poll: Handler | None, on_vote: Handler | None,
                 on_ask: Handler | None, handler_timeout: float | None, handler_threads: int,
                 max_message_size: int) -> None:  # fmt: skip
        self.name = check_name(name)
        self.address = address
        self.endpoints = endpoints(address)
        self.token = secrets.randbits(63)
        self._on_poll = on_poll
        self._on_vote = on_vote
        self._handler_timeout = handler_timeout
        self._threads = trio.CapacityLimiter(handler_threads)
        self._beats = trio.CancelScope()
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size}
        self._respondent = Respondent(dial=self.endpoints.survey, **opts)
        self._control = Bus(dial=self.endpoints.control, **opts)
        self._mesh = Bus(**opts)
        self._mesh_address = ""
        self._members: dict[str, str] = {}
        self._heartbeat = 0.5
        self._welcome = trio.Event()
        self._roster_changed = Pulse()
        self._refusal: str | None = None
        self._inbox = Inbox()
        self._lines = RoomLines(name=self.name, mesh=self._mesh, members=lambda: self._members, on_ask=on_ask,
                                max_message_size=max_message_size)  # fmt: skip
        self._decisions_send, self._decisions = trio.open_memory_channel[Decision](64)
        self.last_decision: Decision | None = None
        self.worker: Worker | None = None  # set when joined with on_task
        self._counts = dict.fromkeys(
            ("polls_answered", "votes_cast", "handler_errors", "decisions", "malformed"), 0
        )

    # ------------------------------------------------------------------ public
    @property
    def members(self) -> tuple[str, ...]:
        """The room's members as the host last reported them (sorted; includes this one)."""
        return tuple(sorted(self._members))

    async def wait_members_changed(self) -> None:
        """Wait for the next roster from the host (then read :attr:`members`)."""
        await self._roster_changed.wait()

    async def wait_for_mesh(self) -> None:
        """Wait until this member's mesh links to the host and every member it knows of.

        Broadcast is best effort: a member not yet connected does not get it. Wait
        here (after a join, say) when a broadcast must reach everyone present.
        """
        while len(self._mesh.peers) < len(self._members):  # the others plus the host
            with trio.move_on_after(self._heartbeat):  # the roster may change meanwhile
                await self._mesh.wait_peers_changed()

    async def broadcast(self, value: Any) -> None:
        """Send ``value`` to the host and every other member (best effort, see :meth:`wait_for_mesh`)."""
        await self._mesh.send(value, kind=P.SAY)

    async def hotline(self, peer: str, *, timeout: float = 10.0) -> Hotline:
        """A hotline to the member named ``peer``, connected; the room exchanges the addresses.

        Both members asking for each other get the same one line; it lives until either
        leaves the room. The peer also finds it in :meth:`hotlines`. Asks arriving on it go
        to this member's ``on_ask`` handler (see :func:`join`). Raises
        :class:`~patterns.LineError` if no member has that name and
        :class:`~patterns.Timeout` if the line is not up within ``timeout`` seconds.
        """
        return await self._lines.hotline(peer, timeout=timeout)

    def hotlines(self) -> AsyncIterator[tuple[str, Hotline]]:
        """``async for peer, line in member.hotlines()``: the lines other members opened to this one."""
        return self._lines.incoming()

    def messages(self) -> AsyncIterator[tuple[str, Any]]:
        """``async for sender, value in member.messages()``: what the others broadcast."""
        return self._inbox.messages()

    async def decisions(self) -> AsyncIterator[Decision]:
        """The decisions the host broadcasts, as they come."""
        async for decision in self._decisions:
            yield decision

    def statistics(self) -> MemberStatistics:
        socks = (self._respondent, self._control, self._mesh)
        malformed = (
            self._counts["malformed"] + self._lines.malformed + sum(s.statistics().malformed for s in socks)
        )
        return MemberStatistics(members=len(self._members), messages_dropped=self._inbox.dropped,
                                duplicates_dropped=self._inbox.duplicates, hotlines_opened=self._lines.opened,
                                **(self._counts | {"malformed": malformed}))  # fmt: skip

    # ------------------------------------------------------------------ joining
    def _hello(self) -> dict[str, Any]:
        return {"name": self.name, "token": self.token, "mesh": self._mesh_address}

    async def _join(self, join_timeout: float) -> None:
        with trio.move_on_after(join_timeout) as scope:
            await self._respondent.wait_for_peers(1)
            (control_peer,) = await self._control.wait_for_peers(1)
            local_host = control_peer.local.rpartition(":")[0] if ":" in control_peer.local else None
            self._mesh_address = self._mesh.listen(member_mesh_address(self.address, local_host))
            self._mesh.dial(self.endpoints.mesh)
            while not self._welcome.is_set():
                await self._control.send(self._hello(), kind=P.JOIN)
                with trio.move_on_after(0.25):
                    await self._welcome.wait()
        if self._refusal is not None:
            raise NameTaken(f"joining {self.address} as {self.name!r} was refused: {self._refusal}")
        if scope.cancelled_caught:
            raise RoomUnavailable(
                f"no answer from a room host at {self.address} within {join_timeout} s "
                f"(survey connected: {bool(self._respondent.peers)}, control connected: {bool(self._control.peers)})"
            )

    # ------------------------------------------------------------------ loops
    async def _control_loop(self) -> None:
        async for envelope in self._control.envelopes():
            try:
                self._on_control(envelope)
            except MalformedMessage as exc:
                self._counts["malformed"] += 1
                log.warning("member %r ignored a control message: %s", self.name, exc)

    def _on_control(self, envelope: Envelope) -> None:
        if envelope.kind in (P.WELCOME, P.REFUSE):
            hello = P.parse_hello(envelope)
            if (hello.name, hello.token) != (self.name, self.token):
                return  # addressed to another joiner
            body = envelope.body
            if envelope.kind == P.REFUSE:
                reason = body.get("reason")
                self._refusal = reason[:2000] if isinstance(reason, str) else "refused"
                if self._welcome.is_set():  # our name went to someone else while we were silent
                    raise NameTaken(
                        f"{self.name!r} lost its place in the room at {self.address}: {self._refusal}"
                    )
            else:
                beat = body.get("heartbeat")
                if type(beat) in (int, float) and 0.01 <= beat <= 3600:
                    self._heartbeat = float(beat)
                self._set_members(P.parse_members(envelope, body.get("members")))
            self._welcome.set()
        elif envelope.kind == P.ROSTER:
            members = P.parse_members(
                envelope, envelope.body.get("members") if isinstance(envelope.body, dict) else None
            )
            self._set_members(members)
        elif envelope.kind == P.DECISION:
            body = envelope.body
            if not isinstance(body, dict):
                raise MalformedMessage("a decision body must be a map", reason="body", size=0)
            try:
                decision = Decision.from_wire(body.get("decision"))
            except InvalidDecision as exc:
                raise MalformedMessage(str(exc), reason="body", size=0) from exc
            self.last_decision = decision
            self._counts["decisions"] += 1
            try:
                self._decisions_send.send_nowait(decision)
            except trio.WouldBlock:
                log.warning("member %r: decisions queue full, dropped one (see last_decision)", self.name)

    def _set_members(self, members: dict[str, str]) -> None:
        """Adopt the host's roster and keep the mesh full.

        Of each pair of members exactly one dials the other (the one whose name sorts
        later), so every pair shares one connection and nobody hears a message twice.
        """
        if self._welcome.is_set() and self.name not in members:
            return  # a roster from before our join was processed; the next one includes us
        mine = {self._mesh_address, self.endpoints.mesh}  # never touched on a peer's say-so
        wanted = {mesh for name, mesh in members.items() if name < self.name} - mine
        current = {mesh for name, mesh in self._members.items() if name < self.name} - mine
        for mesh in current - wanted:
            self._mesh.undial(mesh)
        for mesh in wanted - current:
            try:
                self._mesh.dial(mesh)
            except TransportError as exc:
                log.warning("member %r cannot dial the mesh address %r: %s", self.name, mesh, exc)
        self._members = dict(members)
        self._lines.roster_changed(self._members)
        self._roster_changed.poke()

    async def _heartbeats(self) -> None:
        with self._beats:
            while True:
                await trio.sleep(self._heartbeat)
                await self._control.send(self._hello(), kind=P.HEARTBEAT)

    async def _surveys(self, nursery: trio.Nursery) -> None:
        """Receive surveys. An async handler is run in this task until it first waits
        (most answer at once); then a new task takes over receiving and this one
        finishes the answer. Plain handlers get a task each (they run in a thread)."""
        while True:
            try:
                survey = await self._respondent.receive()
            except MalformedMessage as exc:
                log.warning("member %r ignored a malformed survey: %s", self.name, exc)
                continue
            except Closed:
                return
            call = self._handler_call(survey)
            if call is None or not inspect.iscoroutinefunction(call[0]):
                nursery.start_soon(self._answer, survey, call)
                continue
            receiving = True

            def hand_off() -> None:
                nonlocal receiving
                receiving = False
                nursery.start_soon(self._surveys, nursery)

            handler, args = call
            deadline = trio_deadline(survey.deadline, limit=self._handler_timeout)
            outcome = await run_inline(handler, *args, deadline=deadline, on_suspend=hand_off)
            await self._reply(survey, outcome)
            if not receiving:
                return

    def _handler_call(self, survey: IncomingSurvey) -> tuple[Handler, tuple[Any, ...]] | None:
        """The handler that answers ``survey`` and its arguments (None: no handler)."""
        body = survey.body if isinstance(survey.body, dict) else {}
        kind = survey.envelope.kind
        if kind == P.POLL and self._on_poll is not None and "question" in body:
            return self._on_poll, (body["question"],)
        if kind == P.VOTE and self._on_vote is not None and "options" in body:
            return self._on_vote, (body.get("motion"), body["options"])
        return None

    async def _answer(self, survey: IncomingSurvey, call: tuple[Handler, tuple[Any, ...]] | None) -> None:
        outcome = None
        if call is not None:
            deadline = trio_deadline(survey.deadline, limit=self._handler_timeout)
            outcome = await run_handler(call[0], *call[1], deadline=deadline, limiter=self._threads)
        await self._reply(survey, outcome)

    async def _reply(self, survey: IncomingSurvey, outcome: tuple[bool, Any] | None) -> None:
        """Send the handler's ``outcome`` (None: there was no handler) as the reply."""
        kind = survey.envelope.kind
        if outcome is None:
            what = "no handler for it" if kind in (P.POLL, P.VOTE) else "unknown survey kind"
            outcome = (False, Failure("NotSupported", f"{kind!r}: {what}"))
        ok, result = outcome
        counter = "polls_answered" if kind == P.POLL else "votes_cast"
        reply: tuple[str, Any] | None = (P.ANSWER, {"answer": result}) if kind == P.POLL else None
        if ok and kind == P.VOTE:
            body = survey.body
            try:
                ballot = Ballot.coerce(result)
                reply = (
                    P.BALLOT,
                    Ballot(ballot.choice, ballot.confidence, ballot.reason, body.get("vote")).to_wire(),
                )
            except (ValueError, TypeError) as exc:
                ok, result = False, Failure(type(exc).__name__, str(exc))
        if not ok:
            reply, counter = (P.ERROR, result.to_wire()), "handler_errors"
        assert reply is not None
        try:
            try:
                await survey.reply(reply[1], kind=reply[0])
            except (EncodeError, MessageTooLarge) as exc:  # the answer has no wire form: say so instead
                counter = "handler_errors"
                await survey.reply(Failure(type(exc).__name__, str(exc)[:2000]).to_wire(), kind=P.ERROR)
        except Closed:
            return
        self._counts[counter] += 1


@asynccontextmanager
async def join(address: str, *, name: str, on_poll: Handler | None = None, on_vote: Handler | None = None,
               on_ask: Handler | None = None, on_task: Handler | None = None, task_concurrency: int = 1, task_prefetch: int | None = None,
               join_timeout: float = 10.0, handler_timeout: float | None = None, handler_threads: int = 8,
               max_message_size: int = 16 * 1024 * 1024) -> AsyncIterator[Member]:  # fmt: skip
    """Join the room hosted at ``address`` as ``name``; yields the :class:`Member`.

    With ``on_task``, the member also works: it takes tasks from the host's
    ``room.distribute`` and returns ``on_task(task)`` (plain or async), running
    ``task_concurrency`` at once and holding ``task_prefetch`` more (default: as many
    again); see :class:`consensus.Worker`. ``member.worker`` is that worker.
    ``on_ask`` answers asks on this member's hotlines (:meth:`Member.hotline`), as in
    :func:`consensus.hotline`.

    Raises :class:`~patterns.NameTaken` if a live member holds the name (also later,
    if this member falls silent long enough for another to take its name) and
    :class:`~patterns.RoomUnavailable` if no host answers within ``join_timeout``.
    Plain handlers run in at most ``handler_threads`` threads at once; a handler
    still running at its deadline is reported as a ``Timeout`` error and its thread
    abandoned until it returns.
    """
    member = Member(address, name=name, on_poll=on_poll, on_vote=on_vote, on_ask=on_ask,
                    handler_timeout=handler_timeout, handler_threads=handler_threads,
                    max_message_size=max_message_size)  # fmt: skip
    async with member._respondent, member._control, member._mesh, service_nursery() as nursery:
        nursery.start_soon(member._control_loop)
        member._lines.start(nursery)
        nursery.start_soon(member._inbox.pump, member._mesh, member._lines.on_envelope)
        try:
            await member._join(join_timeout)
            nursery.start_soon(member._heartbeats)
            nursery.start_soon(member._surveys, nursery)
            async with AsyncExitStack() as work:
                if on_task is not None:  # after the join: the name is the room's now
                    member.worker = await work.enter_async_context(
                        Worker(tasks=member.endpoints.tasks, results=member.endpoints.results, name=name,
                               handler=on_task, concurrency=task_concurrency, prefetch=task_prefetch,
                               handler_threads=handler_threads, max_message_size=max_message_size)
                    )  # fmt: skip
                yield member
            member._beats.cancel()  # no heartbeat may follow the leave and re-admit us
            with trio.move_on_after(0.5) as scope:
                scope.shield = True
                await member._control.send({"name": name, "token": member.token}, kind=P.LEAVE)
        finally:
            nursery.cancel_scope.cancel()
            member._inbox.close()
            member._lines.close()
            member._decisions_send.close()
