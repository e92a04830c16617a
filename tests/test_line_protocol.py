"""The sans-IO end of a hotline (``consensus.hotline.protocol.LineProtocol``), in memory.

Two protocol objects, a listener and a dialer, are wired together by the test: frames
travel in lists, and hypothesis chooses what happens next (asks, streamed asks, answers
in any order and of any kind, deliveries out of order, duplicated and dropped frames,
time passing, expiries, heartbeats, connections dropping, hostile frames). Every answer
frame's fate is checked against the naive ask table in ``tests/_reference_asks.py``, and
the counters and the greeting state against a model kept by the test. A second test
delivers in order (one connection is FIFO) and checks that every ask gets exactly the
answers sent for it, whatever order the asks are answered in. Plain examples of the
greeting are in ``tests/test_line_greeting.py``.
"""

from __future__ import annotations

from typing import Any

from _reference_asks import RefAsks
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consensus.hotline.events import (
    Answer,
    AskReceived,
    Disconnected,
    Greeted,
    Ignored,
    LineState,
    Malformed,
    Message,
    PingReceived,
    Role,
)
from consensus.hotline.foreign import TOP_BIT
from consensus.hotline.frames import ANSWER_KINDS
from consensus.hotline.protocol import LineProtocol
from patterns import Envelope

HEARTBEAT, MISSED = 1.0, 3
SIDES = ("L", "D")
OTHER = {"L": "D", "D": "L"}


def new_side(side: str) -> LineProtocol:
    role = Role.LISTENER if side == "L" else Role.DIALER
    return LineProtocol(
        role, side, heartbeat=HEARTBEAT, missed_heartbeats=MISSED, first_id=1000 * (side == "D")
    )


HOSTILE = st.one_of(
    st.builds(  # unknown kinds, answers without an id or with a bad one, asks with bad bodies
        Envelope,
        kind=st.sampled_from(["nope", "", "ASK", "reply", "chunk", "end", "error", "ask"]),
        sender=st.just("evil"),
        id=st.integers(0, 2**64 - 1),
        body=st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just({"stream": "yes", "v": 1})),
        re=st.one_of(st.none(), st.integers(0, 1100), st.just("12")),
    ),
)


