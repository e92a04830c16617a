"""Each side of the work conversation on its own: :class:`DispatcherProtocol` and :class:`WorkerProtocol`.

The worker side is run against a naive reference (a dict of what it holds, the rules of
``docs/work.md`` written out plainly) on random batches, handlers, flushes and renewals;
the dispatcher side through its registry, routing, credit and bad input, case by case.
The two together are in ``tests/test_work_conversation.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.failure import Failure
from consensus.work import protocol as W
from consensus.work.dispatcher_protocol import (
    DeadlinesMoved,
    DispatcherProtocol,
    Progress,
    Rejected,
    WorkerJoined,
    WorkerLeft,
)
from consensus.work.ledger import TaskLedger
from consensus.work.worker_protocol import Job, LeaseChanged, TasksQueued, WorkerProtocol
from patterns import EncodeError, Envelope

LEASE = 3.0


def env(kind: str, body: Any, sender: str = "w") -> Envelope:
    return Envelope(kind, sender, 1, body)


# ---------------------------------------------------------------------- the worker side
class RefWorker:
    """What a worker holds and must say, written out plainly."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held: dict[tuple[int, int], list[Any]] = {}  # (stream, task) -> [attempt, task, last claim]
        self.waiting: list[tuple[int, int]] = []
        self.results: list[tuple[int, list[Any]]] = []  # (stream, item), in finishing order
        self.leases: dict[int, float] = {}

    def batch(
        self, stream: int, lease: float, items: list[list[Any]], now: float
    ) -> tuple[list[Any], list[Any]]:
        claims, releases = [], []
        for task_id, attempt, task in items:
            key = (stream, task_id)
            if key in self.held:
                self.held[key][0] = max(self.held[key][0], attempt)
                claims.append([task_id, attempt])
            elif len(self.held) < self.capacity:
                self.held[key] = [attempt, task, now]
                self.waiting.append(key)
                claims.append([task_id, attempt])
            else:
                releases.append([task_id, attempt])
        self.leases[stream] = lease
        return claims, releases

    def finish(self, key: tuple[int, int], ok: bool, value: Any) -> None:
        attempt = self.held.pop(key)[0]
        self.results.append((key[0], [key[1], attempt, ok, value]))

    def renewals(self, now: float) -> dict[int, list[list[int]]]:
        due: dict[int, list[list[int]]] = {}
        for (stream, task_id), record in self.held.items():
            if now - record[2] >= self.leases[stream] / 3:
                due.setdefault(stream, []).append([task_id, record[0]])
                record[2] = now
        return due


ITEM = st.tuples(st.integers(0, 6), st.integers(1, 3))
OP = st.one_of(
    st.tuples(st.just("batch"), st.integers(1, 2), st.sampled_from([LEASE, 6.0]), st.lists(ITEM, min_size=1, max_size=5)),
    st.tuples(st.just("start")),
    st.tuples(st.just("finish"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("flush"), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 1.0, 2.0])),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4), st.lists(OP, max_size=40))
def test_the_worker_protocol_matches_a_naive_worker(capacity: int, ops: list[tuple[Any, ...]]) -> None:
    worker, ref = WorkerProtocol("w", capacity), RefWorker(capacity)
    running: list[Job] = []
    now, sent = 0.0, list[tuple[int, list[Any]]]()

    def finish(index: int, ok: bool) -> None:
        job = running.pop(index % len(running))
        worker.finished(job, ok, "r" if ok else Failure("Boom", "no"))
        ref.finish((job.stream, job.task_id), ok, "r" if ok else {"type": "Boom", "message": "no"})

    for op in ops:
        if op[0] == "batch":
            _, stream, lease, picked = op
            items = [[task_id, attempt, f"t{task_id}"] for task_id, attempt in picked]
            step = worker.receive(env(W.TASKS, {"st": stream, "lease": lease, "t": items}, "d"), now)
            before = len(ref.waiting)
            claims, releases = ref.batch(stream, lease, items, now)
            want = [W.claim_frame(stream, claims)] if claims else []
            want += [W.release_frame(stream, releases)] if releases else []
            assert list(step.frames) == want
            queued = len(ref.waiting) - before
            assert [e for e in step.events if type(e) is TasksQueued] == (
                [TasksQueued(queued)] if queued else []
            )
        elif op[0] == "start":
            job = worker.next_job()
            assert (job is None) == (not ref.waiting)
            if job is not None:
                assert (job.stream, job.task_id) == ref.waiting.pop(0)
                running.append(job)
        elif op[0] == "finish" and running:
            finish(op[1], op[2])
        elif op[0] == "flush":
            frames = worker.results_due()
            for frame in frames if op[1] else frames[:1]:  # a flush cut short sends the rest next time
                if running:  # a handler finishes while the frame is on its way
                    finish(0, True)
                sent.extend((frame.body["st"], item) for item in frame.body["r"])
                worker.results_sent(frame)
        elif op[0] == "tick":
            now += op[1]
            due = ref.renewals(now)
            assert worker.renewals(now) == [W.claim_frame(stream, claims) for stream, claims in due.items()]
        stats = worker.statistics()
        assert (stats.held, stats.running) == (len(ref.held), len(running))
        assert stats.held <= capacity and worker.waiting == len(ref.waiting)
    for frame in worker.results_due():
        sent.extend((frame.body["st"], item) for item in frame.body["r"])
        worker.results_sent(frame)
    by_stream = {stream: [item for s, item in ref.results if s == stream] for stream in (1, 2)}
    assert {stream: [item for s, item in sent if s == stream] for stream in (1, 2)} == by_stream
    assert not worker.has_results


