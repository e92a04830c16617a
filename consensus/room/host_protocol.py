"""The host's side of the room protocol as a pure object (no sockets, no clock).

:class:`HostProtocol` takes what arrives on the control bus (an envelope and the NNG
pipe it came over), the connection losses and the time, and returns frames to send
and events (:mod:`consensus.room.events`). It owns every check, cache and counter of
the host: the roster, the refused-join cache, the mesh checks of a join, and (in
:class:`~consensus.room.rounds.Rounds`, its ``rounds``) the poll, vote and deliberation
rounds and their replies, (in :class:`~consensus.room.host_calls.Calls`, its ``calls``)
member calls and directed messages. The trio driver (:class:`consensus.room.host.Room`)
only moves frames and wakes waiters.
"""

from __future__ import annotations

import math
import secrets
from typing import Final

from consensus.endpoints import Endpoints
from consensus.room import calls as C
from consensus.room import credentials as K
from consensus.room import direct as X
from consensus.room import protocol as P
from consensus.room import relay as R
from consensus.room.addresses import not_a_members
from consensus.room.events import (
    Ignored,
    Joined,
    Left,
    MembersChanged,
    Output,
    Send,
    Target,
    Why,
)
from consensus.room.host_calls import Calls
from consensus.room.relay import RELAY_ABOVE
from consensus.room.roster import DEFAULT_MAX_MEMBERS, JoinOutcome, JoinVerdict, Roster
from consensus.room.rounds import Rounds
from consensus.trust.room import HostKeys
from patterns import Envelope, MalformedMessage

__all__ = ["COUNTERS", "HostProtocol"]

REFUSALS_REMEMBERED: Final = 256  # refused join attempts remembered, so a repeated join counts once
ROSTER_GRACE_BEATS: Final = 2  # a heartbeat may name the previous roster this long after a change (in flight)
ROSTER_RESEND_BEATS: Final = 2  # the periodic roster, sent only while an older member (no versions) is present
HELLO_BEATS: Final = 16  # a hello is answered by a beat (it goes to all): at most 16 per 0.1 s
HELLO_WINDOW: Final = 0.1
FULL_WELCOME: Final = 32  # past this many members a welcome names the joiner only (the roster follows)
EXPIRY_MARGIN: Final = 1e-3  # expire() drops members silent for *more than* the expiry: check just after it

COUNTERS: Final = ("joins", "refused_joins", "leaves", "connection_losses", "expired", "polls", "votes",
                   "late_replies", "rejected_replies", "malformed", "calls", "refused_calls",
                   "deliberation_rounds", "impersonations", "prompts_cut", "directs", "roster_requests",
                   "rosters_resent")  # fmt: skip

_COUNTER_OF: Final = {Why.LEAVE: "leaves", Why.REPLACED: "leaves", Why.CONNECTION_LOSS: "connection_losses",
                      Why.EXPIRY: "expired"}  # fmt: skip


