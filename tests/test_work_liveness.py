"""Liveness in work sharing: a worker that goes silent (its host cut off: no connection
closes) is taken as gone after its limit, in memory.

:class:`consensus.work.liveness.Liveness` is run against a naive reference (every frame's
time kept, the rule of ``docs/work.md`` written out plainly); the dispatcher and worker
protocols around it case by case: a silent worker's tasks are redone once, its late
results make no second outcome, its beats are sealed under its session with a secret.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_work_trust import SECRET, WRONG, opened, sealed

from consensus.trust.work import DispatcherKeys, WorkerKeys
from consensus.work import protocol as W
from consensus.work.dispatcher_protocol import (
    DispatcherProtocol,
    LivenessMoved,
    Rejected,
    WorkerLeft,
    WorkerSilent,
)
from consensus.work.ledger import TaskLedger
from consensus.work.liveness import LIVENESS_BEATS, Liveness
from consensus.work.worker_protocol import WorkerProtocol
from patterns import Envelope, Unauthenticated, encode

NAMES = ["w0", "w1", "w2"]


class RefLiveness:
    """The liveness rule written out plainly: every frame's time kept, the limit recomputed."""

    def __init__(self, liveness: float | None) -> None:
        self.liveness = liveness
        self.beats: dict[str, float | None] = {}  # announced heartbeat, for workers that said hello
        self.frames: dict[str, list[float]] = {}  # times heard since the last hello or silence

    def limit(self, worker: str) -> float:
        beat = self.beats.get(worker)
        if beat is None:
            return math.inf
        return LIVENESS_BEATS * beat if self.liveness is None else max(self.liveness, 2 * beat)

    def announce(self, worker: str, beat: float | None) -> None:
        if beat is None or worker not in self.beats:  # a hello starts nothing; a repeated one keeps the clock
            self.frames.pop(worker, None)
        self.beats[worker] = beat
        if beat is None:
            del self.beats[worker]

    def heard(self, worker: str, now: float) -> None:
        if worker in self.beats:
            self.frames.setdefault(worker, []).append(now)

    def forget(self, worker: str) -> None:
        self.beats.pop(worker, None)
        self.frames.pop(worker, None)

    def due(self, now: float) -> list[str]:
        silent = []
        for worker, times in self.frames.items():
            limit = self.limit(worker)
            if not times or now - max(times) < limit:
                continue
            if (
                now - (max(times) + limit) > limit / 3
            ):  # looked at long after it was due: the dispatcher stalled
                times.append(now - limit / 2)  # half its limit more to be heard
            else:
                silent.append(worker)
        for worker in silent:
            self.forget(worker)
        return sorted(silent)

    def deadline(self) -> float | None:
        return min((max(times) + self.limit(w) for w, times in self.frames.items() if times), default=None)


