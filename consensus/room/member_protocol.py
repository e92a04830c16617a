"""A member's side of the room protocol as a pure object (no sockets, no clock).

:class:`MemberProtocol` takes what arrives from the host (control frames, surveys) and
the outcomes of the member's handlers, and returns frames to send and events
(:mod:`consensus.room.events`). It owns the member's checks and counters: whose
``welcome``/``refuse`` it is, the heartbeat range, the mesh diff (which addresses to dial
or stop dialing) and decision parsing. The surveys it hands to its helper
(:class:`~consensus.room.member_surveys.MemberSurveys`: which handler answers a survey,
ballot coercion and the error replies), the calls to another
(:class:`~consensus.room.member_calls.MemberCalls`). The trio driver
(:class:`consensus.room.member.Member`) runs the handlers and moves the frames.
"""

from __future__ import annotations

from typing import Any, Final

from consensus.decide.rules import Rule
from consensus.room import calls as C
from consensus.room import credentials as K
from consensus.room import deliberation_frames as D
from consensus.room import direct as X
from consensus.room import protocol as P
from consensus.room import relay as R
from consensus.room.events import (
    DecisionReceived,
    DeliberationReceived,
    Dial,
    DirectReceived,
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
from consensus.room.member_answers import SurveyAnswers
from consensus.room.member_calls import MemberCalls
from consensus.room.member_state import MemberState
from consensus.room.member_surveys import MemberSurveys
from consensus.room.roster import check_name
from consensus.trust.identity import Identity
from consensus.trust.room import MemberKeys
from patterns import Envelope, MalformedMessage

__all__ = [
    "CALL_MARGIN",
    "COUNTERS",
    "DEFAULT_HEARTBEAT",
    "HOST_TIMEOUT_BEATS",
    "JOIN_RESEND",
    "MemberProtocol",
    "MemberState",
]

DEFAULT_HEARTBEAT: Final = 0.5  # until a welcome says otherwise
HOST_TIMEOUT_BEATS: Final = 4  # default host_timeout: this many heartbeats without a word from the host
JOIN_RESEND: Final = 0.25  # seconds between join attempts until the host answers
CALL_MARGIN: Final = 2.0  # a call's result may come this long after its timeout (then: Timeout)
COUNTERS: Final = ("polls_answered", "votes_cast", "handler_errors", "decisions", "malformed", "calls",
                    "late_results", "positions_sent", "directs", "replies_lost")  # fmt: skip


class MemberProtocol(SurveyAnswers):
    """One member of a room, as the protocol sees it."""

    def __init__(self, *, name: str, token: int, host_mesh: str, on_poll: bool, on_vote: bool,
                 refs: bool = True, observer: bool = False,
                 host_timeout: float | None = None, on_deliberate: bool = False,
                 keys: MemberKeys | None = None, identity: Identity | None = None) -> None:  # fmt: skip
        if host_timeout is not None and not host_timeout > 0:
            raise ValueError(f"host_timeout must be > 0 seconds (or None), got {host_timeout!r}")
        self._host_timeout = host_timeout
        self.host_connected = False  # True from the welcome while the host is heard from
        self._last_heard = 0.0
        self.name = check_name(name)
        self.keys = keys  # the room's secret at work (None: the room trusts its network)
        self.token = token if keys is None else keys.token
        self.host_mesh = host_mesh  # never dialed or dropped on a peer's say-so
        self.mesh = ""  # this member's own mesh address, once it listens (set_mesh)
        self.refs = refs  # False: tell the host this member takes no shared-memory references
        self.observer = observer  # True: tell the host this member only watches
        self.observers: frozenset[str] = frozenset()  # the observers in the last roster
        self.state = MemberState.JOINING
        self.heartbeat = DEFAULT_HEARTBEAT
        self.members: dict[str, str] = {}
        self.roster_version = 0  # of the last roster: heartbeats name it, so the host resends a lost one
        self.room_refs = True  # False: the host says some member takes no references
        self.relay = False  # True: the host relays broadcasts (a large room): link to the host only
        self.inline = not refs
        """True when frames should carry no shared-memory references (see ``refs``): kept up
        to date by :meth:`_set_inline` (each answer reads it: not worked out per frame)."""
        self._dialing: set[str] = set()  # the members' mesh addresses the driver was told to dial
        self.refusal = ""
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._calls = MemberCalls(self.name, self.token, self.counts)
        self._surveys = MemberSurveys(self.name, self.counts, on_poll=on_poll, on_vote=on_vote,
                                      on_deliberate=on_deliberate, identity=identity)  # fmt: skip

    @property
    def identity(self) -> Identity | None:
        """Signs this member's ballots (None: unsigned)."""
        return self._surveys.identity

    # ------------------------------------------------------------------ frames to the host
    def _set_inline(self) -> None:  # after a change of refs, room_refs or relay
        self.inline = not (self.refs and self.room_refs) or self.relay

    def set_mesh(self, address: str) -> None:
        """This member's mesh socket listens at ``address`` (announced in joins and heartbeats)."""
        self.mesh = address

    def join_frame(self) -> Send:
        """The ``join`` to send (repeated by the driver until a welcome or refusal)."""
        return self._hello(P.JOIN)

    def join_frames(self) -> list[Send]:
        """What to send to get in (repeated by the driver until a welcome or refusal): the
        ``join``; with a secret, first a ``hello`` with this member's keys, and only the hello
        while the host's keys are not known yet (its answer, a beat, brings them)."""
        if self.keys is None:
            return [self.join_frame()]
        hello = Send(K.HELLO, self.keys.hello_body(), Target.CONTROL, inline=True)
        return [hello, self.join_frame()] if self.keys.ready else [hello]

    def heartbeat_frame(self) -> Send:
        """The ``heartbeat`` to send every :attr:`heartbeat` seconds once welcomed."""
        return self._hello(P.HEARTBEAT)

    def _hello(self, kind: str) -> Send:
        body = P.hello_body(self.name, self.token, self.mesh, refs=self.refs, observer=self.observer,
                            roster=self.roster_version, decided=True)  # fmt: skip
        return Send(kind, body, Target.CONTROL, inline=self.inline)

    # ------------------------------------------------------------------ the host's life
    @property
    def host_timeout(self) -> float:
        """How long the host may stay silent before it counts as lost (seconds)."""
        return self._host_timeout if self._host_timeout is not None else HOST_TIMEOUT_BEATS * self.heartbeat

    def next_host_check(self, now: float) -> float:
        """When to call :meth:`check_host` next."""
        if self.host_connected:
            return self._last_heard + self.host_timeout + 1e-3
        return now + self.heartbeat

    def check_host(self, now: float) -> list[Output]:
        """The host is lost when it has been silent for longer than :attr:`host_timeout`."""
        if self.host_connected and now - self._last_heard > self.host_timeout:
            return self._lost(f"no word from the host for {self.host_timeout:g} s")
        return []

    def host_disconnected(self, now: float) -> list[Output]:
        """The control connection to the host closed: the host is lost (until it is heard again)."""
        return self._lost("the connection to the host closed") if self.host_connected else []

    def _lost(self, reason: str) -> list[Output]:
        self.host_connected = False
        return [HostChanged(False, reason)]

    def _heard(self, now: float) -> list[Output]:
        self._last_heard = now
        if self.host_connected or self.state is not MemberState.JOINED:
            return []
        self.host_connected = True
        return [HostChanged(True, "the host is back")]

    def _on_close(self, reason: str) -> list[Output]:
        if self.state in (MemberState.REFUSED, MemberState.CLOSED):
            return []
        self.state = MemberState.CLOSED
        self.host_connected = False
        return [HostClosed(reason), *self._surveys.decline_kept()]

    # ------------------------------------------------------------------ calls
    def call_frame(self, kind: str, subject: Any, *, timeout: float, quorum: int | None = None,
                   options: tuple[Any, ...] = (), rule: Rule | None = None, weights: dict[str, float] | None = None,
                   deliberation: C.DeliberationArgs | None = None) -> tuple[int, Send]:  # fmt: skip
        """Ask the host to run a poll (``kind="poll"``, ``subject`` the question), a vote
        (``"vote"``, ``subject`` the motion) or a deliberation (``"deliberate"``, with
        ``deliberation``): the call's id and the frame to send. Raises
        ``ValueError`` for arguments no host would take (checked here so the caller hears at once)."""
        return self._calls.frame(kind, subject, timeout=timeout, quorum=quorum, options=options, rule=rule,
                                 weights=weights, deliberation=deliberation, inline=self.inline)  # fmt: skip

    def forget_call(self, call_id: int) -> None:
        """The caller stopped waiting for ``call_id``: a result for it later is late."""
        self._calls.forget(call_id)

    def direct_reply(self, direct: X.Direct, outcome: tuple[bool, Any]) -> Send:
        """The answer to the host's ask ``direct``, from ``on_ask``'s outcome."""
        body = X.reply_body(self.name, self.token, direct.direct_id, outcome)
        return Send(X.DIRECT_REPLY, body, Target.CONTROL, inline=self.inline)

    def leave_frame(self) -> Send:
        """The ``leave`` to send when the membership ends normally."""
        return Send(P.LEAVE, P.hello_body(self.name, self.token), Target.CONTROL, inline=self.inline)

    # ------------------------------------------------------------------ control bus
    def receive_control(self, envelope: Envelope, now: float) -> list[Output]:
        """A frame from the host's control bus: what to send (replies to kept surveys) and the
        events (welcomed, refused, members changed, dial/undial, decision, ignored, the
        host lost, back or closed). Kinds a member does not know are ignored."""
        if self.state is MemberState.CLOSED:
            return []
        if envelope.kind == P.CLOSE:
            return self._on_close(P.parse_close(envelope))
        out = self._control(envelope)
        return out + self._heard(now)  # any frame from the host shows it is alive

    def _control(self, envelope: Envelope) -> list[Output]:
        try:
            if envelope.kind == P.BEAT:
                return self._on_beat(envelope)
            if envelope.kind == P.WELCOME:
                welcome = P.parse_welcome(envelope)
                if self._mine(welcome.name, welcome.token):
                    self.relay = R.relayed(envelope)
                    self._set_inline()
                out = self._on_welcome(welcome)
                if self.keys is not None and self.state is MemberState.JOINED:
                    self.keys.roster(K.member_keys_of(envelope), complete=False)  # may name the joiner only
                return out
            if envelope.kind == P.REFUSE:
                hello, reason = P.parse_refuse(envelope)
                return self._on_refuse(hello, reason)
            if envelope.kind == P.ROSTER:
                roster = P.parse_roster(envelope)
                if self.state is MemberState.JOINED and self.name not in roster.members:
                    return []  # sent before our join was processed; the next one includes us
                self.room_refs, self.observers = roster.refs, roster.observers
                self.roster_version = self.roster_version if roster.version is None else roster.version
                self.relay = R.relayed(envelope)
                self._set_inline()
                if self.keys is not None:
                    self.keys.roster(K.member_keys_of(envelope))
                return self._set_members(roster.members)
            if envelope.kind == C.RESULT:
                return self._calls.result(C.parse_result(envelope))
            if envelope.kind == X.DIRECT:
                direct = X.parse_direct(envelope)
                if not self._mine(direct.name, direct.token):
                    return []  # for another member: dropped unread
                self.counts["directs"] += 1
                return [DirectReceived(direct)]
            if envelope.kind == D.RESULT:
                result, decided = D.parse_result_frame(envelope)
                if decided and result.decision is not None:  # it stands for the decision frame too
                    self.counts["decisions"] += 1
                    return [DecisionReceived(result.decision), DeliberationReceived(result)]
                return [DeliberationReceived(result)]
            if envelope.kind == P.DECISION:
                decision = P.parse_decision(envelope)
                self.counts["decisions"] += 1
                return [DecisionReceived(decision)]
            return []
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            return [Ignored(str(exc))]

    def _on_beat(self, envelope: Envelope) -> list[Output]:
        if self.keys is None:
            return []
        keys = K.host_keys_of(envelope)
        if keys is None or not self.keys.host_keys(keys):
            return []
        if not self.mesh or self.state not in (MemberState.JOINING, MemberState.JOINED):
            return []  # the driver sends the join once it has a mesh address
        if self.state is MemberState.JOINED:
            # A restarted host: it must hear our keys first; our next heartbeat (sent only
            # while its polls can reach us) is our join.
            return list[Output](self.join_frames()[:1])
        return list[Output](self.join_frames())

    def _mine(self, name: str, token: int) -> bool:
        return (name, token) == (self.name, self.token)

    def _on_welcome(self, welcome: P.Welcome) -> list[Output]:
        if not self._mine(welcome.name, welcome.token) or self.state is MemberState.REFUSED:
            return []  # addressed to another joiner (the control bus reaches everyone)
        if welcome.heartbeat is not None:
            self.heartbeat = welcome.heartbeat
        self.room_refs = welcome.refs
        self._set_inline()
        self.observers = welcome.observers
        # A (re)join: no roster of this host's adopted since (the welcome may name the joiner
        # only); a heartbeat naming 0 asks for the roster if the one that follows is lost.
        self.roster_version = 0
        first = self.state is MemberState.JOINING
        self.state = MemberState.JOINED
        self.host_connected = self.host_connected or first  # the first welcome is not news
        out = self._set_members(welcome.members)
        if first:
            out.append(Welcomed(self.heartbeat))
            out += self._surveys.release(inline=self.inline)
        return out

    def _on_refuse(self, hello: P.Hello, reason: str) -> list[Output]:
        if not self._mine(hello.name, hello.token) or self.state is MemberState.REFUSED:
            return []
        after_welcome = self.state is MemberState.JOINED
        self.state = MemberState.REFUSED
        self.refusal = reason
        return [Refused(reason, after_welcome), *self._surveys.decline_kept()]

    def _set_members(self, members: dict[str, str]) -> list[Output]:
        """Adopt the host's roster, and say which mesh addresses to dial or drop.

        Of each pair of members exactly one dials the other (the one whose name sorts
        later), so every pair shares one connection and nobody hears a message twice.
        """
        mine = {self.mesh, self.host_mesh}

        def dialed(roster: dict[str, str]) -> set[str]:
            if self.relay:
                return set()  # a relayed room: the host's link (dialed apart) carries everything
            return {
                mesh for name, mesh in roster.items() if name < self.name and P.dialable(mesh) is None
            } - mine

        wanted, current = dialed(members), self._dialing
        out: list[Output] = [Undial(mesh) for mesh in sorted(current - wanted)]
        out += [Dial(mesh) for mesh in sorted(wanted - current)]
        self._dialing = wanted
        self.members = dict(members)
        out.append(MembersChanged(tuple(sorted(self.members))))
        return out