class Conversation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.pipe = 1
        self.p = {s: new_side(s) for s in SIDES}
        self.ref = {s: RefAsks() for s in SIDES}
        self.wire: dict[str, list[tuple[Envelope, int]]] = {s: [] for s in SIDES}  # frames on their way to s
        self.incoming: dict[str, list[AskReceived]] = {s: [] for s in SIDES}  # asks s may answer
        self.heard = dict.fromkeys(SIDES, 0.0)
        self.greeted = dict.fromkeys(SIDES, False)  # s heard the other's hello on the current pipe
        self.malformed = dict.fromkeys(SIDES, 0)
        self.values = dict.fromkeys(SIDES, 0)
        self.taken = False  # the dialer's last connection closed before the listener's hello
        self.refused = 0
        self.connections = dict.fromkeys(SIDES, 0)
        self.up = True
        for s in SIDES:
            self._send(s, self.p[s].pipe_up(self.pipe, self.now))

    def _send(self, side: str, envelope: Envelope | None) -> None:
        if envelope is not None:
            self.wire[OTHER[side]].append((envelope, self.pipe))
            if envelope.kind == "hello":
                self.p[side].hello_sent(envelope)  # (sent at once; late: tests/test_line_hello_first.py)

    def _feed(self, to: str, envelope: Envelope, pipe: int) -> None:
        """Hand one frame to ``to`` and check the event against the reference and the model."""
        event = self.p[to].receive(envelope, pipe, self.now)
        self.heard[to] = self.now
        kind = envelope.kind
        if kind in ANSWER_KINDS and type(envelope.re) is int:
            action, _ = self.ref[to].on_reply(kind, envelope.re)
            if action == "drop":
                assert event == Ignored("stale answer")
            elif action == "violation":
                assert isinstance(event, Answer) and event.kind == "violation" and event.ask_id == envelope.re
            else:
                assert isinstance(event, Answer) and event.kind == kind and event.ask_id == envelope.re
                if kind == "error":
                    assert isinstance(event.body, dict) and isinstance(event.body["type"], str)
                    assert isinstance(event.body.get("message", ""), str)
                else:
                    assert event.body == envelope.body
        elif kind in ANSWER_KINDS:
            assert isinstance(event, Malformed) and "id of the ask" in event.reason
            self.malformed[to] += 1
        elif kind == "ask":
            body = envelope.body
            if isinstance(body, dict) and "v" in body and type(body.get("stream", False)) is bool:
                assert isinstance(event, AskReceived) and event.ask_id == envelope.id and event.pipe == pipe
                self.incoming[to].append(event)
            else:
                assert isinstance(event, Malformed) and f"ask {envelope.id}" in event.reason
                self.malformed[to] += 1
        elif kind == "msg":
            assert event == Message(envelope.body)
            self.values[to] += 1
        elif kind == "ping":
            assert isinstance(event, PingReceived) and event.pong.kind == "pong"
            self._send(to, event.pong)
        elif kind == "pong":
            assert event == Ignored("pong")
        elif kind == "hello":
            if pipe != self.pipe or not self.up:
                assert isinstance(event, Ignored)
            elif self.greeted[to]:
                assert event == Ignored("hello repeated")
            else:
                assert isinstance(event, Greeted)
                self.greeted[to] = True
                self.connections[to] += 1
                if to == "D":
                    self.taken = False
                self._send(to, event.hello)
        else:
            assert isinstance(event, Malformed) and repr(kind) in event.reason
            self.malformed[to] += 1

    # ------------------------------------------------------------------ rules
    @rule(side=st.sampled_from(SIDES), stream=st.booleans(), timeout=st.sampled_from([0.5, 2.0, 10.0]))
    def ask(self, side: str, stream: bool, timeout: float) -> None:
        envelope = self.p[side].ask({"n": 1}, stream=stream, deadline=self.now + timeout, wall_deadline=1e9)
        assert envelope.kind == "ask" and envelope.body == {"v": {"n": 1}, "stream": stream}
        self.ref[side].open(envelope.id, self.now + timeout, stream)
        self._send(side, envelope)

    @rule(side=st.sampled_from(SIDES))
    def message(self, side: str) -> None:
        self._send(side, self.p[side].message("hi"))

    @precondition(lambda self: any(self.wire.values()))
    @rule(to=st.sampled_from(SIDES), index=st.integers(0, 20), keep=st.booleans())
    def deliver(self, to: str, index: int, keep: bool) -> None:
        """Deliver any frame in flight (out of order); ``keep``: it will come again (a duplicate)."""
        if not self.wire[to]:
            to = OTHER[to]
        frames = self.wire[to]
        envelope, pipe = frames[index % len(frames)] if keep else frames.pop(index % len(frames))
        self._feed(to, envelope, pipe)

    @precondition(lambda self: any(self.wire.values()))
    @rule(to=st.sampled_from(SIDES), index=st.integers(0, 20))
    def drop(self, to: str, index: int) -> None:
        frames = self.wire[to] or self.wire[OTHER[to]]
        frames.pop(index % len(frames))

    @precondition(lambda self: any(self.incoming.values()))
    @rule(side=st.sampled_from(SIDES), index=st.integers(0, 20), kind=st.sampled_from(ANSWER_KINDS),
          fitting=st.booleans(), again=st.booleans())  # fmt: skip
    def answer(self, side: str, index: int, kind: str, fitting: bool, again: bool) -> None:
        """Answer an ask (in any order): with a kind that fits it, or any kind; ``again``
        keeps it answerable (a duplicate answer, stale at the asker)."""
        asks = self.incoming[side] or self.incoming[OTHER[side]]
        side = side if self.incoming[side] else OTHER[side]
        ask = asks[index % len(asks)] if again else asks.pop(index % len(asks))
        if fitting:
            kind = (
                {"reply": "end", "chunk": "chunk", "end": "end", "error": "error"}[kind]
                if ask.stream
                else ("error" if kind == "error" else "reply")
            )
        body: Any = {"type": "ValueError", "message": "no"} if kind == "error" else ["answer", ask.ask_id]
        envelope = self.p[side].answer(ask.ask_id, ask.pipe, kind, body)
        if ask.pipe != self.pipe or (not self.up and ask.pipe == self.pipe):
            assert envelope is None  # that connection has closed: nobody waits
        else:
            assert envelope is not None and envelope.re == ask.ask_id and envelope.kind == kind
            self._send(side, envelope)

    @rule(to=st.sampled_from(SIDES), envelope=HOSTILE)
    def hostile(self, to: str, envelope: Envelope) -> None:
        self._feed(to, envelope, self.pipe)

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 2.5]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(side=st.sampled_from(SIDES))
    def expire(self, side: str) -> None:
        assert sorted(self.p[side].expire(self.now)) == self.ref[side].expire(self.now)

    @precondition(lambda self: any(r.asks for r in self.ref.values()))
    @rule(side=st.sampled_from(SIDES), index=st.integers(0, 20))
    def give_up(self, side: str, index: int) -> None:
        ref = self.ref[side] if self.ref[side].asks else self.ref[OTHER[side]]
        side = side if self.ref[side].asks else OTHER[side]
        ask_id = sorted(ref.asks)[index % len(ref.asks)]
        assert self.p[side].give_up(ask_id) == ref.close(ask_id) is True
        assert self.p[side].give_up(ask_id) is False

    @rule(side=st.sampled_from(SIDES))
    def tick(self, side: str) -> None:
        out = self.p[side].tick(self.now)
        if not self.up:
            assert out is None
        elif self.now - self.heard[side] > HEARTBEAT * MISSED:
            assert (
                isinstance(out, Disconnected) and out.silent and out.kind == "lost" and out.pipe == self.pipe
            )
            assert list(out.asks) == self.ref[side].fail_all()
            assert "silent" in out.reason
            self._drop_connection(closer=side)
        else:
            assert isinstance(out, Envelope) and out.kind == "ping"
            self._send(side, out)

    @precondition(lambda self: self.up)
    @rule()
    def connection_drops(self) -> None:
        self._drop_connection(closer=None)

    def _drop_connection(self, closer: str | None) -> None:
        for s in SIDES:
            event = self.p[s].pipe_down(self.pipe, self.now)
            if s == closer:
                assert event is None  # it already dropped the connection itself
                continue
            assert isinstance(event, Disconnected) and event.pipe == self.pipe
            if self.greeted[s]:
                assert event.kind == "lost"
            else:  # closed before the peer's hello: the dialer takes the line for taken
                assert event.kind == ("taken" if s == "D" else "lost")
                if s == "D":
                    self.taken = True
                    self.refused += 1
            assert list(event.asks) == self.ref[s].fail_all()
        self.up = False
        self.greeted = dict.fromkeys(SIDES, False)

    @precondition(lambda self: not self.up)
    @rule()
    def reconnect(self) -> None:
        self.pipe += 1
        self.up = True
        for s in SIDES:
            self._send(s, self.p[s].pipe_up(self.pipe, self.now))
            self.heard[s] = self.now

    # ------------------------------------------------------------------ invariants
    @invariant()
    def tables_agree(self) -> None:
        for s in SIDES:
            t = self.p[s].ask_statistics()
            ref = self.ref[s].statistics()
            got = {"open": t.open, "opened": t.opened, "answered": t.answered, "expired": t.expired,
                   "failed": t.failed, "stale": t.stale, "malformed": t.malformed, "unsent": t.unsent}  # fmt: skip
            assert got == ref
            assert t.opened == t.open + t.answered + t.expired + t.failed + self.ref[s].closed

    @invariant()
    def state_agrees(self) -> None:
        for s in SIDES:
            p = self.p[s]
            assert p.connected == self.greeted[s]
            stats = p.statistics()
            assert stats.malformed == self.malformed[s]
            if self.greeted[s]:
                expected = LineState.CONNECTED
            elif s == "D" and self.taken:
                expected = LineState.TAKEN
            else:
                expected = LineState.GREETING if self.up else LineState.WAITING
            assert p.state is expected
            assert stats.connections == self.connections[s]
            assert stats.refused == (self.refused if s == "D" else 0)
            assert (p.state is LineState.TAKEN) <= (s == "D")  # only a dialer is ever refused