def test_a_worker_greets_each_new_connection_once_and_counts_bad_frames() -> None:
    worker = WorkerProtocol("w", 2)
    assert worker.connections({1}) == W.hello_frame(2, heartbeat=1.0, flat=True)
    assert worker.connections({1}) is None
    assert worker.connections({1, 5}) == W.hello_frame(2, heartbeat=1.0, flat=True)  # the dispatcher restarted
    assert worker.connections(set()) is None
    for frame in [env(W.DONE, {}), env(W.TASKS, []), env(W.TASKS, {"st": 1, "lease": 1, "t": [[1, 0, "x"]]})]:
        step = worker.receive(frame, 0.0)
        assert step.frames == () and type(step.events[0]).__name__ == "Rejected"
    assert worker.statistics().malformed == 3 and worker.held == 0
    step = worker.receive(env(W.TASKS, {"st": 1, "lease": 2.0, "t": [[1, 1, "x"]]}), 0.0)
    assert step.events == (LeaseChanged(), TasksQueued(1))


def test_a_result_with_no_wire_form_is_reported_as_a_failure() -> None:
    worker = WorkerProtocol("w", 1)
    worker.receive(env(W.TASKS, {"st": 4, "lease": 2.0, "t": [[9, 2, "x"]]}), 0.0)
    job = worker.next_job()
    assert job is not None and worker.finished(job, True, object()) is True
    frame = worker.unsendable(4, worker.results_due()[0].body["r"][0], EncodeError("no CBOR form"))
    assert frame.kind == W.DONE and frame.body["r"][0][:3] == [9, 2, False]
    assert frame.body["r"][0][3]["type"] == "EncodeError"
    assert frame.body["r"][0][3]["final"] is True  # no retry can mend it
    assert frame.body["r"][0][3]["message"].startswith(
        "the result of task 9 cannot be sent: an object has no"
    )
    assert (worker.statistics().succeeded, worker.statistics().failed) == (0, 1)


# ---------------------------------------------------------------------- the dispatcher side
def dispatcher(*capacities: int, max_batch: int = 256) -> tuple[DispatcherProtocol, TaskLedger]:
    d = DispatcherProtocol(max_batch=max_batch)
    d.task_connections(len(capacities), 0.0, closed=False)
    for pipe, capacity in enumerate(capacities):
        assert d.receive(env(W.HELLO, {"cap": capacity}, f"w{pipe}"), pipe, 0.0) == (
            WorkerJoined(f"w{pipe}", capacity),
            Progress(),
        )
    ledger = TaskLedger(lease=LEASE, claim_timeout=1.0, max_attempts=3, window=0)
    return d, ledger


