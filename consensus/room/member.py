"""The member side of a room: join, answer polls and votes, heartbeat, hear the mesh.

``async with consensus.join(address, name="claude", on_poll=..., on_vote=...) as me:``
(:func:`consensus.room.joining.join`) builds a :class:`Member`, which connects to the host's survey and control endpoints, listens for the mesh, asks to
join (retrying until the host answers or ``join_timeout`` passes), then runs until
the block exits: surveys are answered by :class:`~consensus.room.answering.Answerer`, each
in its own task, so polls and votes can overlap; heartbeats keep the member in the roster; roster updates from the host
tell it which other members to dial so the mesh stays full.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

import trio

from consensus.decide.poll import PollResult
from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Rule
from consensus.decide.tally import Decision
from consensus.endpoints import announced_address, check_listen, endpoints, member_mesh_address, port_range
from consensus.errors import AuthenticationError, NameTaken, RoomClosed, RoomUnavailable
from consensus.hotline.line import Hotline
from consensus.room import calls as C
from consensus.room import protocol as P
from consensus.room.answering import Answerer
from consensus.room.calling import Caller
from consensus.room.credentials import mesh_server_tls, secret_problem
from consensus.room.direct_answering import DirectAnswerer
from consensus.room.events import (
    CallAnswered,
    DecisionReceived,
    Decline,
    DeliberationReceived,
    Dial,
    DirectReceived,
    Handle,
    HandlerKind,
    HostChanged,
    HostClosed,
    Ignored,
    MembersChanged,
    Output,
    Refused,
    Send,
    Target,
    Undial,
    Welcomed,
)
from consensus.room.inbox import Inbox
from consensus.room.lines import RoomLines
from consensus.room.member_protocol import JOIN_RESEND, MemberProtocol
from consensus.room.statistics import MemberStatistics
from consensus.runtime.handlers import Handler
from consensus.runtime.logs import RateLimited
from consensus.runtime.service import Pulse
from consensus.trust.identity import Identity
from consensus.trust.room import MemberKeys
from consensus.trust.secret import Secret
from consensus.work.worker import Worker
from patterns import (
    Bus,
    Respondent,
    TLSConfig,
    TransportError,
)

__all__ = ["JOIN_WAIT_LOG", "Member", "MemberStatistics"]

JOIN_WAIT_LOG = 30.0  # while a join waits for its host, one log line at most this often (seconds)

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # malformed frames: one line per kind every 10 s at most


class Member:
    """This process's membership of a room. Create it with :func:`join`."""

    def __init__(self, address: str, *, name: str, on_poll: Handler | None, on_vote: Handler | None,
                 on_ask: Handler | None, handler_timeout: float | None, handler_threads: int,
                 max_message_size: int, tls: TLSConfig | None = None,
                 shared_memory: bool = True, observer: bool = False, host_timeout: float | None = None,
                 on_host_lost: Literal["wait", "exit"] = "wait",
                 on_deliberate: Handler | None = None, secret: Secret | None = None,
                 identity: Identity | None = None, listen: str | None = None,
                 line_ports: range | str | None = None) -> None:  # fmt: skip
        if on_host_lost not in ("wait", "exit"):
            raise ValueError(f"on_host_lost must be 'wait' or 'exit', got {on_host_lost!r}")
        self._on_host_lost = on_host_lost
        self.address = address
        self.endpoints = endpoints(address)
        self._listen = None if listen is None else check_listen(address, listen)
        keys = MemberKeys(secret, name) if secret is not None else None
        self._protocol = MemberProtocol(name=name, token=secrets.randbits(63), host_mesh=self.endpoints.mesh,
                                        on_poll=on_poll is not None, on_vote=on_vote is not None,
                                        refs=shared_memory, observer=observer,
                                        host_timeout=host_timeout, on_deliberate=on_deliberate is not None,
                                        keys=keys, identity=identity)  # fmt: skip
        self.name, self.token = self._protocol.name, self._protocol.token
        self._beats = trio.CancelScope()
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size, "tls": tls,
                                "shared_memory": shared_memory}  # fmt: skip
        self._mesh_tls = mesh_server_tls(tls, address)  # its own listeners in a tls+tcp room
        if tls is not None and address.startswith("tls+tcp://") and self._mesh_tls is None:
            log.warning("member %r has no certificate (tls cert_key_file): the other members cannot open "
                        "mesh links or lines to it; its broadcasts still go out", name)  # fmt: skip
        self._respondent = Respondent(dial=self.endpoints.survey, guard=keys.survey if keys else None, **opts)
        handlers = {kind: handler for kind, handler in ((HandlerKind.DELIBERATE, on_deliberate),
                    (HandlerKind.POLL, on_poll), (HandlerKind.VOTE, on_vote)) if handler is not None}  # fmt: skip
        self._answerer = Answerer(self._respondent, self._protocol, handlers, handler_timeout=handler_timeout,
                                  threads=trio.CapacityLimiter(handler_threads), act=self._act)  # fmt: skip
        self._control = Bus(dial=self.endpoints.control, guard=keys.control if keys else None, **opts)
        self._mesh = Bus(guard=keys.mesh if keys else None, **opts)
        self._answered = trio.Event()  # welcomed or refused
        self._roster_changed = Pulse()
        self._nursery: trio.Nursery | None = None
        self._inbox = Inbox()
        self._lines = RoomLines(name=self.name, mesh=self._mesh, on_ask=on_ask, max_message_size=max_message_size,
                                ports=port_range(line_ports), keys=keys, tls=(self._mesh_tls, tls))  # fmt: skip
        self._decisions_send, self._decisions = trio.open_memory_channel[Decision](64)
        self._caller = Caller(self._protocol, self._send, address)
        self._directs = DirectAnswerer(self._protocol, on_ask, self._send, handler_timeout=handler_timeout,
                                       threads=trio.CapacityLimiter(handler_threads))  # fmt: skip
        self._host_changed = Pulse()
        self.last_decision: Decision | None = None
        self.last_deliberation: Deliberation | None = None  # the last one the host broadcast
        self.worker: Worker | None = None  # set when joined with on_task

    # ------------------------------------------------------------------ public
    @property
    def members(self) -> tuple[str, ...]:
        """The room's participants as the host last reported them (sorted; includes this one
        unless it is an observer). Observers are in :attr:`observers`."""
        return tuple(sorted(set(self._protocol.members) - self._protocol.observers))

    @property
    def observers(self) -> tuple[str, ...]:
        """The room's observers as the host last reported them (sorted)."""
        return tuple(sorted(self._protocol.observers & self._protocol.members.keys()))

    @property
    def host_connected(self) -> bool:
        """True while the host is heard from (its heartbeats arrive); False once it fell silent
        for ``host_timeout`` or its connection closed, until it is heard again."""
        return self._protocol.host_connected

    async def wait_host_changed(self) -> bool:
        """Wait until the host is lost or back; returns the new :attr:`host_connected`."""
        await self._host_changed.wait()
        return self._protocol.host_connected

    @property
    def observer(self) -> bool:
        """True when this member joined as an observer (never polled, never in an electorate)."""
        return self._protocol.observer

    async def poll(self, question: Any, *, timeout: float, quorum: int | None = None) -> PollResult:
        """Ask the host to poll the room with ``question``, as ``room.poll`` does; returns the
        :class:`PollResult` (sent to this member only).

        This member is polled too, like any member, unless it is an observer. Raises
        :class:`~consensus.errors.MemberCallRefused` with the host's reason when the host
        refuses (``member_calls=False``, bad arguments) and :class:`~consensus.Timeout` when
        no result comes within ``timeout`` plus a margin of a few seconds."""
        answer = await self._caller.call(C.POLL_CALL, question, timeout=timeout, quorum=quorum)
        assert answer.poll is not None
        return answer.poll

    async def vote(self, motion: Any, *, options: Sequence[Any], rule: Rule | None = None, timeout: float,
                   quorum: int | None = None, weights: Mapping[str, float] | None = None) -> Decision:  # fmt: skip
        """Ask the host to run a vote on ``motion``, as ``room.vote`` does (same electorate,
        the decision broadcast to every member as usual); returns the :class:`Decision`.

        ``rule`` must be one of Majority, Supermajority, Unanimous, Plurality (its parameters
        travel with it). Raises as :meth:`poll`."""
        answer = await self._caller.call(C.VOTE_CALL, motion, timeout=timeout, quorum=quorum, options=tuple(options),
                                  rule=rule, weights=None if weights is None else dict(weights))  # fmt: skip
        assert answer.decision is not None
        return answer.decision

    async def deliberate(self, question: Any, *, rounds: int = 3, timeout: float, options: Sequence[str] | None = None,
                         rule: Rule | Sequence[Rule] | None = None, until: Any = None,
                         anonymous: bool = False) -> Deliberation:  # fmt: skip
        """Ask the host to run a deliberation, as ``room.deliberate`` does (``timeout`` per
        round; ``until``: the built-in predicates or their names only; no ``key``); returns
        the :class:`Deliberation`. Raises as :meth:`poll`."""
        args = C.DeliberationArgs.of(rounds, options, rule, until, anonymous)
        answer = await self._caller.call(C.DELIBERATE_CALL, question, timeout=timeout, wait=rounds * timeout,
                                         deliberation=args)  # fmt: skip
        assert answer.deliberation is not None
        return answer.deliberation

    async def wait_members_changed(self) -> tuple[str, ...]:
        """Wait for the next roster from the host; returns the names in it."""
        await self._roster_changed.wait()
        return self.members

    async def wait_for_mesh(self) -> None:
        """Wait until this member's mesh links to the host and every member it knows of.

        Broadcast is best effort: a member not yet connected does not get it. Wait
        here (after a join, say) when a broadcast must reach everyone present.
        """
        while len(self._mesh.peers) < (1 if self._protocol.relay else len(self._protocol.members)):  # others + host
            with trio.move_on_after(self._protocol.heartbeat):  # the roster may change meanwhile
                await self._mesh.wait_peers_changed()

    async def broadcast(self, value: Any) -> None:
        """Send ``value`` to the host and every other member (best effort, see :meth:`wait_for_mesh`)."""
        await self._mesh.send(value, kind=P.SAY, inline=self._protocol.inline)

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
        self._answerer.settle()  # first: the replies handler threads sent count
        counts = self._protocol.counts
        socks = (self._respondent, self._control, self._mesh)
        stats = [s.statistics() for s in socks]
        malformed = counts["malformed"] + self._lines.malformed + sum(s.malformed for s in stats)
        return MemberStatistics(members=len(self._protocol.members), messages_dropped=self._inbox.dropped,
                                unauthenticated=sum(s.unauthenticated for s in stats),
                                duplicates_dropped=self._inbox.duplicates, hotlines_opened=self._lines.opened,
                                **(counts | {"malformed": malformed}))  # fmt: skip

    # ------------------------------------------------------------------ joining
    async def _log_waiting(self, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(min(1.0, JOIN_WAIT_LOG))  # a host that is up answers well within this
            while True:
                log.info("member %r: waiting for the room host at %s (survey connected: %s, control "
                         "connected: %s)", self.name, self.address, bool(self._respondent.peers),
                         bool(self._control.peers))  # fmt: skip
                await trio.sleep(JOIN_WAIT_LOG)

    async def _join(self, join_timeout: float | None) -> None:
        assert self._nursery is not None
        waiting = trio.CancelScope()
        self._nursery.start_soon(self._log_waiting, waiting)
        try:
            await self._join_now(math.inf if join_timeout is None else join_timeout)
        finally:
            waiting.cancel()

    async def _join_now(self, join_timeout: float) -> None:
        with trio.move_on_after(join_timeout) as scope:
            await self._respondent.wait_for_peers(1)
            (control_peer,) = await self._control.wait_for_peers(1)
            local_host = control_peer.local.rpartition(":")[0] if ":" in control_peer.local else None
            mesh = member_mesh_address(self.address, local_host, self._listen)
            bound = self._mesh.listen(mesh, tls=self._mesh_tls)
            self._protocol.set_mesh(announced_address(bound, local_host))  # 0.0.0.0: the reachable host
            self._lines.listening(local_host)
            self._mesh.dial(self.endpoints.mesh)
            while not self._answered.is_set():
                if not self._respondent.peers:  # only a member the host's polls can reach may join
                    await self._respondent.wait_for_peers(1)
                for frame in self._protocol.join_frames():
                    await self._send(frame)
                with trio.move_on_after(JOIN_RESEND):
                    await self._answered.wait()
                if problem := secret_problem(self._control.statistics(), self.address, self._protocol.keys is not None):
                    raise AuthenticationError(f"{self.name!r} cannot join: {problem}")
        if self._protocol.refusal:
            raise NameTaken(f"joining {self.address} as {self.name!r} was refused: {self._protocol.refusal}")
        if scope.cancelled_caught:
            raise RoomUnavailable(
                f"no answer from a room host at {self.address} within {join_timeout} s "
                f"(survey connected: {bool(self._respondent.peers)}, control connected: {bool(self._control.peers)})"
            )

    # ------------------------------------------------------------------ acting on the protocol
    async def _send(self, frame: Send) -> None:
        await self._control.send(frame.body, kind=frame.kind, inline=frame.inline)

    async def _act(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Send):
                await (self._answerer.reply(output) if output.to is Target.REPLY else self._send(output))
            elif isinstance(output, Dial):
                try:
                    self._mesh.dial(output.address)
                except TransportError as exc:
                    log.warning(
                        "member %r cannot dial the mesh address %r: %s", self.name, output.address, exc
                    )
            elif isinstance(output, Undial):
                self._mesh.undial(output.address)
            elif isinstance(output, MembersChanged):
                self._lines.roster_changed(self._protocol.members)
                self._roster_changed.poke()
            elif isinstance(output, Welcomed):
                self._answered.set()
            elif isinstance(output, Refused):
                self._answered.set()
                if output.after_welcome:  # our name went to someone else while we were silent
                    raise NameTaken(
                        f"{self.name!r} lost its place in the room at {self.address}: {output.reason}"
                    )
            elif isinstance(output, CallAnswered):
                self._caller.answered(output.answer)
            elif isinstance(output, DecisionReceived):
                self.last_decision = output.decision
                try:
                    self._decisions_send.send_nowait(output.decision)
                except trio.WouldBlock:
                    log.warning("member %r: decisions queue full, dropped one (see last_decision)", self.name)
                except trio.ClosedResourceError:
                    pass  # the membership is ending: nobody reads decisions() any more
            elif isinstance(output, DeliberationReceived):
                self.last_deliberation = output.deliberation
            elif isinstance(output, Handle):
                self._answerer.handle(output)
            elif isinstance(output, DirectReceived):
                self._directs.handle(output.direct)
            elif isinstance(output, Decline):
                self._answerer.decline(output.survey)
            elif isinstance(output, Ignored):
                hostile.warning(
                    "control", "member %r ignored a control message: %s", self.name, output.reason
                )
            elif isinstance(output, HostChanged):
                self._host_changed.poke()
                if output.connected:
                    log.info("member %r: the host at %s is back", self.name, self.address)
                    continue
                log.warning("member %r lost the host at %s: %s", self.name, self.address, output.reason)
                if self._on_host_lost == "exit":
                    raise RoomClosed(f"{self.name!r} lost the room host at {self.address}: {output.reason}")
            elif isinstance(output, HostClosed):
                self._host_changed.poke()
                log.info(
                    "member %r: the host at %s closed the room: %s", self.name, self.address, output.reason
                )
                raise RoomClosed(f"the host at {self.address} closed the room: {output.reason}")

    # ------------------------------------------------------------------ loops
    async def _control_loop(self) -> None:
        async for envelope in self._control.envelopes():
            await self._act(self._protocol.receive_control(envelope, trio.current_time()))

    async def _heartbeats(self) -> None:
        """Heartbeat while the survey connection is up: a host (perhaps a restarted one that
        admits us by a heartbeat) may only count us when its polls can reach us. A survey
        connection that comes back is announced at once."""
        with self._beats:
            while True:
                with trio.move_on_after(self._protocol.heartbeat):
                    if self._respondent.peers:
                        await trio.sleep_forever()
                    await self._respondent.wait_for_peers(1)  # down: wake as soon as it is back
                if self._respondent.peers:
                    await self._send(self._protocol.heartbeat_frame())

    async def _watch_host(self) -> None:
        """Tell the protocol when the host falls silent or its control connection closes."""
        while True:
            with trio.move_on_at(self._protocol.next_host_check(trio.current_time())):
                peers = await self._control.wait_peers_changed()
                if not peers:
                    await self._act(self._protocol.host_disconnected(trio.current_time()))
            await self._act(self._protocol.check_host(trio.current_time()))