operation = st.one_of(
    st.tuples(st.just("hello"), st.sampled_from(NAMES), st.sampled_from([None, 0.1, 0.5, 1.0, 2.0])),
    st.tuples(st.just("frame"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("forget"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("check"), st.none(), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(
    liveness=st.sampled_from([None, 0.3, 1.5, 4.0]),
    steps=st.lists(st.tuples(st.floats(0, 3), operation), max_size=60),
)
def test_liveness_takes_as_gone_exactly_the_workers_silent_past_their_limit(
    liveness: float | None, steps: list[tuple[float, tuple[str, Any, Any]]]
) -> None:
    live, ref = Liveness(liveness), RefLiveness(liveness)
    now = 0.0
    for advance, (op, worker, beat) in steps:
        now += advance
        if op == "hello":
            live.announce(worker, beat)
            ref.announce(worker, beat)
        elif op == "frame":
            live.heard(worker, now)
            ref.heard(worker, now)
        elif op == "forget":
            live.forget(worker)
            ref.forget(worker)
        else:
            assert sorted(name for name, _ in live.due(now)) == ref.due(now)
        expected = ref.deadline()
        assert live.deadline() == (None if expected is None else pytest.approx(expected))
        for name in NAMES:
            assert live.watched(name) == bool(ref.frames.get(name))


def test_liveness_rejects_a_limit_that_is_no_number_of_seconds() -> None:
    for bad in (0, -1.0, True, "3"):
        with pytest.raises(ValueError, match="liveness must be"):
            Liveness(bad)  # type: ignore[arg-type]
    assert Liveness(math.inf).limit(1.0) == math.inf  # never: liveness off
    assert Liveness(0.5).limit(1.0) == 2.0  # never less than two heartbeats
    assert Liveness().limit(None) == math.inf  # a worker that does not beat is never silent


# ---------------------------------------------------------------------- the dispatcher protocol
def env(kind: str, body: Any, sender: str) -> Envelope:
    return Envelope(kind, sender, 1, body)


def hello(name: str, heartbeat: float | None, tp: list[str]) -> Envelope:
    return env(W.HELLO, W.hello_frame(2, heartbeat=heartbeat, task_pipes=tp).body, name)


def test_a_silent_worker_is_gone_its_tasks_redone_once_and_its_late_results_make_no_second_outcome() -> None:
    d = DispatcherProtocol(max_batch=4)
    ledger = TaskLedger(lease=60.0, claim_timeout=5.0, max_attempts=3, window=0)
    for task in range(4):
        ledger.submit(task)
    ledger.close_input()
    stream = d.open_stream(ledger)
    d.receive(hello("cut", 0.2, ["10.0.0.2:4000"]), 1, 0.0)
    d.receive(hello("fine", 0.2, ["10.0.0.3:4000"]), 2, 0.0)
    d.task_connections(2, 0.0, closed=False)
    batch = d.grant(stream, 0.0).frame
    assert batch is not None and len(batch.body["t"]) == 4
    items = [[t, a] for t, a, _ in batch.body["t"]]
    d.receive(env(W.CLAIM, {"st": stream.id, "c": items[:2]}, "cut"), 1, 0.1)
    d.receive(env(W.CLAIM, {"st": stream.id, "c": items[2:]}, "fine"), 2, 0.1)
    assert d.liveness_deadline() == pytest.approx(0.1 + 3 * 0.2)
    d.receive(env(W.BEAT, {}, "fine"), 2, 0.5)
    assert d.check_liveness(0.69) == ()  # 0.59 s: not yet three heartbeats
    events = d.check_liveness(0.71)
    silent = [e for e in events if type(e) is WorkerSilent]
    assert [(e.name, e.pipes, e.task_addresses) for e in silent] == [("cut", (1,), ("10.0.0.2:4000",))]
    assert silent[0].silence == pytest.approx(0.61)
    assert any(type(e) is WorkerLeft and e.name == "cut" for e in events)
    assert d.workers == ("fine",) and d.capacity == 2
    stats = d.statistics()
    assert stats.workers_silent == 1 and stats.workers_lost == 1
    assert ledger.statistics().redelivered == 2 and ledger.in_flight == 2

    first = [[t, a, True, f"fine did {t}"] for t, a, _ in batch.body["t"][2:]]
    d.receive(env(W.DONE, {"st": stream.id, "r": first}, "fine"), 2, 0.75)  # credit for the redo
    again = d.grant(stream, 0.8).frame  # the cut worker's two tasks, a second attempt each
    assert again is not None and [t[:2] for t in again.body["t"]] == [[t, a + 1] for t, a in items[:2]]
    d.receive(env(W.CLAIM, {"st": stream.id, "c": [t[:2] for t in again.body["t"]]}, "fine"), 2, 0.8)
    redone = [[t, a, True, f"fine did {t}"] for t, a, _ in again.body["t"]]
    d.receive(env(W.DONE, {"st": stream.id, "r": redone}, "fine"), 2, 0.9)
    # the link comes back: the cut worker's old frames arrive (the driver had closed its
    # connection, but a frame already read still reaches the protocol)
    d.receive(
        env(W.DONE, {"st": stream.id, "r": [[t, a, True, "late"] for t, a in items[:2]]}, "cut"), 1, 1.0
    )
    outcomes = ledger.pop_outcomes()
    assert sorted(o.task_id for o in outcomes) == [0, 1, 2, 3]  # each once
    assert all(o.worker == "fine" for o in outcomes)
    assert ledger.statistics().stale == 2
    assert d.check_liveness(10.0) == ()  # "fine" was due at 1.5: so late a check is the dispatcher's stall
    later = d.check_liveness(
        10.31
    )  # half its limit more, and nothing heard: "fine" is silent; "cut" was gone once only
    assert [e.name for e in later if type(e) is WorkerSilent] == ["fine"]
    assert d.statistics().workers_silent == 2


def test_a_dispatcher_that_did_not_run_gives_its_workers_time_to_be_heard() -> None:
    """A check long after the deadline (the dispatcher's loop was blocked) takes no one as
    gone: the frames that came meanwhile may still be unread."""
    d = DispatcherProtocol()
    d.receive(hello("w", 1.0, []), 1, 0.0)
    events = d.receive(env(W.BEAT, {}, "w"), 1, 0.5)
    assert any(type(e) is LivenessMoved for e in events)  # the watcher must look at the new deadline
    assert d.receive(env(W.BEAT, {}, "w"), 1, 0.6) == ()
    assert d.liveness_deadline() == pytest.approx(3.6)
    assert d.check_liveness(3.6 + 1.5) == ()  # 1.5 s late: more than a heartbeat
    assert d.liveness_deadline() == pytest.approx(5.1 + 1.5)
    d.receive(env(W.BEAT, {}, "w"), 1, 5.2)  # the beat that sat unread
    assert d.check_liveness(6.6) == () and d.liveness_deadline() == pytest.approx(8.2)
    assert [type(e).__name__ for e in d.check_liveness(8.3)][:1] == ["WorkerSilent"]  # on time: gone


def test_a_worker_with_no_heartbeat_is_never_silent_and_a_bad_heartbeat_is_refused() -> None:
    d = DispatcherProtocol(liveness=0.1)
    d.receive(hello("old", None, []), 1, 0.0)
    d.receive(env(W.BEAT, {}, "old"), 1, 0.1)
    assert d.liveness_deadline() is None and d.check_liveness(100.0) == ()
    for bad in (0, -1, "1", 1e9, True):
        events = d.receive(env(W.HELLO, {"cap": 1, "hb": bad, "tp": []}, "w"), 2, 0.0)
        assert type(events[0]) is Rejected and "'hb'" in str(events[0].error)
    events = d.receive(env(W.HELLO, {"cap": 1, "tp": "no list"}, "w"), 2, 0.0)
    assert type(events[0]) is Rejected and "'tp'" in str(events[0].error)


# ---------------------------------------------------------------------- the worker protocol
def test_a_worker_beats_only_when_nothing_else_went_out_for_a_heartbeat() -> None:
    worker = WorkerProtocol("w", 2, heartbeat=0.5)
    assert worker.beat(10.0) is None and worker.beat_wait(10.0) == 0.5  # no connection yet
    first = worker.connections({1})
    assert first is not None and first.body["hb"] == 0.5
    assert worker.beat(0.0) == W.beat_frame()
    worker.sent(1.0)
    assert worker.beat(1.4) is None and worker.beat_wait(1.4) == pytest.approx(0.1)
    assert worker.beat(1.5) == W.beat_frame()
    quiet = WorkerProtocol("q", 2, heartbeat=None)
    hello_body = quiet.connections({1})
    assert hello_body is not None and "hb" not in hello_body.body
    assert quiet.beat(100.0) is None and quiet.beat_wait(0.0) == math.inf
    with pytest.raises(ValueError, match="heartbeat must be"):
        WorkerProtocol("w", 1, heartbeat=0.0)


def test_without_a_secret_the_hello_names_the_task_connections_too() -> None:
    worker = WorkerProtocol("w", 2)
    assert worker.task_connections({"10.0.0.2:4000"}) is None  # no results connection yet
    assert worker.connections({1}) is not None
    again = worker.task_connections({"10.0.0.2:4000", "10.0.0.2:4001"})
    assert again is not None and again.body["tp"] == ["10.0.0.2:4000", "10.0.0.2:4001"]


# ---------------------------------------------------------------------- with a secret
def test_with_a_secret_beats_are_sealed_under_the_workers_session_and_forgeries_refused() -> None:
    keys = DispatcherKeys(SECRET)
    d = DispatcherProtocol(keys=keys)
    ledger = TaskLedger(lease=60.0, claim_timeout=5.0, max_attempts=3, window=0)
    ledger.submit("t")
    stream = d.open_stream(ledger)
    wkeys = WorkerKeys(SECRET, "w")
    worker = WorkerProtocol("w", 2, keys=wkeys, heartbeat=0.2)
    worker.task_connections({"127.0.0.1:40001"})
    first = worker.connections({1})
    assert first is not None
    d.receive(opened(keys.results, sealed(wkeys.results, first, "w", 1)), 1, 0.0)
    assert worker.beat(5.0) is None  # no session before the first batch: nothing to seal a beat under
    assert d.task_pipes is not None
    d.task_pipes.connections({1: "127.0.0.1:40001"}, 0.0)
    d.task_connections(1, 0.0, closed=False)
    grant = d.grant(stream, 0.0).frame
    assert grant is not None
    batch = Envelope(W.TASKS, "dispatcher", 1, grant.body)
    step = worker.receive(opened(wkeys.tasks, keys.tasks.seal(encode(batch), W.TASKS)), 0.0)
    for seq, frame in enumerate(step.frames, 2):
        d.receive(opened(keys.results, sealed(wkeys.results, frame, "w", seq)), 1, 0.1)
    beat = worker.beat(0.5)
    assert beat is not None
    d.receive(opened(keys.results, sealed(wkeys.results, beat, "w", 10)), 1, 0.5)
    assert d.liveness_deadline() == pytest.approx(0.5 + 3 * 0.2)  # the sealed beat counted
    assert d.statistics().unauthenticated == 0

    stranger = WorkerKeys(WRONG, "w")  # the wrong secret: no session, and a join key that fails
    stranger.dispatcher_key(keys.kx)
    with pytest.raises(Unauthenticated):
        opened(keys.results, sealed(stranger.results, W.beat_frame(), "w", 11))
    other = WorkerKeys(SECRET, "x")  # the right secret, another worker's name, no session of its own
    other.dispatcher_key(keys.kx)
    with pytest.raises(Unauthenticated):
        opened(keys.results, sealed(other.results, W.beat_frame(), "w", 12))
    assert d.liveness_deadline() == pytest.approx(1.1)  # neither kept "w" alive