def test_the_registry_follows_hellos_byes_and_closed_connections() -> None:
    d, _ = dispatcher(2, 3)
    assert (d.workers, d.capacity) == (("w0", "w1"), 5)
    assert d.receive(env(W.HELLO, {"cap": 7}, "w1"), 1, 0.0) == (Progress(),)  # a new capacity, not a join
    assert d.receive(env(W.HELLO, {"cap": 1}, "w1"), 9, 0.0) == (
        Progress(),
    )  # a second connection, one worker
    assert d.capacity == 3
    assert d.connections_closed([1], 0.0) == ()  # w1 still has connection 9
    assert d.connections_closed([9], 0.0) == (WorkerLeft("w1", "lost its connection"), Progress())
    assert d.receive(env(W.BYE, {}, "w0"), 0, 0.0)[0] == WorkerLeft("w0", "said bye")
    assert (d.workers, d.capacity) == ((), 0)
    assert (
        d.receive(env(W.HELLO, {"cap": 2}, "late"), 12, 0.0, pipe_closed=True) == ()
    )  # read after its close
    stats = d.statistics()
    assert (stats.workers_joined, stats.workers_lost, stats.malformed) == (2, 2, 0)
    d.task_connections(0, 0.0, closed=True)
    assert d.receive(env(W.HELLO, {"cap": 4}, "w0"), 0, 0.0)[0] == WorkerJoined("w0", 4)
    assert d.capacity == 0  # no task connection: nothing can be sent


def test_batches_wait_for_room_for_a_good_one() -> None:
    d, ledger = dispatcher(8)
    stream = d.open_stream(ledger)
    for n in range(40):
        ledger.submit(n)
    first = d.grant(stream, 0.0)
    assert first.frame is not None and len(first.frame.body["t"]) == 8 and first.more_room
    items = first.frame.body["t"]
    d.receive(env(W.CLAIM, {"st": stream.id, "c": [i[:2] for i in items]}, "w0"), 0, 0.0)
    done = [[i[0], i[1], True, i[2]] for i in items]
    d.receive(env(W.DONE, {"st": stream.id, "r": done[:3]}, "w0"), 0, 0.0)
    assert d.grant(stream, 0.0).frame is None  # 3 back: less than half a worker's share
    d.receive(env(W.DONE, {"st": stream.id, "r": done[3:4]}, "w0"), 0, 0.0)
    again = d.grant(stream, 0.0)
    assert again.frame is not None and [i[0] for i in again.frame.body["t"]] == [8, 9, 10, 11]
    assert d.in_flight == 8 == d.capacity
    assert d.grant(stream, 0.0).frame is None


def test_frames_reach_their_stream_and_bad_input_is_counted() -> None:
    d, ledger = dispatcher(4)
    other = TaskLedger(lease=LEASE, max_attempts=3, window=0)
    stream, second = d.open_stream(ledger), d.open_stream(other)
    ledger.submit("a")
    grant = d.grant(stream, 0.0)
    assert grant.frame is not None and grant.frame.body["st"] == stream.id != second.id
    bad = [
        (env(W.DONE, [], "w0"), 0),  # not a map
        (env("nonsense", {}, "w0"), 0),  # unknown kind
        (env(W.CLAIM, {"st": stream.id, "c": [[0, 1]]}, ""), 5),  # no worker name
        (env(W.CLAIM, {"st": stream.id, "c": [[0, 1]]}, "mallory"), 0),  # another worker's connection
        (env(W.HELLO, {"cap": 0}, "w0"), 0),
    ]
    for envelope, pipe in bad:
        assert [type(e) for e in d.receive(envelope, pipe, 0.0)] == [Rejected]
    events = d.receive(env(W.CLAIM, {"st": stream.id, "c": [[0, 1], [0, 2], "x", [99, 1]]}, "w0"), 0, 0.0)
    assert type(events[0]) is Rejected and events[0].count == 3 and events[0].stream == stream.id
    assert stream.malformed == 3 and second.malformed == 0
    assert d.statistics().malformed == len(bad) + 3
    d.close_stream(second)
    assert d.receive(env(W.DONE, {"st": second.id, "r": []}, "w0"), 0, 0.0) == ()
    assert d.statistics().stale_replies == 1 and d.statistics().distributions == 1


def test_a_claim_read_after_its_connection_closed_is_void() -> None:
    d, ledger = dispatcher(4)
    stream = d.open_stream(ledger)
    ledger.submit("a")
    d.grant(stream, 0.0)
    assert d.receive(env(W.CLAIM, {"st": stream.id, "c": [[0, 1]]}, "w0"), 0, 0.1, pipe_closed=True) == ()
    assert d.connections_closed([0], 0.2)[0] == DeadlinesMoved()  # what was pushed may have died with it
    assert ledger.next_deadline() == pytest.approx(0.7)  # claim_timeout 1.0, hastened to 0.2 + 0.5
    assert ledger.expire(0.7) == [0] and ledger.statistics().per_worker == {}


