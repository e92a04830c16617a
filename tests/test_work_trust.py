"""Work sharing with a secret, in memory: the pure objects with their keys, every frame sealed
and opened by the real guards (as the sockets do), hypothesis choosing the order.

In the conversation: two honest workers, ``mallory`` (holds the secret, forges: results
and claims for tasks pushed to others, frames naming another worker, replays) and a
``stranger`` (a wrong secret: a hello for 1,000,000 tasks, forged results). The
invariants: every task ends exactly once with an honest result; no forged result, no
stranger's capacity; every forged frame is refused (before decoding when its seal fails)
and counted as unauthenticated.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consensus.trust.guard import Guard
from consensus.trust.secret import Secret
from consensus.trust.work import DispatcherKeys, TaskPipes, WorkerKeys
from consensus.work import protocol as W
from consensus.work.dispatcher_protocol import DispatcherProtocol, Rejected, Stream
from consensus.work.ledger import Outcome, TaskLedger
from consensus.work.worker_protocol import Job, WorkerProtocol
from patterns import Envelope, FirstOpened, Unauthenticated, decode, encode

SECRET, WRONG = Secret(b"the room's secret"), Secret(b"a guess")
TASKS = 16
HONEST = ["w0", "w1"]


def opened(guard: Guard, data: bytes) -> Envelope:
    """What a socket with ``guard`` does with a received frame (patterns/_socket.py)."""
    sealed = guard.open(data)  # raises Unauthenticated before a byte is decoded
    envelope = decode(sealed.payload)
    if sealed.owner is not None and envelope.sender != sealed.owner:
        raise Unauthenticated("impersonation", reason="impersonation", size=len(data))
    if sealed.kinds is not None and envelope.kind not in sealed.kinds:
        raise Unauthenticated("kind", reason="kind", size=len(data))
    if isinstance(sealed, FirstOpened):  # accepted whole: the guard may keep what it learned
        sealed.accepted()
    return dataclasses.replace(envelope, session=sealed.session)


def sealed(guard: Guard, frame: W.Frame, sender: str, seq: int) -> bytes:
    return guard.seal(encode(Envelope(frame.kind, sender, seq, frame.body)), frame.kind)


@dataclass
class Peer:
    name: str
    protocol: WorkerProtocol
    keys: WorkerKeys
    pipe: int
    inbox: deque[bytes] = field(default_factory=deque)  # sealed batches pushed to it
    outbox: deque[bytes] = field(default_factory=deque)  # its sealed frames to the dispatcher
    running: list[Job] = field(default_factory=list)
    seen: list[list[Any]] = field(default_factory=list)  # [stream, task_id, attempt, ticket] it received


class Conversation:
    def __init__(self, max_capacity: int = 8) -> None:
        self.now = 0.0
        self.keys = DispatcherKeys(SECRET)
        self.d = DispatcherProtocol(max_batch=3, keys=self.keys, max_capacity=max_capacity)
        ledger = TaskLedger(lease=3.0, claim_timeout=1.0, max_attempts=3, window=0)
        for task in range(TASKS):
            ledger.submit(task)
        ledger.close_input()
        self.stream: Stream = self.d.open_stream(ledger)
        self.peers: dict[str, Peer] = {}
        self.seq = 0
        self.refused = 0  # frames the guard or the protocol must have refused
        self.outcomes: list[Outcome] = []
        self.replayable: list[bytes] = []
        for name in [*HONEST, "mallory"]:
            self.connect(name, SECRET, capacity=3)

    def connect(self, name: str, secret: Secret, capacity: int) -> Peer:
        keys = WorkerKeys(secret, name)
        peer = self.peers[name] = Peer(
            name, WorkerProtocol(name, capacity, keys=keys), keys, len(self.peers) + 1
        )
        local = f"127.0.0.1:{40000 + peer.pipe}"
        assert peer.protocol.task_connections({local}) is None  # no results connection yet: no hello
        hello = peer.protocol.connections({peer.pipe})
        assert hello is not None and hello.body["tp"] == [local]
        self.send(peer, hello)
        return peer

    # ------------------------------------------------------------------ transport
    def send(self, peer: Peer, frame: W.Frame, sender: str | None = None) -> None:
        self.seq += 1
        peer.outbox.append(sealed(peer.keys.results, frame, sender or peer.name, self.seq))

    def arrive(self, peer: Peer, data: bytes) -> tuple[Any, ...]:
        """A frame reaches the dispatcher's results socket."""
        try:
            envelope = opened(self.keys.results, data)
        except Unauthenticated:
            return ("refused by the guard",)
        events = self.d.receive(envelope, peer.pipe, self.now)
        self.replayable.append(data)
        return events

    def deliver_reply(self, peer: Peer) -> None:
        self.arrive(peer, peer.outbox.popleft())

    def pump(self, pick: int) -> None:
        assert self.d.task_pipes is not None
        self.d.task_pipes.connections(
            {p.pipe: f"127.0.0.1:{40000 + p.pipe}" for p in self.peers.values()}, self.now
        )
        self.d.task_connections(len(HONEST) + 1, self.now, closed=False)
        if self.d.task_pipes.held:  # a hello not read yet: push might pick its connection
            assert self.d.grant(self.stream, self.now).frame is None
            return
        grant = self.d.grant(self.stream, self.now)
        if grant.frame is not None:
            targets = [self.peers[name] for name in [*HONEST, "mallory"]]
            self.seq += 1
            data = self.keys.tasks.seal(
                encode(Envelope(W.TASKS, "dispatcher", self.seq, grant.frame.body)), W.TASKS
            )
            targets[pick % len(targets)].inbox.append(data)  # push picks among the vouched connections

    def deliver_tasks(self, peer: Peer) -> None:
        envelope = opened(peer.keys.tasks, peer.inbox.popleft())
        body = envelope.body
        peer.seen.extend([body["st"], t[0], t[1], tk] for t, tk in zip(body["t"], body["tk"], strict=True))
        step = peer.protocol.receive(envelope, self.now)
        assert not any(type(e).__name__ == "Rejected" for e in step.events)
        for frame in step.frames:
            self.send(peer, frame)

    def work(self, peer: Peer) -> None:
        while (job := peer.protocol.next_job()) is not None:
            peer.running.append(job)
        while peer.running:
            job = peer.running.pop()
            peer.protocol.finished(job, True, ["r", peer.name, job.task])
        for frame in peer.protocol.results_due():
            self.send(peer, frame)
            peer.protocol.results_sent(frame)

    # ------------------------------------------------------------------ hostile
    def unauthenticated(self) -> int:
        return self.d.statistics().unauthenticated

    def expect_refused(self, data: bytes, peer: Peer) -> None:
        before = self.d.statistics()
        events = self.arrive(peer, data)
        after = self.d.statistics()
        guarded = events == ("refused by the guard",)
        refused = any(type(e) is Rejected and isinstance(e.error, Unauthenticated) for e in events)
        assert guarded or refused, f"a forged frame went through: {events}"
        if refused:
            assert after.unauthenticated > before.unauthenticated
        self.refused += 1

    def not_mallorys(self, guess: int) -> tuple[int, int, bytes] | None:
        """An attempt in flight that was pushed to another worker (the test's oracle)."""
        mallory = self.peers["mallory"]
        for task_id in sorted(self.stream.ledger.in_flight_tasks()):
            if not mallory.protocol.holds(self.stream.id, task_id):
                rec = self.stream.ledger._tasks[task_id]
                if not any(s[1] == task_id and s[2] == rec.attempt for s in mallory.seen):
                    return (
                        task_id,
                        rec.attempt,
                        bytes(8) if guess % 2 else mallory.seen[0][3] if mallory.seen else b"",
                    )
        return None

    def forge(self, how: str, guess: int) -> None:
        mallory = self.peers["mallory"]
        target = self.not_mallorys(guess)
        if how == "stranger":
            stranger = WorkerKeys(WRONG, "stranger")
            self.seq += 1
            hello = W.hello_frame(1_000_000, kx=stranger.kx, task_pipes=["127.0.0.1:1"])
            self.expect_refused(sealed(stranger.results, hello, "stranger", self.seq), mallory)
            stranger.dispatcher_key(self.keys.kx)  # it saw a batch: still no session key of this dispatcher
            self.seq += 1
            done = W.done_frame(self.stream.id, [[t, 1, True, "forged"] for t in range(4)])
            self.expect_refused(sealed(stranger.results, done, "stranger", self.seq), mallory)
        elif how == "impersonate" and mallory.keys.ready:
            self.seq += 1
            done = W.done_frame(self.stream.id, [[guess % TASKS, 1, True, "forged"]])
            self.expect_refused(sealed(mallory.keys.results, done, "w0", self.seq), mallory)
        elif how == "replay" and self.replayable:
            self.expect_refused(self.replayable[guess % len(self.replayable)], mallory)
        elif target is not None and mallory.keys.ready:
            task_id, attempt, ticket = target
            self.seq += 1
            if how == "claim":
                frame = W.claim_frame(self.stream.id, [[task_id, attempt]], [ticket] if ticket else None)
            else:
                frame = W.done_frame(self.stream.id, [[task_id, attempt, True, "forged"]])
            event(f"forged {how} for a task pushed to another")
            self.expect_refused(sealed(mallory.keys.results, frame, "mallory", self.seq), mallory)

    # ------------------------------------------------------------------ the end
    def drain(self) -> None:
        for _ in range(300):
            self.outcomes.extend(self.stream.ledger.pop_outcomes())
            if self.stream.ledger.done:
                return
            for peer in self.peers.values():
                while peer.outbox:
                    self.deliver_reply(peer)
            self.pump(self.seq)
            for peer in self.peers.values():
                while peer.inbox:
                    self.deliver_tasks(peer)
                self.work(peer)
            if not any(p.outbox for p in self.peers.values()):
                self.now += 3.0
                self.stream.ledger.expire(self.now)
        raise AssertionError(f"no end: {self.stream}")

    def verify(self) -> None:
        assert sorted(o.task_id for o in self.outcomes) == list(range(TASKS)), "not exactly once"
        for outcome in self.outcomes:
            assert outcome.ok and outcome.result[0] == "r", f"a forged or lost outcome: {outcome}"
            assert outcome.result[1] == outcome.worker and outcome.result[2] == outcome.task
        stats = self.d.statistics()
        assert "stranger" not in stats.workers and set(stats.workers) == {*HONEST, "mallory"}
        assert stats.capacity == 9


