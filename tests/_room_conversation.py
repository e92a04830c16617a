"""The in-memory network of ``tests/test_room_protocol.py``: one HostProtocol, member
incarnations (:class:`Proc`), the naive reference of each round (:class:`RoundRef`), and
:class:`Network`, the state machine's half that carries frames: members start, heartbeat,
leave, lose their connection or fall silent; frames reach the host, the members, the
surveys and the replies in any order, kept, duplicated or dropped. The rounds, the
hostile frames and the invariants are the test's half (``Conversation``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from consensus.decide.poll import Verdict
from consensus.failure import Failure
from consensus.room import calls as C
from consensus.room import protocol as P
from consensus.room.events import (
    CallAnswered,
    CallRequested,
    DecisionReceived,
    Decline,
    Dial,
    Handle,
    HandlerKind,
    HostChanged,
    HostClosed,
    Ignored,
    Left,
    Output,
    Refused,
    Send,
    Target,
    Undial,
)
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol, MemberState
from patterns import EncodeError, Envelope, MessageTooLarge

NAMES = ("ann", "bob", "cy", "dee")


@dataclass(eq=False)
class Proc:
    """One member process: its protocol object and what the test network holds for it."""

    proto: MemberProtocol
    pipe: int
    behaviour: str  # "ok", "fail" or "garbage": what its handlers return
    connected: bool = True
    inbox: list[Envelope] = field(default_factory=list)  # control frames from the host
    surveys: list[tuple[int, Envelope]] = field(default_factory=list)  # (round key, survey)
    dialed: set[str] = field(default_factory=set)
    refused_after_welcome: bool = False
    handled: dict[int, int] = field(default_factory=dict)  # survey key -> round key
    calls: dict[int, str] = field(default_factory=dict)  # call id -> kind, waiting for a result


@dataclass
class RoundRef:
    """The naive reference of one round: who is expected, who is done (answered, failed, left)."""

    kind: str
    expected: frozenset[str]
    done: set[str] = field(default_factory=set)
    answered: dict[str, Any] = field(default_factory=dict)
    closed: bool = False


class Network(RuleBasedStateMachine):
    """Frames between one host and its members' incarnations, as a test network carries them."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT, missed_heartbeats=3)
        self.procs: list[Proc] = []
        self.to_host: list[tuple[Envelope, Proc | None, int]] = []  # (frame, from, pipe)
        self.replies: list[tuple[int, Envelope]] = []  # (round key, reply) to the host
        self.rounds: dict[int, RoundRef] = {}
        self.tokens = itertools.count(10**12)
        self.pipes = itertools.count(1)
        self.survey_keys = itertools.count(1)
        self.closed_pipes: set[int] = set()
        self.calls: dict[int, Any] = {}  # round key -> the member's call it runs

    # ------------------------------------------------------------------ plumbing
    def host_out(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Send):
                assert out.to is Target.CONTROL
                envelope = wire(out.kind, "host", out.body)
                for proc in self.procs:
                    if proc.connected:
                        proc.inbox.append(envelope)
            elif isinstance(out, Left):
                for ref in self.rounds.values():
                    if not ref.closed:
                        ref.done.update(name for name in out.names if name in ref.expected)
            elif isinstance(out, CallRequested):  # the driver runs it as room.poll / room.vote would
                call = out.call
                if call.kind == C.POLL_CALL:
                    key, frames = self.host.rounds.open_poll(call.subject, quorum=call.quorum, now=self.now)
                    self.survey(key, frames, P.POLL)
                else:
                    key, frames = self.host.rounds.open_vote(call.subject, options=call.options, vote_id=7,
                                                      rule=call.rule, quorum=call.quorum,
                                                      weights=call.weights, now=self.now)  # fmt: skip
                    self.survey(key, frames, P.VOTE)
                self.calls[key] = call

    def member_out(self, proc: Proc, outputs: list[Output]) -> None:
        for out in outputs:
            assert not isinstance(out, Ignored) or proc.proto.counts["malformed"] > 0
            if isinstance(out, Dial):
                assert out.address not in proc.dialed
                proc.dialed.add(out.address)
            elif isinstance(out, Undial):
                proc.dialed.remove(out.address)
            elif isinstance(out, Refused):  # join() raises NameTaken: the process closes its sockets
                proc.refused_after_welcome = out.after_welcome
                self.lose(proc)
            elif isinstance(out, Handle):
                assert proc.proto.state is MemberState.JOINED, "a handler runs only once welcomed"
                self.answer(proc, out)
            elif isinstance(out, Send):
                assert out.to is Target.REPLY
                self.reply(proc, out)
            elif isinstance(out, Decline):
                proc.handled.pop(out.survey)
            elif isinstance(out, DecisionReceived):
                assert out.decision.options == ("yes", "no")
            elif isinstance(out, CallAnswered):
                kind = proc.calls.pop(out.answer.call_id)  # only for a call it waits for, once
                result = out.answer.poll if kind == C.POLL_CALL else out.answer.decision
                assert (result is not None) != bool(out.answer.refused)  # refused: not a member (yet)
            elif isinstance(out, HostChanged):
                assert out.connected == proc.proto.host_connected
            elif isinstance(out, HostClosed):  # join() raises RoomClosed: the process closes its sockets
                assert proc.proto.state is MemberState.CLOSED
                self.lose(proc)

    def answer(self, proc: Proc, handle: Handle) -> None:
        outcome: tuple[bool, Any]
        if proc.behaviour == "fail":
            outcome = (False, Failure("RuntimeError", "cannot"))
        elif proc.behaviour == "garbage":
            outcome = (True, {"choice": "yes", "bogus": 1} if handle.handler is HandlerKind.VOTE else {1, 2})
        else:
            outcome = (True, proc.proto.name if handle.handler is HandlerKind.POLL else handle.args[1][0])
        self.reply(proc, proc.proto.reply(handle.survey, outcome))

    def reply(self, proc: Proc, send: Send) -> None:
        round_key = proc.handled.pop(send.survey)
        try:
            envelope = wire(send.kind, proc.proto.name, send.body, re=round_key)
        except (EncodeError, MessageTooLarge) as exc:  # what the driver does when a reply has no wire form
            send = proc.proto.unencodable(send.survey, exc)
            envelope = wire(send.kind, proc.proto.name, send.body, re=round_key)
        proc.proto.sent(send.survey)
        self.replies.append((round_key, envelope))

    def live(self) -> list[Proc]:
        return [proc for proc in self.procs if proc.connected]

    # ------------------------------------------------------------------ members come and go
    @rule(name=st.sampled_from(NAMES), behaviour=st.sampled_from(["ok", "ok", "fail", "garbage"]),
          refs=st.booleans(), observer=st.sampled_from([False, False, False, True]))  # fmt: skip
    def start(self, name: str, behaviour: str, refs: bool, observer: bool) -> None:
        token = next(self.tokens)
        proto = MemberProtocol(name=name, token=token, host_mesh=ENDS.mesh, on_poll=True, on_vote=True,
                               refs=refs, observer=observer)  # fmt: skip
        proto.set_mesh(f"ipc:///tmp/room-test.m-{token}")
        proc = Proc(proto, next(self.pipes), behaviour)
        self.procs.append(proc)
        self.send_hello(proc, proto.join_frame())

    def send_hello(self, proc: Proc, frame: Send) -> None:
        self.to_host.append((wire(frame.kind, proc.proto.name, frame.body), proc, proc.pipe))

    @precondition(lambda self: self.live())
    @rule(i=st.integers(0, 99))
    def heartbeat(self, i: int) -> None:
        """A welcomed member heartbeats; one still joining repeats its join."""
        proc = self.live()[i % len(self.live())]
        if proc.proto.state is MemberState.JOINED:
            self.send_hello(proc, proc.proto.heartbeat_frame())
        elif proc.proto.state is MemberState.JOINING:
            self.send_hello(proc, proc.proto.join_frame())

    @precondition(lambda self: self.live())
    @rule(i=st.integers(0, 99))
    def leave(self, i: int) -> None:
        proc = self.live()[i % len(self.live())]
        self.send_hello(proc, proc.proto.leave_frame())

    @precondition(lambda self: self.live())
    @rule(i=st.integers(0, 99))
    def connection_lost(self, i: int) -> None:
        self.lose(self.live()[i % len(self.live())])

    def lose(self, proc: Proc) -> None:
        if proc.connected:
            proc.connected = False
            self.closed_pipes.add(proc.pipe)
            self.host_out(self.host.connection_closed(proc.pipe, self.now))

    @rule(dt=st.sampled_from([0.1, 0.5, 1.5, 2.5, 3.5]))
    def silence(self, dt: float) -> None:
        self.now += dt
        self.host_out(self.host.expire(self.now))
        for proc in self.live():
            self.member_out(proc, proc.proto.check_host(self.now))
        assert all(self.now - self.host.roster.get(n).last_seen <= 3 * HEARTBEAT for n in self.host.members)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ the network
    @precondition(lambda self: self.to_host)
    @rule(i=st.integers(0, 99), keep=st.booleans())
    def deliver_to_host(self, i: int, keep: bool) -> None:
        """Deliver one frame to the host, in any order; ``keep``: it comes again later."""
        envelope, proc, pipe = (
            self.to_host[i % len(self.to_host)] if keep else self.to_host.pop(i % len(self.to_host))
        )
        connected = proc is None or proc.connected
        self.host_out(self.host.receive_control(envelope, pipe, self.now, connected=connected))

    @precondition(lambda self: any(p.inbox for p in self.procs))
    @rule(i=st.integers(0, 99), j=st.integers(0, 99), keep=st.booleans(), drop=st.booleans())
    def deliver_to_member(self, i: int, j: int, keep: bool, drop: bool) -> None:
        waiting = [p for p in self.procs if p.inbox]
        proc = waiting[i % len(waiting)]
        envelope = proc.inbox[j % len(proc.inbox)] if keep else proc.inbox.pop(j % len(proc.inbox))
        if not drop:
            self.member_out(proc, proc.proto.receive_control(envelope, self.now))

    @precondition(lambda self: any(p.surveys for p in self.procs))
    @rule(i=st.integers(0, 99), keep=st.booleans())
    def deliver_survey(self, i: int, keep: bool) -> None:
        waiting = [p for p in self.procs if p.surveys]
        proc = waiting[i % len(waiting)]
        round_key, envelope = proc.surveys[0] if keep else proc.surveys.pop(0)
        key = next(self.survey_keys)
        proc.handled[key] = round_key
        self.member_out(proc, proc.proto.receive_survey(key, envelope, self.now))

    @precondition(lambda self: self.replies)
    @rule(i=st.integers(0, 99), keep=st.booleans())
    def deliver_reply(self, i: int, keep: bool) -> None:
        round_key, envelope = (
            self.replies[i % len(self.replies)] if keep else self.replies.pop(i % len(self.replies))
        )
        self.check_reply(round_key, envelope)

    def check_reply(self, round_key: int, envelope: Envelope) -> None:
        ref = self.rounds.get(round_key)
        before = dict(self.host.counts)
        outcome = self.host.rounds.reply(round_key, envelope, self.now)
        if outcome.verdict is None:  # malformed: counted, nothing else
            assert self.host.counts["malformed"] == before["malformed"] + 1
            return
        if ref is None or ref.closed:
            assert outcome.verdict is Verdict.CLOSED
            return
        name = envelope.sender
        expected = (Verdict.UNEXPECTED if name not in ref.expected else
                    Verdict.DUPLICATE if name in ref.done else Verdict.ACCEPTED)  # fmt: skip
        assert outcome.verdict is expected, (outcome, name, ref)
        if expected is Verdict.ACCEPTED:
            ref.done.add(name)
            if envelope.kind == P.ANSWER:
                ref.answered[name] = envelope.body["answer"]

    # ------------------------------------------------------------------ polls and votes
    def survey(self, key: int, frames: list[Send], kind: str) -> None:
        self.rounds[key] = RoundRef(kind, frozenset(self.host.members))
        for frame in frames:
            assert frame.to is Target.SURVEY and frame.inline == self.host.inline
            envelope = wire(frame.kind, "host", frame.body)
            for proc in self.live():
                proc.surveys.append((key, envelope))
        assert bool(frames) == bool(self.host.members), "a round with nobody to ask sends no survey"

    @rule()
    def host_beat(self) -> None:
        self.host_out([self.host.beat_frame()])

    @rule()
    def close_room(self) -> None:
        """The host closes the room: every member that hears it is done (a later member may
        join the same host object: harmless here)."""
        self.host_out([self.host.close_frame()])

