"""The host side of a room: membership, polls, votes and the host's node of the mesh.

``async with consensus.host("tcp://127.0.0.1:7000") as room:`` (:func:`consensus.room.hosting.host`)
builds a :class:`Room`, which listens at the
endpoints derived from the address (see :mod:`consensus.endpoints`) and runs the
background tasks that keep the roster (:class:`~consensus.room.host_control.HostControl`:
joins, heartbeats, leaves, rosters) and the mesh reader.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import trio

from consensus.decide.poll import PollResult
from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Rule
from consensus.decide.stances import Key
from consensus.decide.tally import Decision
from consensus.decide.until import Until
from consensus.endpoints import endpoints
from consensus.room import protocol as P
from consensus.room.calls import POLL_CALL, UNTIL, VOTE_CALL, Call
from consensus.room.deliberating import deliberate
from consensus.room.directing import Director
from consensus.room.events import Output, Send
from consensus.room.host_control import HostControl
from consensus.room.host_protocol import HostProtocol
from consensus.room.inbox import Inbox
from consensus.room.roster import DEFAULT_MAX_MEMBERS
from consensus.room.statistics import RoomStatistics
from consensus.room.surveying import Surveying
from consensus.runtime.logs import RateLimited
from consensus.trust.room import HostKeys
from consensus.trust.secret import Secret
from consensus.work.dispatcher import Dispatcher, DispatcherStatistics
from consensus.work.dispatcher_protocol import MAX_CAPACITY
from consensus.work.distribution import Distribution
from patterns import (
    Bus,
    Closed,
    EncodeError,
    Envelope,
    MessageError,
    MessageTooLarge,
    Surveyor,
    SurveyReplies,
    Timeout,
    TLSConfig,
    WouldBlock,
)

__all__ = ["CLOSE_REPEATS", "Room", "RoomStatistics"]

CLOSE_REPEATS = 3  # a close is sent this many times (best effort: the control bus may drop one)
CLOSE_GAP = 0.05  # seconds between them, and before the sockets close after the last

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # frames that could not be relayed: one line every 10 s at most


class Room:
    """A room hosted here. Create it with :func:`host`."""

    def __init__(self, address: str, *, name: str, heartbeat: float, missed_heartbeats: int,
                 late_window: float, max_message_size: int, tls: TLSConfig | None = None,
                 max_members: int = DEFAULT_MAX_MEMBERS, member_calls: bool = True,
                 secret: Secret | None = None, max_capacity: int = MAX_CAPACITY,
                 relay_above: int | None = None) -> None:  # fmt: skip
        self.address = address
        self.name = name
        self.endpoints = endpoints(address)
        self.late_window = late_window
        self._protocol = HostProtocol(name=name, endpoints=self.endpoints, heartbeat=heartbeat,
                                      missed_heartbeats=missed_heartbeats, max_members=max_members,
                                      member_calls=member_calls, relay_above=relay_above,
                                      keys=None if secret is None else HostKeys(secret))  # fmt: skip
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size, "tls": tls}
        keys = self._protocol.keys
        self._surveyor = Surveyor(listen=self.endpoints.survey, guard=keys.survey if keys else None, **opts)
        self._dispatcher = Dispatcher(tasks=self.endpoints.tasks, results=self.endpoints.results, secret=secret,
                                      max_capacity=max_capacity, **opts)  # fmt: skip
        self._control = Bus(listen=self.endpoints.control, guard=keys.control if keys else None, **opts)
        self._mesh = Bus(listen=self.endpoints.mesh, guard=keys.mesh if keys else None, **opts)
        self._inbox = Inbox()
        self._relayed = self._relay_dropped = 0
        self._director = Director(self._protocol, self._send, name)
        self._surveying = Surveying(self._surveyor, self._protocol.rounds, name, late_window)
        # on_call looks _run_call up per call: a test stands in a host that never answers
        self._membership = HostControl(self._protocol, self._control, name, surveying=self._surveying,
                                       director=self._director, on_call=lambda call: self._run_call(call))  # fmt: skip
        self._closed = False

    # ------------------------------------------------------------------ public
    @property
    def members(self) -> tuple[str, ...]:
        """The names of the members present now who take part in polls and votes (sorted);
        observers are in :attr:`observers`."""
        return self._protocol.members

    @property
    def observers(self) -> tuple[str, ...]:
        """The names of the observers present now (sorted): never polled, never in an electorate."""
        return self._protocol.observers

    async def wait_for_members(self, count: int, *, timeout: float | None = None) -> tuple[str, ...]:
        """Wait until at least ``count`` members (observers not counted) are present and the
        polls can reach them; returns their names. With ``timeout`` (seconds), raises
        :class:`~consensus.Timeout` naming the members present when fewer than ``count`` came in time.

        A member joins once its end of the survey connection is up, but the host may note
        its own end a little later: until then a poll would not count that member among the
        survey's receivers (its large buffers would go inline, or the question not reach it)."""
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while True:
                if len(self._protocol.members) < count:
                    await self._membership.members_changed.wait()
                elif len(self._surveyor.peers) < len(self._protocol.roster):  # observers dial it too
                    with trio.move_on_after(self._protocol.heartbeat):  # the roster may change meanwhile
                        await self._surveyor.wait_peers_changed()
                else:
                    return self.members
        present = ", ".join(self.members) or "none"
        if len(self.members) >= count:  # they came, but not all of their survey connections
            raise Timeout(f"room at {self.address}: {count} members came within {timeout} s, but only "
                          f"{len(self._surveyor.peers)} of the {len(self._protocol.roster)} present are "
                          f"connected to the host's survey endpoint (present: {present})")  # fmt: skip
        raise Timeout(f"room at {self.address}: {len(self.members)} of the {count} members waited for came "
                      f"within {timeout} s (present: {present})")  # fmt: skip

    async def wait_members_changed(self) -> tuple[str, ...]:
        """Wait for the next join or departure; returns the names present then."""
        await self._membership.members_changed.wait()
        return self.members

    async def wait_for_mesh(self) -> None:
        """Wait until every member present is linked to the host's node of the mesh."""
        while len(self._mesh.peers) < len(self._protocol.roster):
            with trio.move_on_after(self._protocol.heartbeat):
                await self._mesh.wait_peers_changed()

    def _relay(self, envelope: Envelope) -> None:
        """A frame from the mesh: in a relayed room, a member's broadcast or line offer goes on
        to every member as it came (its sender and id kept; the sender drops its own)."""
        if self._protocol.relays(envelope):
            try:
                self._mesh.send_envelope_nowait(envelope, inline=True)
                self._relayed += 1
            except (WouldBlock, MessageError) as exc:  # a full queue, or no wire form: counted
                self._relay_dropped += 1
                hostile.warning("relay", "room %r could not relay a %r from %r: %s", self.name, envelope.kind,
                                envelope.sender, exc)  # fmt: skip

    async def broadcast(self, value: Any) -> None:
        """Send ``value`` to every member over the mesh (best effort, see :meth:`wait_for_mesh`)."""
        await self._mesh.send(value, kind=P.SAY, inline=self._protocol.inline)

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
        rounds, now = self._protocol.rounds, self._surveying.now  # (trio's clock, read in fewer calls)
        key, frames = rounds.open_poll(question, quorum=quorum, now=now())
        surveying = self._surveying  # (not through _ask: a frame less per wake-up)
        replies = await surveying.ask(key, frames, timeout, shape=surveying.poll_shape, hole=question)
        return rounds.close_poll(key, now(), poll_id=replies.id if replies else 0)

    async def vote(self, motion: Any, *, options: Sequence[Any], rule: Rule | None = None, timeout: float,
                   quorum: int | None = None, weights: Mapping[str, float] | None = None) -> Decision:  # fmt: skip
        """Ask every member to vote on ``motion``; returns the :class:`Decision`.

        The electorate is the members present at the start, each with weight 1 unless
        ``weights`` says otherwise. ``quorum`` is a count of members (an int >= 1, as for
        polls): met once that many cast an accepted ballot, whatever their weights; a
        fraction raises ``ValueError``. The decision is broadcast to every member.
        """
        vote_id = secrets.randbits(63)
        key, frames = self._protocol.rounds.open_vote(motion, options=options, vote_id=vote_id, rule=rule,
                                               quorum=quorum, weights=weights, now=trio.current_time())  # fmt: skip
        await self._surveying.ask(key, frames, timeout)
        decision, frame = self._protocol.rounds.close_vote(key, trio.current_time())
        try:
            await self._send(frame)
        except MessageTooLarge as exc:  # the caller still gets the decision; members are not told
            log.error("room %r: decision of vote %d not broadcast: %s", self.name, vote_id, exc)
        return decision

    async def deliberate(self, question: Any, *, rounds: int = 3, timeout: float, options: Sequence[str] | None = None,
                         rule: Rule | Sequence[Rule] | None = None, until: Until | Sequence[Until] | None = None,
                         anonymous: bool = False, key: Key | None = None) -> Deliberation:  # fmt: skip
        """Deliberate among the members present, in rounds; see :func:`consensus.room.deliberating.deliberate`."""
        return await deliberate(self, question, rounds=rounds, timeout=timeout, options=options, rule=rule,
                                until=until, anonymous=anonymous, key=key)  # fmt: skip

    async def ask(self, name: str, value: Any, *, timeout: float) -> Any:
        """Ask the member ``name`` alone; returns what its ``on_ask`` returned. Raises
        ``LookupError`` (no such member), :class:`~consensus.errors.RemoteError` (its
        handler failed, or it has none), :class:`~consensus.errors.PeerLost` (it left)
        or :class:`~consensus.Timeout`. See ``docs/rooms.md`` section 2.9."""
        return await self._director.ask(name, value, timeout=timeout)

    async def send(self, name: str, value: Any) -> None:
        """Send ``value`` to the member ``name`` alone (best effort); its ``on_ask`` runs on it."""
        await self._director.send(name, value)

    async def close(self, reason: str = "the host closed the room") -> None:
        """Close the room: tell every member (a ``close`` frame, sent a few times, best
        effort; their ``async with join(...)`` ends with ``RoomClosed``), then close the
        room's sockets: polls, votes and broadcasts raise ``Closed`` afterwards. Leaving the
        ``async with host(...)`` block does the same. Idempotent."""
        if self._closed:
            return
        self._closed = True
        told = len(self._protocol.roster)
        frame = self._protocol.close_frame(reason)
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            for _ in range(CLOSE_REPEATS):
                try:
                    await self._send(frame)
                except Closed:
                    break
                await trio.sleep(CLOSE_GAP)
        log.info("room %r closed (%d members told): %s", self.name, told, reason)
        for sock in (self._surveyor, self._control, self._mesh):
            sock.close()

    def statistics(self) -> RoomStatistics:
        counts = self._protocol.counts
        socks = (self._surveyor, self._control, self._mesh)
        stats = [s.statistics() for s in socks]
        malformed = counts["malformed"] + sum(s.malformed for s in stats)
        keys = self._protocol.keys
        return RoomStatistics(relayed=self._relayed, relay_dropped=self._relay_dropped,
                              hellos_dropped=keys.hellos_dropped if keys else 0,
                              sessions_dropped=keys.sessions_dropped if keys else 0,
                              members=len(self._protocol.members), observers=len(self._protocol.observers),
                              unauthenticated=sum(s.unauthenticated for s in stats),
                              messages_dropped=self._inbox.dropped,
                              duplicates_dropped=self._inbox.duplicates,
                              **(counts | {"malformed": malformed}))  # fmt: skip

    # ------------------------------------------------------------------ rounds
    async def _ask(self, key: int, frames: list[Send], timeout: float) -> SurveyReplies | None:
        """Send the round's survey (if any) and read its replies until the round completes
        or ``timeout`` (:meth:`Surveying.ask`)."""
        return await self._surveying.ask(key, frames, timeout)

    # ------------------------------------------------------------------ membership
    async def _send(self, frame: Send) -> None:
        await self._membership.send(frame)

    async def _act(self, outputs: list[Output]) -> None:
        await self._membership.act(outputs)

    async def _run_call(self, call: Call) -> None:
        """Run a member's poll, vote or deliberation as :meth:`poll` / :meth:`vote` / :meth:`deliberate` do;
        send the caller the result."""
        log.debug("room %r: %s asked for a %s", self.name, call.name, call.kind)
        result: PollResult | Decision | Deliberation
        try:
            if call.kind == POLL_CALL:
                result = await self.poll(call.subject, timeout=call.timeout, quorum=call.quorum)
            elif call.kind == VOTE_CALL:
                result = await self.vote(call.subject, options=call.options, rule=call.rule, timeout=call.timeout,
                                         quorum=call.quorum, weights=call.weights)  # fmt: skip
            else:
                args = call.deliberation
                assert args is not None
                result = await self.deliberate(call.subject, rounds=args.rounds, timeout=call.timeout,
                                               options=args.options, rule=args.rules or None,
                                               until=[UNTIL[n] for n in args.until], anonymous=args.anonymous)  # fmt: skip
        except (ValueError, TypeError) as exc:  # the round could not be opened with these arguments
            log.info("room %r refused a %s from %s: %s", self.name, call.kind, call.name, exc)
            await self._act(self._protocol.calls.refused(call, f"{type(exc).__name__}: {exc}"))
            return
        except Closed:
            return  # the room is closing
        except Exception as exc:  # no member's call may close the room (logged with its traceback)
            log.exception("room %r: the %s %s asked for failed", self.name, call.kind, call.name)
            await self._act(
                self._protocol.calls.refused(call, f"the host failed: {type(exc).__name__}: {exc}")
            )
            return
        try:
            for frame in self._protocol.calls.result(call, result):
                assert isinstance(frame, Send)
                await self._send(frame)
        except (MessageTooLarge, EncodeError) as exc:
            await self._act(self._protocol.calls.refused(call, f"the result has no wire form here: {exc}"))
        except Closed:
            pass
