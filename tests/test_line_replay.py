"""A sealed hotline's greeting must be fresh: a recorded hello, replayed, switches nothing.

In memory, two ends (a :class:`LineProtocol` over its :class:`LineKeys`' guard, as the
socket drives them) under any interleaving of their frames, replays of anything a tap saw
and restarts of either end: they always end connected to each other's current run, a
replay never moves an end's session, and an end answers no more hellos than it accepted.
Over real processes: ``tests/test_line_replay_processes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.hotline.events import AskReceived, Greeted, Malformed, PingReceived, Rehello, Role
from consensus.hotline.protocol import LineProtocol
from consensus.trust.line import LineKeys
from patterns import Envelope, FirstOpened, Unauthenticated, decode, encode

BASE = b"\x07" * 32


class End:
    """One run of one end: its keys, its protocol, and the hellos it sent per connection."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.keys = LineKeys(BASE, listener=role is Role.LISTENER)
        self.protocol = LineProtocol(role, role.value, heartbeat=1.0, missed_heartbeats=3, keys=self.keys)
        self.hellos: dict[int, int] = {}  # pipe -> hellos sent on it
        self.accepted: dict[int, int] = {}  # pipe -> hellos accepted on it (guard and socket)
        self.refused: list[str] = []

    def seal(self, envelope: Envelope, pipe: int) -> bytes:
        if envelope.kind == "hello":
            self.hellos[pipe] = self.hellos.get(pipe, 0) + 1
            self.protocol.hello_sent(envelope)  # (sent as made; late: tests/test_line_hello_first.py)
        return self.keys.guard.seal(encode(envelope), envelope.kind)

    def take(self, data: bytes, pipe: int) -> list[bytes]:
        """Receive one frame as a sealed socket does; the frames it makes this end send."""
        try:
            opened = self.keys.guard.open(data)
        except Unauthenticated as exc:
            self.refused.append(exc.reason)
            return []
        envelope = decode(opened.payload)
        if opened.kinds is not None and envelope.kind not in opened.kinds:
            self.refused.append("kind")
            return []
        if isinstance(opened, FirstOpened):
            opened.accepted()
        if envelope.kind == "hello":
            self.accepted[pipe] = self.accepted.get(pipe, 0) + 1
        event = self.protocol.receive(envelope, pipe, 0.0)
        out = [event.hello] if isinstance(event, (Greeted, Rehello)) and event.hello is not None else []
        out += [event.pong] if isinstance(event, PingReceived) else []
        return [self.seal(envelope, pipe) for envelope in out]


@dataclass
class Wire:
    """A listener and a dialer on one connection at a time; ``seen``: what a tap recorded."""

    ends: dict[Role, End] = field(default_factory=lambda: {role: End(role) for role in Role})
    queues: dict[Role, list[bytes]] = field(default_factory=lambda: {role: [] for role in Role})  # to that end
    pipe: int = 0
    seen: dict[Role, list[bytes]] = field(default_factory=lambda: {role: [] for role in Role})  # sent to that end

    def connect(self) -> None:
        self.pipe += 1
        for role in Role:  # (frames unread when their connection dropped: a tap saw them too)
            self.seen[role] += self.queues[role]
            self.queues[role].clear()
        for role, end in self.ends.items():
            hello = end.protocol.pipe_up(self.pipe, 0.0)
            if hello is not None:
                self.queues[other(role)].append(end.seal(hello, self.pipe))

    def drop(self, restart: tuple[Role, ...] = ()) -> None:
        for role in Role:
            if role in restart:
                self.ends[role] = End(role)
            else:
                self.ends[role].protocol.pipe_down(self.pipe, 0.0)
        self.connect()

    def deliver(self, role: Role) -> None:
        if self.queues[role]:
            data = self.queues[role].pop(0)
            self.seen[role].append(data)
            for reply in self.ends[role].take(data, self.pipe):
                self.queues[other(role)].append(reply)

    def replay(self, role: Role, index: int) -> None:
        """A recorded frame sent to ``role`` again, into the current connection."""
        if not self.seen[role]:
            return
        end = self.ends[role]
        live, peer, sender = end.protocol.connected, end.keys.peer_kid, end.keys.guard.sender
        replies = end.take(self.seen[role][index % len(self.seen[role])], self.pipe)
        if live:  # a connected end sends nothing for a replay and keeps its session
            assert replies == [] and end.protocol.connected
            assert (end.keys.peer_kid, end.keys.guard.sender) == (peer, sender)
        self.queues[other(role)].extend(replies)

    def drain(self) -> None:
        for _ in range(100):
            if not any(self.queues.values()):
                return
            for role in Role:
                self.deliver(role)
        raise AssertionError(f"the greeting never ends: {self.queues}")

    def check_connected(self) -> None:
        listener, dialer = self.ends[Role.LISTENER], self.ends[Role.DIALER]
        assert listener.protocol.connected and dialer.protocol.connected
        assert listener.keys.peer_kid == dialer.keys.kid and dialer.keys.peer_kid == listener.keys.kid
        ask = dialer.seal(Envelope("ask", "dialer", 7, body={"v": 1, "stream": False}), self.pipe)
        assert decode(listener.keys.guard.open(ask).payload).kind == "ask"  # the session works both ways
        reply = listener.seal(Envelope("reply", "listener", 8, body=2, re=7), self.pipe)
        assert decode(dialer.keys.guard.open(reply).payload).kind == "reply"
        for end in (listener, dialer):  # no amplification: a hello sent per hello accepted, plus one
            for pipe, sent in end.hellos.items():
                assert sent <= 1 + end.accepted.get(pipe, 0), (end.role, pipe, end.hellos, end.accepted)