Conversation.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
TestConversation = Conversation.TestCase


# ---------------------------------------------------------------- in order: every ask gets its answers
@settings(max_examples=200, deadline=None)
@given(
    asks=st.lists(st.tuples(st.sampled_from(SIDES), st.integers(0, 3)), min_size=1, max_size=12),
    choices=st.lists(st.integers(0, 255), max_size=120),
)
def test_in_order_every_ask_gets_exactly_its_answers(asks: list[tuple[str, int]], choices: list[int]) -> None:
    """Asks from both sides (``n`` = 0 a plain ask, else a stream of ``n - 1`` chunks and an
    end), answered in a random order, frames delivered FIFO per direction with the two
    directions interleaved at random: each asker sees its own answers, in order, and
    nothing is stale, malformed or left open."""
    p = {s: new_side(s) for s in SIDES}
    wire: dict[str, list[Envelope]] = {s: [] for s in SIDES}
    for s in SIDES:
        hello = p[s].pipe_up(1, 0.0)
        assert hello is not None and hello.kind == "hello"
        wire[OTHER[s]].append(hello)
        assert p[s].hello_sent(hello) is False  # (no hello from the peer yet: not connected)
    expected: dict[tuple[str, int], list[tuple[str, Any]]] = {}
    got: dict[tuple[str, int], list[tuple[str, Any]]] = {}
    pending: list[tuple[str, AskReceived]] = []  # (answering side, ask)
    for side, n in asks:
        envelope = p[side].ask(n, stream=n > 0, deadline=100.0, wall_deadline=1e9)
        wire[OTHER[side]].append(envelope)
        key = (side, envelope.id)
        got[key] = []
        chunks = [("chunk", [envelope.id, i]) for i in range(n - 1)]
        expected[key] = [("reply", [envelope.id])] if n == 0 else [*chunks, ("end", [envelope.id, "end"])]

    def step(to: str) -> None:
        event = p[to].receive(wire[to].pop(0), 1, 1.0)
        if isinstance(event, AskReceived):
            pending.append((to, event))
        elif isinstance(event, Answer):
            got[(to, event.ask_id)].append((event.kind, event.body))
        else:
            assert isinstance(event, Greeted), event

    it = iter(choices)

    def pick(k: int) -> int:
        return next(it, 0) % k

    while any(wire.values()) or pending:
        choice = pick(3)
        if pending and (choice == 2 or not any(wire.values())):  # answer an ask now, all of it
            side, ask = pending.pop(pick(len(pending)))
            asker = OTHER[side]
            for kind, body in expected[(asker, ask.ask_id)]:
                answer = p[side].answer(ask.ask_id, ask.pipe, kind, body)
                assert answer is not None
                wire[asker].append(answer)
        else:
            to = SIDES[choice % 2] if wire[SIDES[choice % 2]] else OTHER[SIDES[choice % 2]]
            if wire[to]:
                step(to)
    assert got == expected
    for s in SIDES:
        stats, table = p[s].statistics(), p[s].ask_statistics()
        assert p[s].connected and stats.state is LineState.CONNECTED and stats.connections == 1
        assert table.open == table.stale == table.malformed == stats.malformed == 0
        assert table.answered == sum(1 for side, _ in asks if side == s)
        assert stats.asks_served == sum(1 for side, _ in asks if side != s)


