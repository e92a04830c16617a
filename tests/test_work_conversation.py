"""Whole work conversations in memory: one :class:`DispatcherProtocol`, N :class:`WorkerProtocol`.

No sockets and no clock: a test passes the frames between the pure objects (through CBOR,
as the wire would), and hypothesis chooses what happens and in which order: pushes to
whichever worker, deliveries, handlers that start and finish, renewals, time passing
(leases and claim timeouts running out), workers that fall silent (taken as gone by the
liveness rule, their connections closed, then back with what they held), die (their connection
closes, some frames read after), come back under the same name, leave with a bye, change
the capacity they announce; replayed frames, forged claims and results, garbage. Then a
healthy finish. The invariants:

- every task of every stream ends exactly once for the caller, none is lost;
- a result is accepted only from the worker holding the claim, where the dispatcher can
  tell (the attempt in flight, claimed by a named worker): a forged success for it is
  rejected and counted; an honest task never ends with another's result;
- the dispatcher never has more in flight than the capacity it was told of when it sent;
  a worker never holds more than its capacity; bad input never raises.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.failure import Failure
from consensus.work import protocol as W
from consensus.work.dispatcher_protocol import DispatcherProtocol, Rejected, Stream, WorkerSilent
from consensus.work.ledger import Outcome, TaskLedger
from consensus.work.records import IN_FLIGHT
from consensus.work.worker_protocol import Job, WorkerProtocol
from patterns import Envelope

LEASE, CLAIM_TIMEOUT, MAX_ATTEMPTS = 3.0, 1.0, 3
NAMES = ["w0", "w1", "w2"]
TASKS_PER_STREAM = 12
POISON = {3, 7}  # tasks whose handler always fails
LOSSES = {"WorkerLost", "LeaseExpired", "Unclaimed"}


def wire(body: Any) -> Any:
    return cbor2.loads(cbor2.dumps(body))  # what the other side decodes: lists, never tuples or aliases


@dataclass
class Peer:
    name: str
    protocol: WorkerProtocol
    pipe: int
    alive: bool = True  # its connections are up (else they closed: crashed, or left)
    silenced: bool = False  # closed by the dispatcher, which took it as silent: the process lives on
    noticed: bool = False  # the dispatcher was told its connections closed
    inbox: deque[W.Frame] = field(default_factory=deque)  # tasks pushed to it, unread
    outbox: deque[W.Frame] = field(default_factory=deque)  # its frames on the way to the dispatcher
    running: list[Job] = field(default_factory=list)  # handlers started, not finished
    sent: list[W.Frame] = field(default_factory=list)  # what it sent, to replay


class Conversation:
    def __init__(self) -> None:
        self.now = 0.0
        self.d = DispatcherProtocol(max_batch=4)
        self.streams: list[Stream] = []
        for _ in range(2):
            ledger = TaskLedger(lease=LEASE, claim_timeout=CLAIM_TIMEOUT, max_attempts=MAX_ATTEMPTS, window=0)
            for task in range(TASKS_PER_STREAM):
                ledger.submit(task)
            ledger.close_input()
            self.streams.append(self.d.open_stream(ledger))
        self.peers: dict[str, Peer] = {}
        self.pipes = 0
        self.seq = 0
        self.outcomes: dict[int, list[Outcome]] = {s.id: [] for s in self.streams}
        # (stream, task) forged while the dispatcher could not tell whose the attempt was
        self.forgeable: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ transport
    def connect(self, name: str, capacity: int) -> None:
        self.pipes += 1
        peer = self.peers[name] = Peer(name, WorkerProtocol(name, capacity), self.pipes)
        self.task_connections(closed=False)
        hello = peer.protocol.connections({peer.pipe})
        assert hello is not None and peer.protocol.connections({peer.pipe}) is None  # once per connection
        peer.outbox.append(hello)

    def task_connections(self, *, closed: bool) -> None:
        live = sum(1 for p in self.peers.values() if p.alive)
        self.d.task_connections(live, self.now, closed=closed)

    def to_dispatcher(self, peer: Peer, frame: W.Frame, *, sender: str | None = None) -> Any:
        self.seq += 1
        envelope = Envelope(
            frame.kind, sender if sender is not None else peer.name, self.seq, wire(frame.body)
        )
        events = self.d.receive(envelope, peer.pipe, self.now, pipe_closed=not peer.alive)
        self.check()
        return events

    def deliver_reply(self, peer: Peer) -> None:
        frame = peer.outbox.popleft()
        peer.sent.append(frame)
        self.to_dispatcher(peer, frame)

    def pump(self, stream: Stream, pick: int) -> None:
        targets = [p for p in self.peers.values() if p.alive]
        grant = self.d.grant(stream, self.now)
        if grant.frame is None:
            return
        assert self.d.in_flight <= self.d.capacity, "sent beyond the workers' capacity"
        if not targets:  # the last connection closed before the dispatcher heard: the batch is lost
            assert any(not p.noticed for p in self.peers.values()), "a batch granted with no task connection"
            return
        targets[pick % len(targets)].inbox.append(grant.frame)  # push picks the connection

    def deliver_tasks(self, peer: Peer) -> None:
        frame = peer.inbox.popleft()
        self.seq += 1
        step = peer.protocol.receive(Envelope(frame.kind, "dispatcher", self.seq, wire(frame.body)), self.now)
        assert peer.protocol.held <= peer.protocol.capacity
        peer.outbox.extend(step.frames)

    def finish(self, peer: Peer, index: int) -> None:
        job = peer.running.pop(index % len(peer.running))
        ok = job.task not in POISON
        peer.protocol.finished(job, ok, ("r", job.stream, job.task) if ok else Failure("Boom", "poison"))

    def flush(self, peer: Peer) -> None:
        for frame in peer.protocol.results_due():
            peer.outbox.append(frame)
            peer.protocol.results_sent(frame)
        assert not peer.protocol.has_results

    def close(self, peer: Peer) -> None:
        peer.alive = False
        peer.inbox.clear()  # pushed, never read: lost with the connection

    def notice(self) -> None:
        """The driver's watcher: connections that closed reach the dispatcher."""
        closed = [p for p in self.peers.values() if not p.alive and not p.noticed]
        for peer in closed:
            peer.noticed = True
        if closed:
            self.d.connections_closed([p.pipe for p in closed], self.now)
            self.task_connections(closed=True)

    def liveness(self) -> None:
        """The driver's liveness watcher: a silent worker's connections are closed."""
        for event in self.d.check_liveness(self.now):
            if type(event) is WorkerSilent:
                peer = self.peers[event.name]
                assert event.pipes == (peer.pipe,)
                if peer.alive:  # else it had died or left already, unnoticed: closing does nothing
                    self.close(peer)
                    peer.silenced = True

    def come_back(self, peer: Peer) -> None:
        """A worker taken as silent reconnects, the same process: it still holds its tasks."""
        self.notice()
        self.pipes += 1
        peer.pipe, peer.alive, peer.noticed, peer.silenced = self.pipes, True, False, False
        self.task_connections(closed=False)
        hello = peer.protocol.connections({peer.pipe})
        assert hello is not None
        peer.outbox.append(hello)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for stream in self.streams:
            stream.ledger.expire(self.now)

    def pop(self) -> None:
        for stream in self.streams:
            self.outcomes[stream.id].extend(stream.ledger.pop_outcomes())

    # ------------------------------------------------------------------ hostile
    def forge_result(self, peer: Peer, stream: Stream, task_id: int, back: int) -> None:
        rec = stream.ledger._tasks.get(task_id)  # the oracle: who holds what (the test may look)
        attempt = max(1, (rec.attempt if rec else 1) - back)
        tellable = rec is not None and rec.state is IN_FLIGHT and rec.attempt == attempt
        tellable = tellable and rec is not None and rec.worker not in (None, peer.name)
        if not tellable:
            self.forgeable.add((stream.id, task_id))
        item = [task_id, attempt, True, ("forged", peer.name)]
        events = self.to_dispatcher(peer, W.done_frame(stream.id, [item]))
        if tellable:
            assert task_id in stream.ledger._tasks, "a forged result for another's claim was accepted"
            assert any(type(e) is Rejected for e in events)

    def check(self) -> None:
        for peer in self.peers.values():
            assert peer.protocol.held <= peer.protocol.capacity

    # ------------------------------------------------------------------ the end
    def drain(self) -> None:
        """A healthy finish: every worker answers, the dead stay dead, time moves on."""
        self.notice()
        if not any(p.alive for p in self.peers.values()):
            self.connect("healer", 4)
        for _ in range(500):
            self.pop()
            if all(s.ledger.done for s in self.streams):
                return
            for peer in [p for p in self.peers.values() if p.outbox]:
                while peer.outbox:
                    self.deliver_reply(peer)
            for stream in self.streams:
                self.pump(stream, self.seq)
            live = [p for p in self.peers.values() if p.alive]
            for peer in live:
                while peer.inbox:
                    self.deliver_tasks(peer)
                while (job := peer.protocol.next_job()) is not None:
                    peer.running.append(job)
                while peer.running:
                    self.finish(peer, 0)
                self.flush(peer)
            if not any(p.outbox for p in self.peers.values()):
                self.tick(LEASE)
        raise AssertionError(f"no end: {self.streams}")

    def verify(self) -> None:
        for stream in self.streams:
            outcomes = self.outcomes[stream.id]
            assert sorted(o.task_id for o in outcomes) == list(range(TASKS_PER_STREAM)), "not exactly once"
            for o in outcomes:
                assert o.attempts <= MAX_ATTEMPTS
                forged = o.ok and o.result[0] == "forged"
                if forged:
                    assert (stream.id, o.task_id) in self.forgeable
                elif o.ok:
                    assert o.task not in POISON and o.result == ["r", stream.id, o.task]
                else:
                    assert o.error is not None
                    assert o.error.type == "Boom" if o.task in POISON else o.error.type in LOSSES
        assert self.d.in_flight == 0
        assert self.d.statistics().distributions_started == 2