class HostProtocol:
    """The host of one room: who is in it, and the polls and votes under way."""

    def __init__(self, *, name: str, endpoints: Endpoints, heartbeat: float, missed_heartbeats: int = 3,
                 max_members: int = DEFAULT_MAX_MEMBERS, member_calls: bool = True,
                 keys: HostKeys | None = None, relay_above: int | None = RELAY_ABOVE,
                 first_version: int | None = None) -> None:  # fmt: skip
        if relay_above is not None and not (type(relay_above) is int and relay_above >= 0):
            raise ValueError(f"relay_above must be a count of members (an int >= 0) or None, got {relay_above!r}")
        self.relay_above = relay_above  # past this many members, broadcasts go through the host
        self.name = name
        self.keys = keys  # the room's secret at work (None: the room trusts its network)
        self._hello_beats: list[float] = []  # when the last HELLO_BEATS hello beats were sent
        self.endpoints = endpoints
        self.roster = Roster(
            heartbeat=heartbeat, missed_heartbeats=missed_heartbeats, max_members=max_members
        )
        # The roster's versions count from ``first_version``, by default a random one: a restarted
        # host's versions must not meet the one a member kept from the host before it (3.5).
        self.roster.version = secrets.randbits(32) if first_version is None else first_version
        self._own = {"survey": endpoints.survey, "control": endpoints.control, "mesh": endpoints.mesh,
                     "tasks": endpoints.tasks, "results": endpoints.results}  # fmt: skip
        self._refused: dict[tuple[str, int], None] = {}  # recent refused join attempts, oldest first
        self.counts = dict.fromkeys(COUNTERS, 0)
        # Healing a lost roster: members' heartbeats say which version they hold (docs/rooms.md 3.5).
        self._unversioned: set[str] = set()  # members whose heartbeats name no version (older peers)
        self._changed_at = -math.inf  # when the roster last changed (its version went up)
        self._resent_at = -math.inf  # when a heartbeat's request last made the roster go out again
        self.rounds = Rounds(self.roster, self.counts)
        """The polls, votes and deliberations under way (:class:`Rounds`)."""
        self.calls = Calls(name, self.roster, self.counts, member_calls=member_calls)
        """Members' calls and the host's directed messages (:class:`Calls`)."""

    # ------------------------------------------------------------------ queries
    @property
    def members(self) -> tuple[str, ...]:
        """The names of the members present who take part in polls and votes (sorted)."""
        return self.roster.participants

    @property
    def observers(self) -> tuple[str, ...]:
        """The names of the observers present (sorted): in the room, never in an electorate."""
        return self.roster.observers

    @property
    def relaying(self) -> bool:
        """True while the room has more than ``relay_above`` members: the host relays their
        broadcasts and line offers (:mod:`consensus.room.relay`)."""
        return self.relay_above is not None and len(self.roster) > self.relay_above

    def relays(self, envelope: Envelope) -> bool:
        """Should the host send this mesh frame on to every member? (a member's broadcast or
        line offer, in a relayed room)"""
        return self.relaying and envelope.kind in (P.SAY, P.LINE) and self.roster.get(envelope.sender) is not None

    @property
    def inline(self) -> bool:
        """True while a member present takes no shared-memory references: send inline."""
        return not self.roster.refs

    @property
    def heartbeat(self) -> float:
        """The interval members are told to heartbeat at (seconds)."""
        return self.roster.heartbeat

    @property
    def roster_interval(self) -> float:
        """How often the driver asks :meth:`periodic_roster` for a roster to send unprompted."""
        return self.roster.heartbeat * ROSTER_RESEND_BEATS

    @property
    def roster_grace(self) -> float:
        """How long after a change a heartbeat may name the older roster (it crossed the new one);
        also the shortest gap between two rosters that heartbeats' requests make the host send."""
        return self.roster.heartbeat * ROSTER_GRACE_BEATS

    def periodic_roster(self) -> list[Send]:
        """What to send every :attr:`roster_interval`: the roster while a member that names no
        roster version in its heartbeats (an implementation older than versioned heartbeats)
        is present, to heal a lost update as it expects; nothing otherwise."""
        if self._unversioned and not self._unversioned.isdisjoint(self.roster.names):
            return [self.roster_frame()]
        return []

    def next_check(self, now: float) -> float:
        """When to call :meth:`expire` next: just after the earliest member would expire if
        it stays silent, or one heartbeat from ``now`` when nobody is present."""
        first = self.roster.next_expiry()
        return now + self.roster.heartbeat if first is None else first + EXPIRY_MARGIN

    def beat_frame(self) -> Send:
        """The host's heartbeat, sent every :attr:`heartbeat` seconds: members notice a silent host."""
        body = K.with_host_keys(P.beat_body(self.roster.heartbeat), self.keys)
        return Send(P.BEAT, body, Target.CONTROL, inline=True)

    def close_frame(self, reason: str = "the host closed the room") -> Send:
        """Tells every member the room is closed (the driver sends it a few times: best effort)."""
        return Send(P.CLOSE, P.close_body(reason), Target.CONTROL, inline=True)

    def roster_frame(self) -> Send:
        """The roster as it stands (sent after each change, and periodically by the driver)."""
        body = P.roster_body(self.roster.meshes(), self.roster.version, refs=self.roster.refs,
                             observers=self.roster.observers)  # fmt: skip
        body = R.with_relay(K.with_member_keys(body, self.keys), self.relaying)
        return Send(P.ROSTER, body, Target.CONTROL, inline=self.inline)

    # ------------------------------------------------------------------ control bus
    def receive_control(
        self, envelope: Envelope, pipe: int, now: float, *, connected: bool = True
    ) -> list[Output]:
        """A frame from the control bus, over the connection ``pipe``: the frames to send
        (welcome, refuse, roster) and the events (joined, left, members changed, ignored).

        ``connected=False``: the driver no longer sees that connection (it closed, and the
        news may not have reached :meth:`connection_closed` yet); a refusal is then not sent,
        since the member retries over its new connection."""
        try:
            if envelope.kind in (P.JOIN, P.HEARTBEAT):
                return self._on_hello(envelope, pipe, now, connected)
            if envelope.kind == C.CALL:
                call = C.parse_call(envelope)
                return self._refused_speaker(envelope, call.name, call.token) or self.calls.on_call(call)
            if envelope.kind == K.HELLO and self.keys is not None:
                return self._on_keys(envelope, now)
            if envelope.kind == X.DIRECT_REPLY:
                reply = X.parse_direct_reply(envelope)
                return self._refused_speaker(envelope, reply.name, reply.token) or self.calls.on_direct_reply(reply)
            if envelope.kind == P.LEAVE:
                hello = P.parse_hello(envelope)
                if refused := self._refused_speaker(envelope, hello.name, hello.token):
                    return refused
                if self.roster.leave(hello.name, hello.token):
                    return self._gone([hello.name], Why.LEAVE, now)
                return []
            raise MalformedMessage(f"unexpected control kind {envelope.kind!r}", reason="body", size=0)
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            return [Ignored(str(exc))]

    def _refused_speaker(self, envelope: Envelope, name: str, token: int) -> list[Output]:
        """Nothing when ``envelope`` may speak for ``name``; else the event that says why not."""
        problem = K.speaker_problem(self.keys, envelope, name, token)
        if problem is None:
            return []
        self.counts["impersonations"] += 1
        return [Ignored(problem)]

    def _on_keys(self, envelope: Envelope, now: float) -> list[Output]:
        assert self.keys is not None
        if not self.keys.hello(envelope.session, K.parse_hello_keys(envelope)):
            self.counts["impersonations"] += 1
            return [Ignored(f"a hello from {envelope.sender!r} carries keys that are not its own")]
        recent = [at for at in self._hello_beats if now - at < HELLO_WINDOW]
        if len(recent) >= HELLO_BEATS:
            return []  # a flood of hellos: the joiners hear the next periodic beat
        self._hello_beats = [*recent, now]
        return [self.beat_frame()]  # the joiner learns the host's keys from it

    def _on_hello(self, envelope: Envelope, pipe: int, now: float, connected: bool) -> list[Output]:
        hello = P.parse_hello(envelope, with_mesh=True)
        if refused := self._refused_speaker(envelope, hello.name, hello.token):
            return refused
        if envelope.kind == P.HEARTBEAT and self.roster.heartbeat_from(hello.name, hello.token, now):
            return self._held(hello, now)
        why, version = not_a_members(hello.mesh, self._own), self.roster.version
        if why is not None:
            verdict = JoinVerdict(JoinOutcome.REFUSED, f"the mesh address {hello.mesh[:80]!r} {why}")
        else:
            verdict = self.roster.join(hello.name, hello.token, hello.mesh, pipe, now, refs=hello.refs,
                                       observer=hello.observer, decided=hello.decided)  # fmt: skip
        if verdict.outcome is JoinOutcome.REFUSED:
            if self.keys is not None:
                self.keys.refused(envelope.session)
            return self._refuse(hello, pipe, verdict.reason, connected)
        out: list[Output] = []
        if self.keys is not None and envelope.session is not None:
            self.keys.bind(envelope.session, hello.name)
        if verdict.outcome is not JoinOutcome.REFRESHED:
            self.counts["joins"] += 1
            self._changed_at = now
            if verdict.replaced is not None:
                out += self._gone([verdict.replaced.name], Why.REPLACED, now, roster=False)
            out.append(Joined(hello.name, replaced=verdict.replaced is not None))
            if not hello.observer:
                self.rounds.joined(hello.name)
        self._versioned(hello)
        # A welcome goes to every member (the control bus is a bus): in a large room it names
        # the joiner only, and the roster that follows (one per burst of joins) the others.
        meshes = self.roster.meshes()
        small = len(meshes) <= FULL_WELCOME
        body = P.welcome_body(hello.name, hello.token, meshes if small else {hello.name: meshes[hello.name]},
                              heartbeat=self.roster.heartbeat, mesh=self.endpoints.mesh, refs=self.roster.refs,
                              observers=self.roster.observers if small else ())  # fmt: skip
        body = R.with_relay(K.with_member_keys(body, self.keys, None if small else hello.name), self.relaying)
        out.append(Send(P.WELCOME, body, Target.CONTROL, inline=self.inline))
        if verdict.outcome is not JoinOutcome.REFRESHED:
            out += [MembersChanged(self.members), self.roster_frame()]
        elif self.roster.version != version:  # a repeated join that changed its mesh, refs or observer
            self._changed_at = now
            if verdict.turned:  # the rounds under way: as for a voter leaving, or joining (3.2)
                if hello.observer:
                    self.rounds.left([hello.name])
                else:
                    self.rounds.joined(hello.name)
                out.append(MembersChanged(self.members))
            out.append(self.roster_frame())
        return out

    def _versioned(self, hello: P.Hello) -> bool:
        """Note whether ``hello``'s member names roster versions (older peers do not)."""
        if hello.roster is None:
            self._unversioned.add(hello.name)
            return False
        if self._unversioned:
            self._unversioned.discard(hello.name)
        return True

    def _held(self, hello: P.Hello, now: float) -> list[Output]:
        """A member's heartbeat names the roster version it holds: an older one than the host's,
        past :attr:`roster_grace` after the change, means it lost a roster. The roster goes to
        everyone (the bus), so one resend heals all: at most one per grace, however many ask."""
        held, version = hello.roster, self.roster.version
        if not self._versioned(hello) or held == version:
            return []
        if now - self._changed_at <= self.roster_grace:
            return []
        self.counts["roster_requests"] += 1
        if now - self._resent_at < self.roster_grace:
            return []  # the roster went out again a moment ago: it heals this member too
        self._resent_at = now
        self.counts["rosters_resent"] += 1
        return [self.roster_frame()]

    def _refuse(self, hello: P.Hello, pipe: int, reason: str, connected: bool) -> list[Output]:
        attempt = (hello.name, hello.token)  # a member repeats its join until answered:
        if attempt not in self._refused:  # one attempt counts once, however many times it came
            self._refused[attempt] = None
            if len(self._refused) > REFUSALS_REMEMBERED:
                del self._refused[next(iter(self._refused))]
            self.counts["refused_joins"] += 1
        if not connected or self.roster.is_closed(pipe):
            return []  # sent over a connection that has closed: the member retries on its new one
        return [
            Send(P.REFUSE, P.refuse_body(hello.name, hello.token, reason), Target.CONTROL, inline=self.inline)
        ]

    def connection_closed(self, pipe: int, now: float) -> list[Output]:
        """The control connection ``pipe`` closed: the members that joined over it are gone
        (returns their :class:`Left`, and the new roster to send; nothing if there were none)."""
        return self._gone(self.roster.pipe_closed(pipe), Why.CONNECTION_LOSS, now)

    def expire(self, now: float) -> list[Output]:
        """Drop the members silent for longer than the expiry (returns as :meth:`connection_closed`)."""
        return self._gone(self.roster.expire(now), Why.EXPIRY, now)

    def _gone(self, names: list[str], why: Why, now: float, *, roster: bool = True) -> list[Output]:
        if not names:
            return []
        self.counts[_COUNTER_OF[why]] += len(names)
        self._unversioned.difference_update(names)
        self._changed_at = now
        self.rounds.left(names)
        if self.keys is not None and why is not Why.REPLACED:  # a replaced name's keys go at bind
            for name in names:  # a member silent or cut off may come back under its session
                (self.keys.forget if why is Why.LEAVE else self.keys.retire)(name)
        out: list[Output] = [Left(tuple(names), why)]
        out += self.calls.gone(names, why)
        if roster:
            out += [MembersChanged(self.members), self.roster_frame()]
        return out