# ---------------------------------------------------------------- asks kept by another reader
@settings(max_examples=100, deadline=None)
@given(
    first=st.integers(0, 2**62 - 1),
    opened=st.integers(1, 40),
    elsewhere=st.lists(st.integers(0, 2**63 - 1), max_size=20),
    counts=st.tuples(*[st.integers(0, 1000)] * 5),
)
def test_asks_kept_elsewhere_never_meet_the_protocols_and_count_in_its_books(
    first: int, opened: int, elsewhere: list[int], counts: tuple[int, int, int, int, int]
) -> None:
    """``consensus.hotline.foreign`` and ``thread_asks`` number their asks with the top bit
    set: the protocol's own ids (starting below ``2**62``) never reach it, so an answer to
    one of theirs is never delivered to one of the protocol's asks; what they report with
    ``count_elsewhere`` adds to the protocol's books, and ``heard`` keeps the peer alive."""
    p = LineProtocol(Role.DIALER, "D", heartbeat=HEARTBEAT, missed_heartbeats=MISSED, first_id=first)
    p.pipe_up(1, 0.0)
    ids = [p.ask(i, stream=False, deadline=100.0, wall_deadline=1e9).id for i in range(opened)]
    assert all(ask_id < TOP_BIT for ask_id in ids)
    for n in elsewhere:
        event = p.receive(Envelope("reply", "L", 7, "x", n | TOP_BIT), 1, 1.0)
        assert isinstance(event, Ignored)  # stale to the protocol: not one of its asks
    before = p.ask_statistics()
    p.asks.count_elsewhere(*counts)
    after = p.ask_statistics()
    assert (after.opened, after.answered, after.expired, after.failed, after.malformed) == (
        before.opened + counts[0], before.answered + counts[1], before.expired + counts[2],
        before.failed + counts[3], before.malformed + counts[4],
    )  # fmt: skip
    assert after.open == opened and after.stale == len(elsewhere)
    p.heard(100.0)  # a frame another reader took, just before the heartbeat: not silent
    assert not isinstance(p.tick(100.0 + HEARTBEAT), Disconnected)