MOVES = ["pump", "deliver", "read", "work", "forge_claim", "forge_done", "stranger", "impersonate", "replay"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_forger_and_no_stranger_changes_an_outcome(data: st.DataObject) -> None:
    c = Conversation()
    if data.draw(st.booleans(), label="warm start"):  # hellos read, a batch delivered to each worker
        for pick, peer in enumerate(list(c.peers.values())):
            c.deliver_reply(peer)
        for pick, peer in enumerate(list(c.peers.values())):
            c.pump(pick)
            while peer.inbox:
                c.deliver_tasks(peer)
    for _ in range(data.draw(st.integers(0, 60), label="steps")):
        move = data.draw(st.sampled_from(MOVES))
        pick = data.draw(st.integers(0, 5))
        peer = c.peers[[*HONEST, "mallory"][pick % 3]]
        if move == "pump":
            c.pump(pick)
        elif move == "deliver" and peer.inbox:
            c.deliver_tasks(peer)
        elif move == "read" and peer.outbox:
            c.deliver_reply(peer)
        elif move == "work":
            c.work(peer)
        elif move in ("forge_claim", "forge_done"):
            c.forge(move.removeprefix("forge_"), pick)
        elif move in ("stranger", "impersonate", "replay"):
            c.forge(move, pick)
    event(f"forged frames refused: {min(c.refused, 5)}{'+' if c.refused >= 5 else ''}")
    c.drain()
    c.verify()


def test_a_claim_or_result_for_a_task_pushed_to_another_is_refused_and_counted() -> None:
    c = Conversation()
    for peer in list(c.peers.values()):
        c.deliver_reply(peer)  # the hellos
    c.pump(0)  # a batch for w0
    w0, mallory = c.peers["w0"], c.peers["mallory"]
    c.deliver_tasks(w0)
    [stream, task_id, attempt, _] = w0.seen[0]
    c.pump(2)  # mallory gets a batch of its own: it knows the dispatcher's key now, and a ticket
    c.deliver_tasks(mallory)
    before = c.unauthenticated()
    for forged in (
        W.claim_frame(stream, [[task_id, attempt]]),  # no ticket
        W.claim_frame(stream, [[task_id, attempt]], [mallory.seen[0][3]]),  # another task's ticket
        W.done_frame(stream, [[task_id, attempt, True, "forged"]]),  # no claim at all
        W.release_frame(stream, [[task_id, attempt]], [bytes(8)]),
    ):
        c.seq += 1
        c.expect_refused(sealed(mallory.keys.results, forged, "mallory", c.seq), mallory)
    assert c.unauthenticated() == before + 4
    while w0.outbox:  # w0's own claim, quoting the ticket, still holds
        c.deliver_reply(w0)
    assert c.stream.ledger.holder(task_id, attempt) == "w0"
    c.seq += 1  # and now that w0 holds it, mallory's result for it is refused too
    c.expect_refused(
        sealed(mallory.keys.results, W.done_frame(stream, [[task_id, attempt, True, "x"]]), "mallory", c.seq),
        mallory,
    )
    c.drain()
    c.verify()


def test_a_huge_capacity_is_capped_and_counted() -> None:
    c = Conversation(max_capacity=8)
    greedy = c.connect("greedy", SECRET, capacity=1_000_000)
    c.deliver_reply(greedy)
    stats = c.d.statistics()
    assert stats.workers["greedy"] == 8 and stats.capped == 1


def test_a_hello_may_not_take_the_name_of_a_live_worker() -> None:
    c = Conversation()
    for peer in list(c.peers.values()):
        c.deliver_reply(peer)
    thief = WorkerKeys(SECRET, "w0")  # another process, the same secret, w0's name
    c.seq += 1
    hello = W.hello_frame(3, kx=thief.kx, task_pipes=["127.0.0.1:9"])
    c.expect_refused(sealed(thief.results, hello, "w0", c.seq), c.peers["mallory"])
    c.expect_refused(sealed(thief.results, hello, "w0", c.seq), c.peers["mallory"])  # and its replay


@pytest.mark.parametrize("vouched_first", [True, False])
def test_task_connections_wait_for_a_voucher_then_close(vouched_first: bool) -> None:
    pipes = TaskPipes(grace=0.5, penalty=5.0)
    if vouched_first:
        pipes.vouch("w0", ["10.0.0.2:4000"])
    assert pipes.admit("10.0.0.9:5000") and pipes.admit("10.0.0.2:4000")  # NNG's thread, first
    pipes.connections({1: "10.0.0.2:4000", 2: "10.0.0.9:5000"}, now=0.0)
    if not vouched_first:
        assert pipes.held
        pipes.vouch("w0", ["10.0.0.2:4000"])
    assert pipes.held  # the stranger's connection: push might pick it
    assert pipes.due(0.2) == ([], 0.5)
    assert pipes.due(0.5) == ([2], 5.5) and not pipes.held and pipes.refused == 1  # wake when the bar ends
    assert not pipes.admit("10.0.0.9:5001") and pipes.refused == 2, "a barred host is turned away at once"
    assert pipes.admit("10.0.0.2:4000") and pipes.admit("10.0.0.3:4000")  # the vouched, other hosts
    assert pipes.held  # 10.0.0.3 arrived: held until the trio side sees it
    pipes.connections({1: "10.0.0.2:4000", 3: "10.0.0.9:5001"}, now=1.0)  # admitted before the bar
    assert pipes.due(1.0) == ([3], 5.5), "a barred host's connection goes at once"
    pipes.connections({1: "10.0.0.2:4000", 4: "10.0.0.9:5002"}, now=6.0)
    assert pipes.due(6.0) == ([], 6.5) and pipes.held and pipes.admit("10.0.0.9:5003")  # the bar is over
    pipes.forget("w0")
    pipes.connections({1: "10.0.0.2:4000"}, now=7.0)
    assert pipes.held


def test_a_connection_holds_the_batches_from_its_arrival() -> None:
    pipes = TaskPipes()
    pipes.vouch("w0", ["10.0.0.2:4000"])
    pipes.connections({1: "10.0.0.2:4000"}, now=0.0)
    assert not pipes.held
    assert pipes.admit("10.0.0.9:6000") and pipes.held, "held before the trio side hears of it"
    pipes.connections({1: "10.0.0.2:4000"}, now=0.1)  # it closed before it was seen: no longer held
    assert not pipes.held
    assert pipes.admit("10.0.0.2:4001") and pipes.held  # w0's new connection, before its hello
    pipes.vouch("w0", ["10.0.0.2:4000", "10.0.0.2:4001"])
    assert not pipes.held
