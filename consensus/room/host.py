"""The host side of a room: membership, polls, votes and the host's node of the mesh.

``async with consensus.host("tcp://127.0.0.1:7000") as room:`` listens at the three
endpoints derived from the address (see :mod:`consensus.endpoints`) and runs the
background tasks that keep the roster: the control loop (joins, heartbeats, leaves),
the connection watcher (a member whose control connection drops is gone at once),
the heartbeat expiry, and the mesh reader.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from consensus.decide.poll import PollResult, PollRound, Verdict
from consensus.decide.rules import Majority, Rule
from consensus.decide.tally import Decision
from consensus.decide.vote import VoteRound
from consensus.endpoints import endpoints
from consensus.room import protocol as P
from consensus.room.inbox import Inbox
from consensus.room.roster import JoinOutcome, Roster
from consensus.runtime.service import service_nursery
from consensus.work.dispatcher import Dispatcher, DispatcherStatistics
from consensus.work.distribution import Distribution
from patterns import Bus, Closed, Envelope, MalformedMessage, MessageTooLarge, Surveyor, SurveyReplies

__all__ = ["Room", "RoomStatistics", "host"]

log = logging.getLogger("consensus")

_REFUSALS_REMEMBERED = 256  # refused join attempts remembered, so that a repeated join counts once


@dataclass(frozen=True, slots=True)
class RoomStatistics:
    """Counters of one room since it opened (``room.statistics()``)."""

    members: int
    joins: int
    refused_joins: int
    leaves: int
    connection_losses: int
    expired: int
    polls: int
    votes: int
    late_replies: int
    rejected_replies: int
    malformed: int
    messages_dropped: int
    duplicates_dropped: int


class _Active:
    """A round in progress and the event that wakes its driver."""

    def __init__(self, round: PollRound | VoteRound) -> None:
        self.round = round
        self.changed = trio.Event()

    def poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class Room:
    """A room hosted here. Create it with :func:`host`."""

    def __init__(self, address: str, *, name: str, heartbeat: float, missed_heartbeats: int,
                 late_window: float, max_message_size: int) -> None:  # fmt: skip
        self.address = address
        self.name = name
        self.endpoints = endpoints(address)
        self.late_window = late_window
        self._roster = Roster(heartbeat=heartbeat, missed_heartbeats=missed_heartbeats)
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size}
        self._surveyor = Surveyor(listen=self.endpoints.survey, **opts)
        self._dispatcher = Dispatcher(tasks=self.endpoints.tasks, results=self.endpoints.results, **opts)
        self._control = Bus(listen=self.endpoints.control, **opts)
        self._mesh = Bus(listen=self.endpoints.mesh, **opts)
        self._inbox = Inbox()
        self._active: set[_Active] = set()
        self._members_changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._refused: dict[tuple[str, int], None] = {}  # recent refused join attempts, oldest first
        self._counts = dict.fromkeys(
            ("joins", "refused_joins", "leaves", "connection_losses", "expired", "polls", "votes",
             "late_replies", "rejected_replies", "malformed"), 0)  # fmt: skip

    # ------------------------------------------------------------------ public
    @property
    def members(self) -> tuple[str, ...]:
        """The names of the members present now (sorted)."""
        return self._roster.names

    async def wait_for_members(self, count: int) -> tuple[str, ...]:
        """Wait until at least ``count`` members are present; returns their names."""
        while len(self._roster) < count:
            await self._members_changed.wait()
        return self.members

    async def wait_members_changed(self) -> tuple[str, ...]:
        """Wait for the next join or departure; returns the names present then."""
        await self._members_changed.wait()
        return self.members

    async def wait_for_mesh(self) -> None:
        """Wait until every member present is linked to the host's node of the mesh."""
        while len(self._mesh.peers) < len(self._roster):
            with trio.move_on_after(self._roster.heartbeat):
                await self._mesh.wait_peers_changed()

    async def broadcast(self, value: Any) -> None:
        """Send ``value`` to every member over the mesh (best effort, see :meth:`wait_for_mesh`)."""
        await self._mesh.send(value, kind=P.SAY)

    def messages(self) -> AsyncIterator[tuple[str, Any]]:
        """``async for sender, value in room.messages()``: what members broadcast."""
        return self._inbox.messages()

    def distribute(self, tasks: Iterable[Any] | AsyncIterable[Any], *, lease: float = 60.0,
                   claim_timeout: float = 5.0, max_attempts: int = 3, ordered: bool = False,
                   buffer: int | None = None) -> Distribution:  # fmt: skip
        """Hand ``tasks`` to the members that work (joined with ``on_task=``); returns an async
        iterator of outcomes (``async with room.distribute(tasks) as outcomes:``). See
        :meth:`consensus.Dispatcher.distribute` for the parameters and ``docs/work.md``."""
        return self._dispatcher.distribute(tasks, lease=lease, claim_timeout=claim_timeout,
                                           max_attempts=max_attempts, ordered=ordered, buffer=buffer)  # fmt: skip

    @property
    def workers(self) -> tuple[str, ...]:
        """The members ready for tasks now (sorted)."""
        return self._dispatcher.workers

    async def wait_for_workers(self, count: int = 1) -> tuple[str, ...]:
        """Wait until at least ``count`` members are ready for tasks."""
        return await self._dispatcher.wait_for_workers(count)

    async def wait_workers_changed(self) -> tuple[str, ...]:
        """Wait for the next member to become ready for tasks or stop; returns the workers then."""
        return await self._dispatcher.wait_workers_changed()

    def work_statistics(self) -> DispatcherStatistics:
        """Work sharing counters: workers and their capacity, attempts in flight, distributions."""
        return self._dispatcher.statistics()

    async def poll(self, question: Any, *, timeout: float, quorum: int | None = None) -> PollResult:
        """Ask every member ``question``; returns when all answered, failed or left, or
        ``quorum`` answers are in (a count of members, an int >= 1), or at the deadline."""
        start = trio.current_time()
        round = PollRound(self.members, quorum=quorum)
        self._counts["polls"] += 1
        replies = None
        if not round.complete:
            replies = await self._surveyor.survey(
                {"question": question}, kind=P.POLL, timeout=timeout, linger=self.late_window
            )
            await self._gather(_Active(round), replies, start, start + timeout, self._on_poll_reply)
        return round.result(
            question, elapsed=trio.current_time() - start, poll_id=replies.id if replies else 0
        )

    async def vote(self, motion: Any, *, options: Sequence[Any], rule: Rule | None = None, timeout: float,
                   quorum: int | None = None, weights: Mapping[str, float] | None = None) -> Decision:  # fmt: skip
        """Ask every member to vote on ``motion``; returns the :class:`Decision`.

        The electorate is the members present at the start, each with weight 1 unless
        ``weights`` says otherwise. ``quorum`` is a count of members (an int >= 1, as for
        polls): met once that many cast an accepted ballot, whatever their weights; a
        fraction raises ``ValueError``. The decision is broadcast to every member.
        """
        start = trio.current_time()
        weights = weights or {}
        electorate = {member: float(weights.get(member, 1.0)) for member in self.members}
        options = tuple(options)
        vote_id = secrets.randbits(63)
        round = VoteRound(
            vote_id, electorate=electorate, options=options, rule=rule or Majority(), quorum=quorum
        )
        self._counts["votes"] += 1
        if not round.complete:
            survey = {"vote": vote_id, "motion": motion, "options": list(options)}
            replies = await self._surveyor.survey(
                survey, kind=P.VOTE, timeout=timeout, linger=self.late_window
            )
            await self._gather(_Active(round), replies, start, start + timeout, self._on_vote_reply)
        decision = round.decision(elapsed=trio.current_time() - start)
        body = {"vote": vote_id, "motion": motion, "decision": decision.to_wire()}
        try:
            await self._control.send(body, kind=P.DECISION)
        except MessageTooLarge as exc:  # the caller still gets the decision; members are not told
            log.error("room %r: decision of vote %d not broadcast: %s", self.name, vote_id, exc)
        return decision

    def statistics(self) -> RoomStatistics:
        socks = (self._surveyor, self._control, self._mesh)
        malformed = self._counts["malformed"] + sum(s.statistics().malformed for s in socks)
        return RoomStatistics(members=len(self._roster), messages_dropped=self._inbox.dropped,
                              duplicates_dropped=self._inbox.duplicates,
                              **(self._counts | {"malformed": malformed}))  # fmt: skip

    # ------------------------------------------------------------------ rounds
    def _on_poll_reply(self, round: PollRound | VoteRound, envelope: Envelope, at: float) -> Verdict:
        assert isinstance(round, PollRound)
        kind, value = P.parse_reply(envelope)
        if kind == P.ANSWER:
            return round.answer(envelope.sender, value, at=at)
        if kind == P.ERROR:
            return round.fail(envelope.sender, value, at=at)
        raise MalformedMessage(f"a {kind!r} reply to a poll from {envelope.sender!r}", reason="body", size=0)

    def _on_vote_reply(self, round: PollRound | VoteRound, envelope: Envelope, at: float) -> Verdict:
        assert isinstance(round, VoteRound)
        kind, value = P.parse_reply(envelope)
        if kind == P.BALLOT:
            return round.ballot(envelope.sender, value)
        if kind == P.ERROR:
            return round.fail(envelope.sender, value)
        raise MalformedMessage(f"a {kind!r} reply to a vote from {envelope.sender!r}", reason="body", size=0)

    async def _gather(
        self, active: _Active, replies: SurveyReplies, start: float, deadline: float, on_reply: Any
    ) -> None:
        """Feed replies to the round until it completes or ``deadline``; then count late ones."""
        assert self._nursery is not None
        round = active.round
        self._active.add(active)

        async def read() -> None:
            async with replies:
                async for envelope in replies:
                    try:
                        verdict = on_reply(round, envelope, trio.current_time() - start)
                    except MalformedMessage as exc:
                        self._counts["malformed"] += 1
                        log.warning("room %r ignored a reply: %s", self.name, exc)
                        continue
                    except Exception:  # no reply may close the room (logged with its traceback)
                        self._counts["malformed"] += 1
                        log.exception(
                            "room %r: a reply from %r could not be used", self.name, envelope.sender
                        )
                        continue
                    if verdict is Verdict.CLOSED:
                        self._counts["late_replies"] += 1
                    elif verdict is not Verdict.ACCEPTED:
                        self._counts["rejected_replies"] += 1
                    if round.complete:
                        active.poke()  # wake the waiting poll only when there is news for it
                    if round.complete and not round.pending:
                        return  # nobody left who could still answer, even late

        self._nursery.start_soon(read)  # outlives this call to count late replies
        try:
            with trio.move_on_at(deadline):
                while not round.complete:
                    await active.changed.wait()
        finally:
            round.finish()
            self._active.discard(active)

    # ------------------------------------------------------------------ membership
    def _gone(self, names: list[str], counter: str) -> None:
        if not names:
            return
        self._counts[counter] += len(names)
        log.info("room %r: %s gone (%s)", self.name, ", ".join(names), counter)
        for active in list(self._active):
            for name in names:
                active.round.left(name)
            active.poke()
        self._membership_changed()

    def _membership_changed(self) -> None:
        self._members_changed.set()
        self._members_changed = trio.Event()
        if self._nursery is not None:
            self._nursery.start_soon(self._send_roster)

    async def _send_roster(self) -> None:
        body = {"members": self._roster.meshes(), "version": self._roster.version}
        try:
            await self._control.send(body, kind=P.ROSTER)
        except Closed:
            pass
        except MessageTooLarge as exc:
            log.error(
                "room %r: the roster of %d members has no wire form: %s", self.name, len(self._roster), exc
            )

    async def _control_loop(self) -> None:
        while True:
            try:
                envelope, pipe = await self._control.receive_from()
            except MalformedMessage as exc:  # the socket counted it
                log.warning("room %r ignored a control frame: %s", self.name, exc)
                continue
            except Closed:
                return
            try:
                await self._on_control(envelope, pipe)
            except MalformedMessage as exc:
                self._counts["malformed"] += 1
                log.warning("room %r ignored a control message: %s", self.name, exc)
            except Closed:
                return
            except Exception:  # no peer input may close the room (logged with its traceback)
                log.exception(
                    "room %r: handling a %r from %r failed", self.name, envelope.kind, envelope.sender
                )

    async def _on_control(self, envelope: Envelope, pipe: int) -> None:
        now = trio.current_time()
        if envelope.kind in (P.JOIN, P.HEARTBEAT):
            hello = P.parse_hello(envelope, with_mesh=True)
            if hello.mesh in (self.endpoints.survey, self.endpoints.control, self.endpoints.mesh):
                raise MalformedMessage(
                    f"{hello.name!r} announced a host endpoint as its mesh", reason="body", size=0
                )
            if envelope.kind == P.HEARTBEAT and self._roster.heartbeat_from(hello.name, hello.token, now):
                return
            verdict = self._roster.join(hello.name, hello.token, hello.mesh, pipe, now)
            if verdict.outcome is JoinOutcome.REFUSED:
                attempt = (hello.name, hello.token)  # a member repeats its join until answered:
                if attempt not in self._refused:  # one attempt counts once, however many times it came
                    self._refused[attempt] = None
                    if len(self._refused) > _REFUSALS_REMEMBERED:
                        del self._refused[next(iter(self._refused))]
                    self._counts["refused_joins"] += 1
                if pipe not in self._control.peers_state:
                    return  # sent over a connection that has closed: the member retries on its new one
                reply = {"name": hello.name, "token": hello.token, "reason": verdict.reason}
                await self._control.send(reply, kind=P.REFUSE)
                return
            if verdict.outcome is not JoinOutcome.REFRESHED:
                self._counts["joins"] += 1
                if verdict.replaced is not None:
                    self._gone([verdict.replaced.name], "leaves")
                self._membership_changed()
            welcome = {"name": hello.name, "token": hello.token, "members": self._roster.meshes(),
                       "heartbeat": self._roster.heartbeat, "mesh": self.endpoints.mesh}  # fmt: skip
            await self._control.send(welcome, kind=P.WELCOME)
        elif envelope.kind == P.LEAVE:
            hello = P.parse_hello(envelope)
            if self._roster.leave(hello.name, hello.token):
                self._gone([hello.name], "leaves")
        else:
            raise MalformedMessage(f"unexpected control kind {envelope.kind!r}", reason="body", size=0)

    async def _watch_connections(self) -> None:
        known = {peer.id for peer in self._control.peers}
        while True:
            try:
                now_peers = {peer.id for peer in await self._control.wait_peers_changed()}
            except Closed:
                return
            for pipe in known - now_peers:
                self._gone(self._roster.pipe_closed(pipe), "connection_losses")
            known = now_peers

    async def _expire(self) -> None:
        while True:
            next_check = self._roster.next_expiry()
            # expire() drops members silent for *more than* the expiry: wake strictly after it
            await trio.sleep_until(
                next_check + 1e-3 if next_check is not None else trio.current_time() + self._roster.heartbeat
            )
            self._gone(self._roster.expire(trio.current_time()), "expired")

    async def _resend_roster(self) -> None:
        # Bus delivery is best effort: a periodic roster heals a lost update.
        while True:
            await trio.sleep(self._roster.heartbeat * 2)
            await self._send_roster()


@asynccontextmanager
async def host(address: str, *, name: str = "host", heartbeat: float = 0.5, missed_heartbeats: int = 3,
               late_window: float = 1.0, max_message_size: int = 16 * 1024 * 1024) -> AsyncIterator[Room]:  # fmt: skip
    """Host a room at ``address`` (``tcp://H:P`` or ``ipc:///path``); yields the :class:`Room`.

    ``heartbeat`` is the interval members are told to keep; a member silent for
    ``missed_heartbeats`` intervals is dropped. Replies arriving up to ``late_window``
    seconds after a poll's deadline are counted as late.
    """
    room = Room(address, name=name, heartbeat=heartbeat, missed_heartbeats=missed_heartbeats,
                late_window=late_window, max_message_size=max_message_size)  # fmt: skip
    async with room._surveyor, room._control, room._mesh, room._dispatcher, service_nursery() as nursery:
        room._nursery = nursery
        nursery.start_soon(room._control_loop)
        nursery.start_soon(room._watch_connections)
        nursery.start_soon(room._expire)
        nursery.start_soon(room._resend_roster)
        nursery.start_soon(room._inbox.pump, room._mesh)
        try:
            yield room
        finally:
            nursery.cancel_scope.cancel()
            room._inbox.close()
