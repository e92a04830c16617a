"""Whole room conversations in memory: one HostProtocol, member incarnations, no sockets.

A hypothesis state machine passes the frames between the pure protocol objects
(``consensus.room.host_protocol`` / ``member_protocol``), choosing the order, drops,
duplicates, crashes, silences (time moves on) and hostile frames, and checks the
invariants of ``docs/rooms.md`` against a naive reference after every step. Every frame
goes through the real envelope codec, so each body the builders make has a wire form.
"""

from __future__ import annotations

from typing import Any

from _room_conversation import NAMES, Network
from _rooms import ENDS, wire
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from consensus.room import calls as C
from consensus.room import protocol as P
from consensus.room.events import Ignored, Send
from consensus.room.member_protocol import MemberState


class Conversation(Network):
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
                self.host_out(self.host.calls.result(self.calls.pop(key), result))
        else:
            decision, frame = self.host.rounds.close_vote(key, self.now)
            assert decision.electorate_weight == len(ref.expected)
            self.host_out([frame])
            if key in self.calls:
                self.host_out(self.host.calls.result(self.calls.pop(key), decision))
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
                envelope, sender, pipe = self.to_host.pop(0)
                self.host_out(
                    self.host.receive_control(
                        envelope, pipe, self.now, connected=sender is None or sender.connected
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
    def inline_follows_what_it_depends_on(self) -> None:
        """``inline`` is kept as an attribute (read per answer): it always equals the rule."""
        for proc in self.procs:
            me = proc.proto
            rule = not (me.refs and me.room_refs) or me.relay
            assert me.inline == rule, (me.refs, me.room_refs, me.relay)

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