def other(role: Role) -> Role:
    return Role.DIALER if role is Role.LISTENER else Role.LISTENER


def test_a_first_greeting_takes_one_more_frame_each_way() -> None:
    wire = Wire()
    wire.connect()
    wire.drain()
    wire.check_connected()
    assert all(sum(end.hellos.values()) == 2 for end in wire.ends.values())  # blind, then echoing
    assert all(end.protocol.statistics().stale_hellos == 0 for end in wire.ends.values())


def test_a_reconnection_of_the_same_runs_takes_two_hellos_each_way() -> None:
    """Each connection draws new nonces, so a reconnection greets as a first connection does
    (an echo of the peer's key id alone would let a hello recorded on an earlier connection
    connect this one: see the test below)."""
    wire = Wire()
    wire.connect()
    wire.drain()
    wire.drop()
    wire.drain()
    wire.check_connected()
    assert all(end.hellos[2] == 2 for end in wire.ends.values())
    assert all(end.protocol.statistics().stale_hellos == 0 for end in wire.ends.values())


def test_a_blind_hello_given_up_does_not_hold_back_a_line_whose_answer_went_out() -> None:
    """The dialer's blind hello on a connection is given up (NNG took nothing for a
    heartbeat: never reported sent), then its answer to the listener's blind hello goes out
    (frames go in order: the blind one never will). The listener connects on that answer
    and asks; the dialer, greeted by the listener's echo, must connect too, not stay
    greeting while the listener's asks (which it answers) keep the connection alive and its
    own asks wait to their timeouts."""
    dialer, listener = End(Role.DIALER), End(Role.LISTENER)
    assert dialer.protocol.pipe_up(1, 0.0) is not None  # given up: not sealed, not reported
    blind = listener.protocol.pipe_up(1, 0.0)
    assert blind is not None
    (answer,) = dialer.take(listener.seal(blind, 1), 1)  # the dialer's answer (a Rehello), sent
    (echo,) = listener.take(answer, 1)
    assert listener.protocol.connected
    assert dialer.take(echo, 1) == [] and dialer.keys.peer_kid == listener.keys.kid
    ask = listener.seal(listener.protocol.ask("x", stream=False, deadline=9.0, wall_deadline=1e12), 1)
    asked = dialer.protocol.receive(decode(dialer.keys.guard.open(ask).payload), 1, 0.5)
    assert isinstance(asked, AskReceived)  # it answers: the listener hears it, and keeps the connection
    assert dialer.protocol.connected, dialer.protocol.state  # its asks may go: the listener reads them

def test_an_undelivered_hello_of_a_dead_run_does_not_take_a_later_reconnection() -> None:
    """The attack on an echo of key ids alone: the dialer's hello on a reconnection (echoing
    the listener's id, which lives on) is on the wire when the dialer dies, unread by the
    listener; a tap records it (or provokes such hellos: it holds the listener's one
    connection, and the dialer's redials, closed by NNG at once, carry them). A new dialer
    run connects; at their next reconnection the recording is sent first. With the echo of
    the key id the listener agreed the session with the dead run and dropped the live
    dialer's hello on that connection as a replay: both ends connected, neither could read
    the other until the heartbeats gave up. With a nonce per connection it is answered once
    and switches nothing."""
    wire = Wire()
    wire.connect()
    wire.drain()
    wire.drop()  # a reconnection: the dialer's hello echoes the listener's id ...
    undelivered = list(wire.queues[Role.LISTENER])
    assert len(undelivered) == 1
    wire.drop(restart=(Role.DIALER,))  # ... and the dialer dies before the listener read it
    wire.drain()
    wire.check_connected()
    wire.drop()
    listener = wire.ends[Role.LISTENER]
    answers = [reply for data in undelivered for reply in listener.take(data, wire.pipe)]
    assert not listener.protocol.connected and len(answers) <= 1  # (a Rehello the dead run will not read)
    wire.drain()
    wire.check_connected()  # (before: the listener's session was the dead run's)