def test_a_task_with_no_wire_form_ends_at_once() -> None:
    d, ledger = dispatcher(1)
    stream = d.open_stream(ledger)
    ledger.submit(object())
    grant = d.grant(stream, 0.0)
    assert grant.frame is not None
    error = d.unsendable(stream, grant.frame.body["t"][0], EncodeError("no CBOR form"), 0.0)
    assert error.type == "EncodeError"
    (outcome,) = ledger.pop_outcomes()
    assert outcome.error == error and d.in_flight == 0


class RefRegistry:
    """Who the dispatcher knows, written out plainly: a connection belongs to the first name
    heard on it while it was open (forgotten once it closed); a name is a worker from its
    hello over an open connection, until its bye or its last connection closes."""

    def __init__(self) -> None:
        self.owner: dict[int, str] = {}
        self.closed: set[int] = set()
        self.capacity: dict[str, int] = {}
        self.joined = self.lost = self.malformed = 0

    def pipes(self, name: str) -> list[int]:
        return [pipe for pipe, owner in self.owner.items() if owner == name and pipe not in self.closed]

    def frame(self, name: str, pipe: int, kind: str, cap: int) -> None:
        if pipe in self.owner and self.owner[pipe] != name:
            self.malformed += 1
            return
        if pipe not in self.owner and pipe not in self.closed:
            self.owner[pipe] = name
        if kind == W.HELLO and pipe not in self.closed and self.pipes(name):
            self.joined += self.capacity.get(name, 0) == 0
            self.capacity[name] = cap
        elif kind == W.BYE:
            self.lose(name)

    def lose(self, name: str) -> None:
        if self.capacity.get(name, 0):
            self.lost += 1
        self.capacity[name] = 0

    def close(self, pipe: int) -> None:
        self.closed.add(pipe)
        name = self.owner.pop(pipe, None)
        if name is not None and not self.pipes(name):
            self.lose(name)


REGISTRY_OP = st.tuples(
    st.sampled_from([W.HELLO, W.HELLO, W.BYE, "close"]), st.sampled_from(["a", "b"]), st.integers(0, 3), st.integers(1, 5)
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(REGISTRY_OP, max_size=30), st.integers(0, 2))
def test_the_registry_matches_a_naive_one(
    ops: list[tuple[str, str, int, int]], task_connections: int
) -> None:
    d, ref = DispatcherProtocol(), RefRegistry()
    d.task_connections(task_connections, 0.0, closed=False)
    for kind, name, pipe, cap in ops:
        if kind == "close":
            if pipe not in ref.closed:
                ref.close(pipe)
                d.connections_closed([pipe], 0.0)
            continue
        body = {"cap": cap} if kind == W.HELLO else {}
        d.receive(env(kind, body, name), pipe, 0.0, pipe_closed=pipe in ref.closed)
        ref.frame(name, pipe, kind, cap)
        workers = {n: c for n, c in ref.capacity.items() if c}
        assert d.workers == tuple(sorted(workers))
        assert d.capacity == (sum(workers.values()) if task_connections else 0)
        stats = d.statistics()
        assert (stats.workers_joined, stats.workers_lost, stats.malformed) == (
            ref.joined,
            ref.lost,
            ref.malformed,
        )


def test_a_final_failure_ends_its_task_at_once_and_another_is_retried() -> None:
    d, ledger = dispatcher(4)
    stream = d.open_stream(ledger)
    ledger.submit("a")
    ledger.submit("b")
    grant = d.grant(stream, 0.0)
    assert grant.frame is not None
    (first, attempt_1, _), (second, attempt_2, _) = grant.frame.body["t"]
    d.receive(env(W.CLAIM, {"st": stream.id, "c": [[first, attempt_1], [second, attempt_2]]}, "w0"), 0, 0.0)
    failures = [
        [first, attempt_1, False, {"type": "EncodeError", "message": "no CBOR form", "final": True}],
        [second, attempt_2, False, {"type": "Boom", "message": "try again"}],
    ]
    d.receive(env(W.DONE, {"st": stream.id, "r": failures}, "w0"), 0, 0.1)
    (outcome,) = ledger.pop_outcomes()  # the other goes round again
    assert outcome.task_id == first and outcome.attempts == 1
    assert outcome.error == Failure("EncodeError", "no CBOR form")
    assert ledger.statistics().retried == 1
