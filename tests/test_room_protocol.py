"""Whole room conversations in memory: one HostProtocol, member incarnations, no sockets.

A hypothesis state machine passes the frames between the pure protocol objects
(``consensus.room.host_protocol`` / ``member_protocol``), choosing the order, drops,
duplicates, crashes, silences (time moves on) and hostile frames, and checks the
invariants of ``docs/rooms.md`` against a naive reference after every step. Every frame
goes through the real envelope codec, so each body the builders make has a wire form.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

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


class Conversation(RuleBasedStateMachine):
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

    @precondition(lambda self: self.live())
    @rule(i=st.integers(0, 99), vote=st.booleans())
    def member_call(self, i: int, vote: bool) -> None:
        """A member asks for a poll or a vote (no quorum: the reference completes a round
        only when everyone is done)."""
        proc = self.live()[i % len(self.live())]
        kind = C.VOTE_CALL if vote else C.POLL_CALL
        call_id, frame = proc.proto.call_frame(kind, "m" if vote else "q?", timeout=5,
                                               options=("yes", "no") if vote else ())  # fmt: skip
        proc.calls[call_id] = kind
        self.send_hello(proc, frame)

    @rule(body=st.dictionaries(
        st.sampled_from(["name", "token", "call", "kind", "timeout", "quorum", "question", "options", "rule"]),
        st.one_of(st.integers(-2, 1000), st.sampled_from(NAMES), st.sampled_from(["poll", "vote"]), st.none(),
                  st.just({"rule": "supermajority"}), st.lists(st.integers(), max_size=2))))  # fmt: skip
    def forged_call(self, body: Any) -> None:
        """A call under a name that is not a live member's token is never run."""
        outputs = self.host.receive_control(wire(C.CALL, "evil", body), next(self.pipes), self.now)
        for out in outputs:
            assert isinstance(out, Ignored) or (isinstance(out, Send) and out.kind == C.RESULT), out

    @rule()
    def poll(self) -> None:
        key, frames = self.host.rounds.open_poll("q?", quorum=None, now=self.now)
        self.survey(key, frames, P.POLL)

    @rule()
    def vote(self) -> None:
        key, frames = self.host.rounds.open_vote("m", options=["yes", "no"], vote_id=7, rule=None, quorum=None,
                                          weights=None, now=self.now)  # fmt: skip
        self.survey(key, frames, P.VOTE)

    @precondition(lambda self: any(not r.closed for r in self.rounds.values()))
    @rule(i=st.integers(0, 99))
    def close(self, i: int) -> None:
        key, ref = [(k, r) for k, r in self.rounds.items() if not r.closed][
            i % sum(not r.closed for r in self.rounds.values())
        ]
        if ref.kind == P.POLL:
            result = self.host.rounds.close_poll(key, self.now)
            assert dict(result.answers) == ref.answered and result.expected == ref.expected
            assert result.missing == ref.expected - ref.answered.keys() - result.errors.keys()
            if key in self.calls:
                self.host_out(self.host.call_result(self.calls.pop(key), result))
        else:
            decision, frame = self.host.rounds.close_vote(key, self.now)
            assert decision.electorate_weight == len(ref.expected)
            self.host_out([frame])
            if key in self.calls:
                self.host_out(self.host.call_result(self.calls.pop(key), decision))
        ref.closed = True
        self.host.rounds.replies_done(key) if i % 2 else None  # sometimes the late window is still open

    @precondition(lambda self: self.rounds)
    @rule(i=st.integers(0, 99), sender=st.sampled_from((*NAMES, "zed")),
          kind=st.sampled_from([P.ANSWER, P.BALLOT, P.ERROR, "reply"]),
          body=st.one_of(st.none(), st.integers(), st.just({"answer": 1}), st.just({"choice": "no"}),
                         st.just({"type": "X"}), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))  # fmt: skip
    def forged_reply(self, i: int, sender: str, kind: str, body: Any) -> None:
        """Anyone may reply under any name (there is no authentication): the host counts it
        as it would a member's reply, and a bad body is malformed."""
        key = list(self.rounds)[i % len(self.rounds)]
        self.check_reply(key, wire(kind, sender, body, re=key))

    @rule(kind=st.sampled_from([P.JOIN, P.HEARTBEAT, P.LEAVE, P.WELCOME, "nonsense"]),
          body=st.one_of(st.none(), st.text(max_size=4), st.dictionaries(
              st.sampled_from(["name", "token", "mesh", "refs"]),
              st.one_of(st.integers(-2, 2**64 + 1), st.text(max_size=5), st.booleans(), st.none(),
                        st.sampled_from([ENDS.mesh, ENDS.control, "tcp://h:0", "bogus"])))))  # fmt: skip
    def hostile_control(self, kind: str, body: Any) -> None:
        """Garbage on the control bus never raises; it is malformed, refused or ignored."""
        members, counts = self.host.members, dict(self.host.counts)
        outputs = self.host.receive_control(wire(kind, "evil", body), next(self.pipes), self.now)
        assert self.host.members == members
        for out in outputs:
            assert isinstance(out, Ignored) or (isinstance(out, Send) and out.kind == P.REFUSE), out
        if any(isinstance(out, Ignored) for out in outputs):
            assert self.host.counts["malformed"] == counts["malformed"] + 1
        self.host_out(outputs)
        for proc in self.procs:  # the members hear the same garbage on their control bus
            self.member_out(proc, proc.proto.receive_control(wire(kind, "host", body), self.now))

    @rule()
    def settle(self) -> None:
        """Deliver everything in order with no loss; then every member holding its name sees
        the host's roster, and dials exactly the members sorting before it. A member still
        joining repeats its join, as its driver does every ``JOIN_RESEND`` seconds (its
        welcome may have been lost)."""
        for _ in range(10):
            for proc in self.live():
                if proc.proto.state is MemberState.JOINING:
                    self.send_hello(proc, proc.proto.join_frame())
            if not self.to_host and not any(p.inbox for p in self.procs):
                break
            while self.to_host:
                envelope, proc, pipe = self.to_host.pop(0)
                self.host_out(
                    self.host.receive_control(
                        envelope, pipe, self.now, connected=proc is None or proc.connected
                    )
                )
            for proc in self.procs:
                while proc.inbox:
                    self.member_out(proc, proc.proto.receive_control(proc.inbox.pop(0), self.now))
        self.host_out([self.host.roster_frame()])
        for proc in self.procs:
            while proc.inbox:
                self.member_out(proc, proc.proto.receive_control(proc.inbox.pop(0), self.now))
        for proc in self.live():
            record = self.host.roster.get(proc.proto.name)
            if record is not None and record.token == proc.proto.token:
                assert proc.proto.state is MemberState.JOINED
                assert proc.proto.members == self.host.roster.meshes()
                assert proc.proto.inline == (not proc.proto.refs or self.host.inline)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def counts_add_up(self) -> None:
        c = self.host.counts
        assert c["joins"] == len(self.host.roster) + c["leaves"] + c["connection_losses"] + c["expired"]

    @invariant()
    def roster_holds_only_real_live_members(self) -> None:
        by_token = {p.proto.token: p for p in self.procs}
        for name in self.host.roster.names:  # observers included
            record = self.host.roster.get(name)
            assert record is not None
            proc = by_token[record.token]  # no forged member is ever admitted
            assert (
                proc.proto.name == name and record.mesh == proc.proto.mesh and record.refs == proc.proto.refs
            )
            assert record.observer == proc.proto.observer and (name in self.host.members) != record.observer
            assert record.pipe not in self.closed_pipes, "a closed connection's member is gone"
        assert self.host.inline == any(not self.host.roster.get(n).refs for n in self.host.roster.names)  # type: ignore[union-attr]

    @invariant()
    def rounds_complete_exactly_when_everyone_is_done(self) -> None:
        for key, ref in self.rounds.items():
            if not ref.closed:
                assert self.host.rounds.complete(key) == (ref.expected <= ref.done), (ref, self.host.members)

    @invariant()
    def observers_are_never_expected(self) -> None:
        observers = {p.proto.name for p in self.procs if p.proto.observer and p.connected}
        participants = {p.proto.name for p in self.procs if not p.proto.observer and p.connected}
        assert not set(self.host.members) & (observers - participants)
        for name in self.host.observers:
            assert name not in self.host.members

    @invariant()
    def members_dial_who_sorts_before_them(self) -> None:
        for proc in self.procs:
            me = proc.proto
            want = {m for n, m in me.members.items() if n < me.name} - {me.mesh, ENDS.mesh}
            assert proc.dialed == {m for m in want if P.dialable(m) is None}
            if me.state is MemberState.JOINED:
                assert me.name in me.members

    @invariant()
    def refused_members_stay_refused(self) -> None:
        for proc in self.procs:
            if proc.refused_after_welcome:
                assert proc.proto.state is MemberState.REFUSED


Conversation.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestConversation = Conversation.TestCase