@pytest.mark.parametrize("restart", [(Role.LISTENER,), (Role.DIALER,), (Role.LISTENER, Role.DIALER)])
def test_a_restart_of_either_end_or_both_reconnects(restart: tuple[Role, ...]) -> None:
    wire = Wire()
    wire.connect()
    wire.drain()
    for _ in range(3):
        wire.drop(restart)
        wire.drain()
        wire.check_connected()


def test_a_hello_replayed_from_the_peers_earlier_run_switches_nothing() -> None:
    """The attack: the dialer's hellos recorded, the listener restarted (a new key id, so the
    old dialer's greeting key is new to it), a new dialer connected; the recording replayed."""
    wire = Wire()
    wire.connect()
    wire.drain()
    recorded = list(wire.seen[Role.LISTENER])
    wire.drop(restart=(Role.LISTENER, Role.DIALER))
    wire.drain()
    wire.check_connected()
    listener = wire.ends[Role.LISTENER]
    for data in recorded:
        assert listener.take(data, wire.pipe) == []  # nothing sent, nothing switched
    wire.check_connected()
    assert listener.protocol.statistics().stale_hellos == len(recorded) == 2


def test_a_replay_during_the_greeting_is_answered_once_and_the_live_peer_still_connects() -> None:
    wire = Wire()
    wire.connect()
    wire.drain()
    recorded = list(wire.seen[Role.LISTENER])
    wire.drop(restart=(Role.LISTENER, Role.DIALER))
    listener = wire.ends[Role.LISTENER]
    answers = [reply for data in recorded for reply in listener.take(data, wire.pipe)]
    assert len(answers) == 1  # one old key id: one answer, whatever the frames
    wire.queues[Role.DIALER].extend(answers)
    wire.drain()
    wire.check_connected()


def test_hellos_of_many_recorded_runs_during_a_greeting_get_a_bounded_number_of_answers() -> None:
    """Hellos of 20 earlier runs of the peer (each checks out), replayed on a connection not
    greeted yet: each id is answered once, and at most 8 of them; the live peer still connects."""
    wire = Wire()
    listener = wire.ends[Role.LISTENER]
    wire.connect()
    old_runs = [LineKeys(BASE, listener=False) for _ in range(20)]
    hellos = [keys.guard.seal(encode(Envelope("hello", "dialer", 1, body={"hotline": 2, "kid": keys.kid, "nonce": keys.kid, "echo": None})),
                              "hello") for keys in old_runs]  # fmt: skip
    answers = [reply for data in hellos + hellos[:3] for reply in listener.take(data, wire.pipe)]
    assert len(answers) == 8  # (the replays of the same frames again: refused by the replay window)
    assert listener.refused == ["replay"] * 3 and not listener.protocol.connected
    wire.drain()
    wire.check_connected()


def test_a_hello_of_the_old_handshake_is_refused_on_a_sealed_line() -> None:
    wire = Wire()
    listener, old = wire.ends[Role.LISTENER], LineKeys(BASE, listener=False)
    listener.protocol.pipe_up(1, 0.0)
    data = old.guard.seal(encode(Envelope("hello", "old", 1, body={"hotline": 1})), "hello")
    opened = listener.keys.guard.open(data)
    assert isinstance(opened, FirstOpened)
    opened.accepted()
    event = listener.protocol.receive(decode(opened.payload), 1, 0.0)
    assert isinstance(event, Malformed) and "hotline 1" in event.reason
    assert not listener.protocol.connected and listener.keys.guard.sender is None
    assert listener.protocol.statistics().malformed == 1


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("deliver"), st.sampled_from(list(Role)), st.just(0)),
        st.tuples(st.just("replay"), st.sampled_from(list(Role)), st.integers(0, 50)),
        st.tuples(st.just("restart"), st.sampled_from(["listener", "dialer", "both", "none"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(ACTIONS)
def test_any_interleaving_of_frames_replays_and_restarts_ends_connected(actions: list[tuple[object, ...]]) -> None:
    wire = Wire()
    wire.connect()
    for action, what, index in actions:
        if action == "deliver":
            assert isinstance(what, Role)
            wire.deliver(what)
        elif action == "replay":
            assert isinstance(what, Role) and isinstance(index, int)
            wire.replay(what, index)
        else:
            restart = {"listener": (Role.LISTENER,), "dialer": (Role.DIALER,), "none": ()}.get(
                str(what), (Role.LISTENER, Role.DIALER)
            )
            wire.drop(restart)
    wire.drain()
    wire.check_connected()
    for role in Role:  # replays keep working on the connected ends: nothing moves
        for index in range(len(wire.seen[role])):
            wire.replay(role, index)
    wire.check_connected()