# ---------------------------------------------------------------------- the moves
GARBAGE = st.one_of(
    st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3),
    st.fixed_dictionaries({"st": st.integers(-1, 3), "c": st.lists(st.integers(), max_size=2)}),
    st.fixed_dictionaries({"st": st.integers(-1, 3), "r": st.lists(st.lists(st.integers(), max_size=4), max_size=2)}),
    st.fixed_dictionaries({"cap": st.one_of(st.integers(-2, 3), st.text(max_size=2))}),
)  # fmt: skip
MOVES = ["pump"] * 6 + ["deliver"] * 6 + ["read"] * 5 + ["start"] * 4 + ["finish"] * 4 + ["flush"] * 3 + [
    "renew", "renew", "tick", "tick", "notice", "kill", "leave", "revive", "capacity", "replay",
    "beat", "beat", "liveness", "liveness", "liveness", "come_back", "come_back",
    "forge_result", "forge_claim", "garbage",
]  # fmt: skip


def move(c: Conversation, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(MOVES), "move")
    names = sorted(c.peers)  # indices, not objects: hypothesis caches strategies by their arguments
    peer = c.peers[names[data.draw(st.integers(0, len(names) - 1), "peer")]]
    stream = c.streams[data.draw(st.integers(0, len(c.streams) - 1), "stream")]
    if kind == "pump":
        c.pump(stream, data.draw(st.integers(0, 5)))
    elif kind == "deliver" and peer.alive and peer.inbox:
        c.deliver_tasks(peer)
    elif kind == "read" and peer.outbox:
        c.deliver_reply(peer)
    elif kind == "start" and peer.alive and (job := peer.protocol.next_job()) is not None:
        peer.running.append(job)
    elif kind == "finish" and peer.alive and peer.running:
        c.finish(peer, data.draw(st.integers(0, 10)))
    elif kind == "flush" and peer.alive:
        c.flush(peer)
    elif kind == "renew" and peer.alive:
        peer.outbox.extend(peer.protocol.renewals(c.now))
    elif kind == "beat" and peer.alive and (beat := peer.protocol.beat(c.now)) is not None:
        peer.outbox.append(beat)
        peer.protocol.sent(c.now)
    elif kind == "liveness":
        c.liveness()
    elif kind == "come_back" and peer.silenced:
        c.come_back(peer)
    elif kind == "tick":
        c.tick(data.draw(st.sampled_from([0.1, 0.5, 1.0, LEASE])))
    elif kind == "notice":
        c.notice()
    elif kind == "kill" and peer.alive:  # crashed: unsent frames lost, some sent ones still readable
        for _ in range(data.draw(st.integers(0, len(peer.outbox)))):
            peer.outbox.pop()
        c.close(peer)
    elif kind == "leave" and peer.alive:  # results, then bye, then its connections close
        c.flush(peer)
        bye = peer.protocol.bye()
        assert bye is not None  # no secret: a bye is always possible
        peer.outbox.append(bye)
        c.close(peer)
    elif kind == "revive" and not peer.alive and not peer.silenced:  # the same name, a new process
        c.notice()
        c.connect(peer.name, data.draw(st.integers(1, 4)))
    elif kind == "capacity" and peer.alive:  # announce another capacity than it holds to
        c.to_dispatcher(peer, W.hello_frame(data.draw(st.integers(1, 6))))
    elif kind == "replay" and peer.sent:
        c.to_dispatcher(peer, peer.sent[data.draw(st.integers(0, len(peer.sent) - 1))])
    elif kind == "forge_result":
        c.forge_result(
            peer, stream, data.draw(st.integers(0, TASKS_PER_STREAM - 1)), data.draw(st.integers(0, 1))
        )
    elif kind == "forge_claim":
        c.to_dispatcher(
            peer, W.claim_frame(stream.id, [[data.draw(st.integers(0, 20)), data.draw(st.integers(1, 3))]])
        )
    elif kind == "garbage":
        frame = W.Frame(data.draw(st.sampled_from([W.HELLO, W.CLAIM, W.RELEASE, W.DONE, "nonsense"])), {})
        sender = data.draw(st.sampled_from([peer.name, "", "\x00"]))
        c.to_dispatcher(peer, W.Frame(frame.kind, data.draw(GARBAGE)), sender=sender)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_every_task_ends_exactly_once_whatever_the_workers_do(
    data: st.DataObject, capacities: list[int]
) -> None:
    c = Conversation()
    for name, capacity in zip(NAMES, capacities, strict=False):
        c.connect(name, capacity)
    for _ in range(data.draw(st.integers(0, 120), "moves")):
        move(c, data)
        c.pop()
    c.drain()
    c.verify()
