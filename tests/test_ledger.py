"""The work-sharing ledger (``consensus.work.ledger``): a sans-IO state machine checked against a naive reference.

Arbitrary interleavings of submissions, assignments, results and failures (current,
stale and impossible attempts, named and unnamed workers), lease expiries, departures,
window changes, pops and cancellation run in lock-step on :class:`TaskLedger` and on
``tests/_reference_ledger.py``; then the properties the issue asks for (exactly once,
the poison task, ordered release, bounded memory over a long stream) and edge cases.
"""

from __future__ import annotations

import math
import random
from dataclasses import FrozenInstanceError, asdict, fields
from typing import Any

import pytest
from _reference_ledger import RefLedger, RefOutcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.work.ledger import (
    Assignment,
    Failure,
    LedgerStatistics,
    Outcome,
    Receipt,
    TaskLedger,
    WorkerShare,
)
from consensus.work.task import success

SOME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORKERS = ["a", "b", "c"]
LEASE = 2.0
CLAIM_TIMEOUT = 1.0

REPLIERS = [None, *WORKERS, "holder"]  # "holder": the worker the attempt was assigned to
# How often each kind of event is drawn, out of 38.
KINDS = ["submit"] * 5 + ["assign"] * 6 + ["result"] * 5 + ["failure"] * 3 + ["claim"] * 3 + ["tick"] * 2 + [
    "release", "hasten", "expire", "gone", "window", "pop", "pop", "assign_many", "assign_many",
    "claims", "claims", "replies", "replies", "replies",
]  # fmt: skip


@st.composite
def op(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(KINDS))
    if kind == "assign":
        return (kind, draw(st.sampled_from([None, *WORKERS])))
    if kind == "assign_many":
        return (kind, draw(st.sampled_from([None, *WORKERS])), draw(st.integers(0, 4)))
    if kind in ("claims", "replies"):  # one message of items from one worker
        # per item: which task, attempts back from its latest (-1: never dispatched), ok (replies)
        item = st.tuples(
            st.integers(0, 40), st.sampled_from([0, 0, 0, 0, 1, -1]), st.sampled_from([True] * 4 + [False])
        )
        return (kind, draw(st.lists(item, max_size=6)), draw(st.sampled_from(WORKERS)), draw(st.booleans()))
    if kind in ("result", "failure", "claim", "release"):
        # which task, attempts back from its latest (-1: one never dispatched), who replies,
        # and whether to aim at a task in flight (else at any task ever submitted)
        back = draw(st.sampled_from([0, 0, 0, 1, 1, 2, -1]))
        return (kind, draw(st.integers(0, 40)), back, draw(st.sampled_from(REPLIERS)), draw(st.booleans()))
    if kind == "tick":
        return (kind, draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5])))
    if kind == "gone":
        return (kind, draw(st.sampled_from(WORKERS)))
    if kind == "hasten":
        return (kind, draw(st.sampled_from([0.0, 0.25, 0.5])))
    if kind == "window":
        return (kind, draw(st.integers(0, 4)))
    return (kind,)


def plain(outcome: Outcome) -> RefOutcome:
    error = None if outcome.error is None else outcome.error.type
    return (outcome.task_id, outcome.ok, outcome.result, error, outcome.attempts, outcome.worker)


def stats_dict(stats: LedgerStatistics) -> dict[str, Any]:
    out = {f.name: getattr(stats, f.name) for f in fields(stats) if f.name != "per_worker"}
    out["per_worker"] = {name: asdict(ws) for name, ws in stats.per_worker.items()}
    return out


def outcome_ids(outcomes: list[Outcome]) -> list[int]:
    return [o.task_id for o in outcomes]


class Run:
    """One ledger and the reference, driven in lock-step; collects what was popped and cancelled."""

    def __init__(self, *, max_attempts: int, window: int, ordered: bool, prefetch: int | None) -> None:
        kw: dict[str, Any] = {"max_attempts": max_attempts, "window": window, "ordered": ordered}
        self.ledger = TaskLedger(lease=LEASE, prefetch=prefetch, claim_timeout=CLAIM_TIMEOUT, **kw)
        self.ref = RefLedger(lease=LEASE, prefetch=prefetch, claim_timeout=CLAIM_TIMEOUT, **kw)
        self.now = 100.0
        self.popped: list[Outcome] = []
        self.cancelled: list[int] = []

    def both_raise_or_agree(self, call: Any, ref_call: Any) -> Any:
        try:
            want = ref_call()
        except ValueError:
            with pytest.raises(ValueError):
                call()
            return None
        got = call()
        return got, want

    def step(self, event: tuple[Any, ...]) -> None:
        ledger, ref, kind = self.ledger, self.ref, event[0]
        if kind == "submit":
            name = f"t{len(ref.tasks)}"
            pair = self.both_raise_or_agree(lambda: ledger.submit(name), lambda: ref.submit(None))
            if pair is not None:
                assert pair[0] == pair[1]
        elif kind == "assign":
            got = ledger.next_assignment(self.now, event[1])
            want = ref.next_assignment(self.now, event[1])
            if got is None:
                assert want is None
            else:
                assert (got.task_id, got.attempt, got.deadline, got.worker) == want
                assert got.task == f"t{got.task_id}"
                assert got.attempt <= 2 * ledger.max_attempts  # unclaimed losses are free, up to a bound
                assert ledger.statistics().in_flight <= ledger.window
        elif kind == "assign_many":  # as many next_assignment calls, up to the first None
            batch = ledger.next_assignments(self.now, event[2], event[1])
            wanted: list[tuple[int, int]] = []
            for _ in range(event[2]):
                one = ref.next_assignment(self.now, event[1])
                if one is None:
                    break
                wanted.append(one[:2])
            assert [(task_id, attempt) for task_id, attempt, _ in batch] == wanted
            assert all(task == f"t{task_id}" for task_id, _, task in batch)
        elif kind in ("claims", "replies"):  # the batch forms, against one reference call per item
            _, picked, name, aim = event
            mine = [t for t in ref.in_state("flight") if t["worker"] in (name, None)] if aim else []
            targets = sorted(t["id"] for t in (mine or ref.tasks))
            items: list[list[Any]] = []
            for pick, back, ok in picked:
                task_id = targets[pick % len(targets)] if targets else pick
                attempt = max(1, ref.tasks[task_id]["attempt"] - back) if targets else 1
                value = ("r", task_id, attempt) if ok else Failure("Boom", f"{task_id}/{attempt}")
                items.append([task_id, attempt, ok, value] if kind == "replies" else [task_id, attempt])
            want_errors = 0
            for task_id, attempt, *reply in items:
                try:
                    if kind == "claims":
                        ref.claim(task_id, attempt, name, self.now)
                    elif reply[0]:
                        ref.result(task_id, attempt, reply[1], name)
                    else:
                        ref.failure(task_id, attempt, "Boom", name)
                except ValueError:
                    want_errors += 1
            method = ledger.claims if kind == "claims" else ledger.replies
            errors = method(items, worker=name, now=self.now)
            assert len(errors) == want_errors and all(isinstance(e, ValueError) for e in errors)
        elif kind in ("result", "failure", "claim", "release"):
            _, pick, back, worker, aim_in_flight = event
            targets = ref.in_state("flight") if aim_in_flight else []
            targets = targets or ref.tasks
            task_id = sorted(t["id"] for t in targets)[pick % len(targets)] if targets else pick
            t = ref.tasks[task_id] if targets else {"attempt": 0, "worker": None}
            attempt = max(1, t["attempt"] - back)
            if worker == "holder":
                worker = t["worker"]
            if kind in ("claim", "release"):
                claimant = worker or "a"
                method = getattr(ledger, kind)
                pair = self.both_raise_or_agree(
                    lambda: method(task_id, attempt, worker=claimant, now=self.now),
                    lambda: getattr(ref, kind)(task_id, attempt, claimant, self.now),
                )
                if pair is not None:
                    assert pair[0] is pair[1]
                self.check()
                return
            if kind == "result":
                value = ("r", task_id, attempt)
                pair = self.both_raise_or_agree(
                    lambda: ledger.result(task_id, attempt, value, worker=worker, now=self.now),
                    lambda: ref.result(task_id, attempt, value, worker),
                )
            else:
                error = Failure("Boom", f"{task_id}/{attempt}")
                pair = self.both_raise_or_agree(
                    lambda: ledger.failure(task_id, attempt, error, worker=worker, now=self.now),
                    lambda: ref.failure(task_id, attempt, "Boom", worker),
                )
            if pair is not None:
                assert isinstance(pair[0], Receipt) and pair[0].value == pair[1]
        elif kind == "tick":
            self.now += event[1]
            assert ledger.expire(self.now) == ref.expire(self.now)
        elif kind == "expire":
            assert ledger.expire(self.now) == ref.expire(self.now)
        elif kind == "hasten":
            assert ledger.hasten_unclaimed(self.now, event[1]) == ref.hasten_unclaimed(self.now, event[1])
        elif kind == "gone":
            assert ledger.worker_gone(event[1], self.now) == ref.worker_gone(event[1])
        elif kind == "window":
            ledger.set_window(event[1])
            ref.window = event[1]
        elif kind == "pop":
            popped = ledger.pop_outcomes()
            assert [plain(o) for o in popped] == ref.pop_outcomes()
            assert all(o.task == f"t{o.task_id}" for o in popped)
            self.popped.extend(popped)
        elif kind == "close":
            ledger.close_input()
            ref.closed = True
        elif kind == "cancel":
            ids = ledger.cancel()
            assert ids == ref.cancel()
            self.cancelled.extend(ids)
        self.check()

    def check(self) -> None:
        ledger, ref = self.ledger, self.ref
        stats = ledger.statistics()
        assert stats_dict(stats) == ref.statistics()
        assert (
            stats.queued + stats.in_flight + stats.ready + stats.released + stats.cancelled == stats.submitted
        )
        assert stats.done_ok + stats.failed == stats.ready + stats.released
        assert ledger.wants_more() == ref.wants_more()
        extra = ref.window if ref.prefetch is None else ref.prefetch
        held = len(ref.in_state("queued", "flight", "finished"))
        assert ledger.room() == (0 if ref.closed else max(0, ref.window + extra - held))
        assert ledger.done == ref.done
        deadlines = [t["deadline"] for t in ref.in_state("flight")]
        assert ledger.next_deadline() == (min(deadlines) if deadlines else None)
        ids = outcome_ids(self.popped)
        assert len(ids) == len(set(ids)), "a task's outcome came out twice"
        if ledger.ordered:
            assert ids == sorted(ids)

    def drain(self) -> None:
        """Finish the stream with a healthy worker; every task must end exactly once."""
        ledger = self.ledger
        ledger.close_input()
        ledger.set_window(2)
        for _ in range(10_000):
            self.popped.extend(ledger.pop_outcomes())
            if ledger.done:
                break
            a = ledger.next_assignment(self.now, "z")
            if a is not None:
                assert ledger.result(a.task_id, a.attempt, "late", worker="z", now=self.now) is Receipt.DONE
                continue
            self.now += LEASE
            ledger.expire(self.now)
        assert ledger.done
        ids = outcome_ids(self.popped)
        assert len(ids) == len(set(ids))
        assert not set(ids) & set(self.cancelled)
        assert sorted(ids + self.cancelled) == list(range(ledger.statistics().submitted))
        assert all(1 <= o.attempts <= ledger.max_attempts for o in self.popped)
        if ledger.ordered:
            assert ids == sorted(ids)


@SOME
@given(
    events=st.lists(op(), min_size=20, max_size=80),
    close_at=st.none() | st.integers(0, 80),
    cancel_at=st.none() | st.integers(0, 80),
    max_attempts=st.integers(1, 3),
    window=st.integers(0, 3),
    ordered=st.booleans(),
    prefetch=st.none() | st.integers(0, 2),
)
def test_ledger_matches_a_naive_reference(
    events: list[tuple[Any, ...]],
    close_at: int | None,
    cancel_at: int | None,
    max_attempts: int,
    window: int,
    ordered: bool,
    prefetch: int | None,
) -> None:
    run = Run(max_attempts=max_attempts, window=window, ordered=ordered, prefetch=prefetch)
    for i, event in enumerate(events):
        if i == close_at:
            run.step(("close",))
        if i == cancel_at:
            run.step(("cancel",))
        run.step(event)
    run.drain()


@SOME
@given(
    n=st.integers(1, 8),
    poison=st.integers(0, 7),
    max_attempts=st.integers(1, 4),
    deaths=st.lists(st.sampled_from(["failure", "expire", "gone"]), min_size=4, max_size=4),
    ordered=st.booleans(),
)
def test_a_poison_task_ends_failed_after_exactly_max_attempts(
    n: int, poison: int, max_attempts: int, deaths: list[str], ordered: bool
) -> None:
    poison %= n
    ledger = TaskLedger(lease=1.0, max_attempts=max_attempts, window=3, ordered=ordered)
    for i in range(n):
        ledger.submit(i)
    ledger.close_input()
    now, hired, popped = 0.0, 0, []
    for _ in range(100):
        if ledger.done:
            break
        batch = []  # one fresh worker per attempt, so that a death touches only its own task
        while (a := ledger.next_assignment(now, f"w{hired}")) is not None:
            hired += 1
            batch.append(a)
        batch.sort(key=lambda a: a.task_id == poison)  # the others answer first
        for a in batch:
            if a.task_id != poison:
                ledger.result(a.task_id, a.attempt, a.task * 10, worker=a.worker, now=now)
                continue
            assert a.attempt <= max_attempts and a.worker is not None
            how = deaths[a.attempt - 1]
            if how == "failure":
                error = RuntimeError(f"crash {a.attempt}")
                ledger.failure(a.task_id, a.attempt, error, worker=a.worker, now=now)
            elif how == "gone":
                assert ledger.worker_gone(a.worker, now) == [poison]
            else:
                now += 1.0
                assert ledger.expire(now) == [poison]
        popped.extend(ledger.pop_outcomes())
    assert ledger.done
    assert sorted(outcome_ids(popped)) == list(range(n))
    for o in popped:
        if o.task_id == poison:
            assert not o.ok and o.attempts == max_attempts and o.result is None
            assert o.error is not None
            want = {"failure": "RuntimeError", "gone": "WorkerLost", "expire": "LeaseExpired"}
            assert o.error.type == want[deaths[max_attempts - 1]]
        else:
            assert o.ok and o.result == o.task_id * 10 and o.attempts == 1
    stats = ledger.statistics()
    assert stats.failed == 1 and stats.done_ok == n - 1
    assert stats.retried + stats.redelivered == max_attempts - 1


def sizes(ledger: TaskLedger) -> dict[str, int]:
    """The length of every container the ledger holds, whatever it names them."""
    return {k: len(v) for k, v in vars(ledger).items() if hasattr(v, "__len__") and not isinstance(v, str)}


@pytest.mark.parametrize("ordered", [False, True])
def test_memory_stays_flat_over_a_long_stream(ordered: bool) -> None:
    total, window = 200_000, 8
    ledger = TaskLedger(lease=5.0, max_attempts=3, window=window, ordered=ordered)
    rng = random.Random(7)
    source = iter(range(total))
    flying: list[Assignment] = []
    now, next_expected, biggest = 0.0, 0, 0
    while not ledger.done:
        while ledger.wants_more():
            item = next(source, None)
            if item is None:
                ledger.close_input()
                break
            ledger.submit(item)
        while (a := ledger.next_assignment(now, rng.choice(WORKERS))) is not None:
            flying.append(a)
        if flying:
            i = rng.randrange(len(flying))  # finish out of order
            a = flying[i]
            flying[i] = flying[-1]
            flying.pop()
            if rng.random() < 0.01 and a.attempt < 3:
                ledger.failure(a.task_id, a.attempt, Failure("Flaky", "once"), worker=a.worker, now=now)
            else:
                ledger.result(a.task_id, a.attempt, a.task, worker=a.worker, now=now)
        now += 0.001
        for o in ledger.pop_outcomes():
            assert o.ok and o.result == o.task_id
            if ordered:
                assert o.task_id == next_expected
            next_expected += 1
        if next_expected % 997 == 0:
            biggest = max(biggest, *sizes(ledger).values())
    assert next_expected == total
    assert biggest <= 2 * window
    assert all(n == 0 for k, n in sizes(ledger).items() if k != "_workers"), sizes(ledger)
    assert len(sizes(ledger)) >= 5  # the measure did see the ledger's containers
    stats = ledger.statistics()
    assert stats.released == stats.submitted == total and stats.queued == stats.in_flight == 0
    assert set(stats.per_worker) == set(WORKERS)


def test_a_stalled_consumer_stops_intake() -> None:
    """Unpopped outcomes count against the high-water mark (2 x window by default)."""
    ledger = TaskLedger(lease=1.0, max_attempts=1, window=2)
    assert ledger.high_water == 4
    while ledger.wants_more():
        ledger.submit("x")
    assert ledger.statistics().submitted == 4
    for _ in range(2):
        a = ledger.next_assignment(0.0)
        assert a is not None
        ledger.result(a.task_id, a.attempt, 1, worker=None, now=0.0)
    assert not ledger.wants_more()  # two finished, not popped; two queued
    assert len(ledger.pop_outcomes()) == 2 and ledger.wants_more()
    assert TaskLedger(lease=1.0, max_attempts=1, window=2, prefetch=0).high_water == 2


def test_retries_go_first_then_fresh_tasks_in_order() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=3, window=1)
    assert [ledger.submit(t) for t in "abc"] == [0, 1, 2]
    a = ledger.next_assignment(0.0, "w")
    assert a == Assignment(0, 1, "a", 1.0, "w")
    assert ledger.next_assignment(0.0) is None  # window full
    assert ledger.failure(0, 1, Failure("E", "x"), worker="w", now=0.5) is Receipt.REQUEUED
    assert ledger.next_assignment(0.5) == Assignment(0, 2, "a", 1.5, None)
    assert ledger.result(0, 2, "A", worker="v", now=0.6) is Receipt.DONE
    b = ledger.next_assignment(0.7)
    assert b is not None and (b.task_id, b.attempt) == (1, 1)
    [o] = ledger.pop_outcomes()
    assert o == Outcome(0, "a", "A", None, 2, "v") and o.ok
    assert ledger.statistics().retried == 1


def test_a_late_success_wins_and_the_current_attempt_becomes_stale() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=3, window=2)
    ledger.submit("t")
    ledger.submit("u")
    ledger.next_assignment(0.0, "slow")
    assert ledger.expire(1.0) == [0]  # deadline == now: expired
    second = ledger.next_assignment(1.0, "fast")
    assert second is not None and second.attempt == 2
    # The slow worker's first attempt finishes after all: accepted, exactly once.
    assert ledger.result(0, 1, "slow answer", worker="slow", now=1.2) is Receipt.DONE
    assert ledger.result(0, 2, "fast answer", worker="fast", now=1.3) is Receipt.STALE
    assert ledger.failure(0, 2, Failure("E", "x"), worker="fast", now=1.3) is Receipt.STALE
    [o] = ledger.pop_outcomes()
    assert (o.result, o.worker, o.attempts) == ("slow answer", "slow", 2)
    stats = ledger.statistics()
    assert (stats.late_accepted, stats.stale, stats.redelivered, stats.in_flight) == (1, 2, 1, 0)
    assert stats.per_worker["fast"].in_flight == 0 and stats.per_worker["fast"].stale == 2
    assert stats.per_worker["slow"].lost == 1 and stats.per_worker["slow"].ok == 1
    # A late success while the task waits in the retry queue takes it out of the queue.
    ledger.next_assignment(1.5, "slow")
    assert ledger.worker_gone("slow", 1.6) == [1]
    assert ledger.result(1, 1, "done anyway", worker=None, now=1.7) is Receipt.DONE
    assert ledger.next_assignment(1.8) is None
    assert ledger.statistics().queued == 0


def test_failures_end_as_a_dead_letter_carrying_the_last_error() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=2, window=1)
    ledger.submit("t")
    ledger.next_assignment(0.0)
    assert ledger.failure(0, 1, ValueError("first"), worker="w", now=0.1) is Receipt.REQUEUED
    ledger.next_assignment(0.2)
    assert ledger.failure(0, 2, KeyError("second"), worker="w", now=0.3) is Receipt.DONE
    [o] = ledger.pop_outcomes()
    assert o.error == Failure("KeyError", "'second'") and o.attempts == 2 and not o.ok
    assert str(o.error) == "KeyError: 'second'" and o.error.to_wire() == {
        "type": "KeyError",
        "message": "'second'",
    }
    stats = ledger.statistics()
    assert (stats.failed, stats.retried, stats.per_worker["w"].failed) == (1, 1, 2)


def test_a_lease_expiring_on_the_last_attempt_names_the_handler_error_before_it() -> None:
    ledger = TaskLedger(lease=2.0, max_attempts=2, window=1)
    ledger.submit("t")
    ledger.next_assignment(0.0, "w")
    ledger.failure(0, 1, Failure("Boom", "bad input"), worker="w", now=0.5)
    assert ledger.next_deadline() is None
    assert ledger.next_assignment(1.0, "w") is not None
    assert ledger.next_deadline() == 3.0
    assert ledger.expire(2.999) == []
    assert ledger.expire(3.0) == [0]
    [o] = ledger.pop_outcomes()
    assert o.error is not None and o.error.type == "LeaseExpired"
    assert o.error.message == "lease expired after 2 attempts; last handler error: Boom: bad input"
    assert o.worker == "w"


def test_a_final_failure_ends_the_task_whatever_attempts_remain() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=5, window=1)
    ledger.submit(object())
    a = ledger.next_assignment(0.0)
    assert a is not None
    error = Failure("EncodeError", "no wire form")
    assert ledger.failure(0, 1, error, worker=None, now=0.0, final=True) is Receipt.DONE
    [o] = ledger.pop_outcomes()
    assert (o.ok, o.error, o.attempts) == (False, error, 1)


def test_a_claim_names_the_holder_and_renews_the_lease() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=3, window=3)
    for name in ("a", "b", "c"):
        ledger.submit(name)
    for _ in range(3):
        ledger.next_assignment(0.0)  # placed by the transport: nobody's yet
    assert ledger.claim(0, 1, worker="w", now=0.5)
    assert ledger.claim(1, 1, worker="w", now=0.6)
    assert not ledger.claim(1, 1, worker="intruder", now=0.6), "another worker holds it"
    assert ledger.next_deadline() == 1.0  # task 2, unclaimed, expires first
    assert ledger.expire(1.2) == [2]
    assert ledger.claim(0, 1, worker="w", now=1.3)  # renewed while working
    assert ledger.expire(1.55) == []
    assert ledger.next_deadline() == 1.6  # task 1's lease, then task 0's (renewed to 2.3)
    assert ledger.worker_gone("w", now=1.56) == [1, 0]
    stats = ledger.statistics()
    assert stats.per_worker["w"] == WorkerShare(assigned=2, in_flight=0, lost=2)
    assert stats.redelivered == 3
    assert ledger.queued_tasks() == {0: "a", 1: "b", 2: "c"} and ledger.in_flight_tasks() == {}
    assert ledger.next_assignment(2.0) is not None
    assert ledger.in_flight_tasks() == {2: "c"} and (ledger.in_flight, ledger.pending) == (1, 3)
    assert not ledger.claim(0, 1, worker="w", now=1.6), "that attempt was taken back"


def test_a_released_attempt_goes_first_in_line_and_does_not_count() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=1, window=2)
    for name in ("a", "b", "c"):
        ledger.submit(name)
    first = ledger.next_assignment(0.0)
    second = ledger.next_assignment(0.0)
    assert first is not None and second is not None
    assert ledger.release(1, 1, worker="busy", now=0.1)
    with pytest.raises(ValueError, match="release for attempt 1 of task 1, which has had 0"):
        ledger.release(1, 1, worker="busy", now=0.1)  # that attempt is void: it never happened
    again = ledger.next_assignment(0.2, "idle")
    assert again is not None and (again.task_id, again.attempt) == (1, 1), "first in line, attempt 1 again"
    assert ledger.result(1, 1, "B", worker="idle", now=0.3) is Receipt.DONE
    assert ledger.statistics().returned == 1 and ledger.statistics().redelivered == 0
    assert ledger.claim(0, 1, worker="w", now=0.3)
    assert not ledger.release(0, 1, worker="other", now=0.3), "w holds it"


def test_an_unclaimed_attempt_expires_at_its_claim_timeout_a_claimed_one_at_its_lease() -> None:
    ledger = TaskLedger(lease=10.0, max_attempts=2, window=2, claim_timeout=1.0)
    ledger.submit("claimed")
    ledger.submit("lost on the way")
    for _ in range(2):
        ledger.next_assignment(0.0)
    assert ledger.next_deadline() == 1.0
    assert ledger.claim(0, 1, worker="w", now=0.5)
    assert ledger.expire(1.0) == [1]
    assert ledger.next_deadline() == 10.5
    assert TaskLedger(lease=1.0, max_attempts=1, window=1, claim_timeout=5.0).claim_timeout == 1.0


def test_unclaimed_losses_do_not_count_until_they_reach_max_attempts() -> None:
    """A task lost in transit (never claimed, so never started) is sent again without using
    up an attempt, up to max_attempts such losses; after that they count, so a task whose
    claims never arrive still ends, after 2 * max_attempts sends."""
    ledger = TaskLedger(lease=10.0, max_attempts=2, window=1, claim_timeout=1.0)
    ledger.submit("lost on the way")
    now = 0.0
    for attempt in range(1, 5):
        sent = ledger.next_assignment(now)
        assert sent is not None and (sent.attempt, sent.deadline) == (attempt, now + 1.0)
        now += 1.0
        assert ledger.expire(now) == [0]
        assert ledger.pending == (1 if attempt < 4 else 0)
    assert ledger.next_assignment(now) is None
    [lost] = ledger.pop_outcomes()
    assert lost.error is not None and lost.error.type == "Unclaimed" and lost.attempts == 2


def test_an_innocent_task_in_transit_at_each_death_is_not_dead_lettered() -> None:
    ledger = TaskLedger(lease=10.0, max_attempts=2, window=2, claim_timeout=1.0)
    poison, innocent = ledger.submit("poison"), ledger.submit("innocent")
    for death, worker in enumerate(["x", "y"]):
        a, b = ledger.next_assignment(3.0 * death), ledger.next_assignment(3.0 * death)
        assert a is not None and b is not None and (a.task_id, b.task_id) == (poison, innocent)
        assert ledger.claim(poison, a.attempt, worker=worker, now=3.0 * death)
        assert ledger.worker_gone(worker, 3.0 * death + 0.1) == [poison]  # the innocent sat unread
        assert ledger.expire(3.0 * death + 1.0) == [innocent]
    [dead] = ledger.pop_outcomes()
    assert (dead.task_id, dead.error and dead.error.type, dead.attempts) == (poison, "WorkerLost", 2)
    again = ledger.next_assignment(10.0)
    assert again is not None and (again.task_id, again.attempt) == (innocent, 3)
    assert ledger.result(innocent, 3, "fine", worker="z", now=10.5) is Receipt.DONE
    [ok] = ledger.pop_outcomes()
    assert ok.ok and ok.attempts == 1


def test_worker_gone_takes_back_only_its_named_attempts() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=2, window=3)
    for t in "abc":
        ledger.submit(t)
    ledger.next_assignment(0.0, "a")
    ledger.next_assignment(0.0)  # placed by push: nobody knows where
    ledger.next_assignment(0.0, "a")
    assert ledger.worker_gone("a") == [0, 2]
    assert ledger.worker_gone("nobody") == []
    stats = ledger.statistics()
    assert (stats.queued, stats.in_flight, stats.redelivered) == (2, 1, 2)
    assert stats.per_worker["a"] == stats.per_worker["a"].__class__(assigned=2, in_flight=0, lost=2)


def test_no_worker_no_window_tasks_wait() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=1, window=0)
    assert not ledger.wants_more()  # nobody to give work to: do not pull from the source
    ledger.submit("t")
    assert ledger.next_assignment(5.0) is None and ledger.expire(100.0) == []
    ledger.set_window(1)
    a = ledger.next_assignment(100.0, "w")
    assert a is not None and a.deadline == 101.0
    ledger.set_window(0)  # the last worker left; its attempt runs out as usual
    assert ledger.next_deadline() == 101.0


def test_ordered_mode_holds_early_finishers() -> None:
    ledger = TaskLedger(lease=10.0, max_attempts=1, window=3, ordered=True)
    for t in "abc":
        ledger.submit(t)
    for _ in range(3):
        ledger.next_assignment(0.0)
    ledger.result(2, 1, "C", worker=None, now=1.0)
    ledger.failure(1, 1, Failure("E", "b"), worker=None, now=1.0)
    assert ledger.pop_outcomes() == [] and ledger.statistics().ready == 2
    ledger.result(0, 1, "A", worker=None, now=1.0)
    assert outcome_ids(ledger.pop_outcomes()) == [0, 1, 2]


def test_cancel_reports_what_will_never_finish_and_keeps_what_did() -> None:
    ledger = TaskLedger(lease=10.0, max_attempts=2, window=2, ordered=True)
    for t in "abcd":
        ledger.submit(t)
    ledger.next_assignment(0.0, "w")
    ledger.next_assignment(0.0, "w")
    ledger.result(1, 1, "B", worker="w", now=1.0)  # held behind task 0
    assert ledger.cancel() == [0, 2, 3]
    assert ledger.cancel() == []
    assert ledger.cancelled and ledger.input_closed and not ledger.wants_more()
    assert ledger.next_assignment(2.0, "w") is None and ledger.next_deadline() is None
    assert ledger.result(0, 1, "A", worker="w", now=2.0) is Receipt.STALE
    assert not ledger.done
    assert outcome_ids(ledger.pop_outcomes()) == [1]
    assert ledger.done
    stats = ledger.statistics()
    assert (stats.cancelled, stats.released, stats.per_worker["w"].in_flight) == (3, 1, 0)
    with pytest.raises(ValueError, match=r"submit\(\) after cancel\(\).*cancelled: 0 queued"):
        ledger.submit("e")


def test_done_needs_closed_input_and_every_outcome_popped() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=1, window=1)
    assert not ledger.done
    ledger.close_input()
    assert ledger.done  # an empty stream
    ledger = TaskLedger(lease=1.0, max_attempts=1, window=1)
    ledger.submit(1)
    a = ledger.next_assignment(0.0)
    assert a is not None
    ledger.result(a.task_id, a.attempt, 2, worker=None, now=0.0)
    ledger.close_input()
    assert not ledger.done
    ledger.pop_outcomes()
    assert ledger.done
    with pytest.raises(ValueError, match=r"submit\(\) after close_input\(\)"):
        ledger.submit(2)


def test_leases_count_from_the_latest_now_if_the_clock_steps_back() -> None:
    ledger = TaskLedger(lease=1.0, max_attempts=1, window=2)
    ledger.submit(0)
    ledger.submit(1)
    assert ledger.next_assignment(10.0) is not None
    later = ledger.next_assignment(4.0)
    assert later is not None and later.deadline == 11.0


def make(**kw: Any) -> TaskLedger:
    return TaskLedger(**{"lease": 1.0, "max_attempts": 2, "window": 1, **kw})


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"lease": 0}, ValueError, "lease must be a finite number of seconds > 0, got 0"),
        ({"lease": math.inf}, ValueError, "lease"),
        ({"lease": "1"}, TypeError, "lease must be a number"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be >= 1, got 0"),
        ({"max_attempts": True}, TypeError, "max_attempts must be an int"),
        ({"window": -1}, ValueError, "window must be >= 0, got -1"),
        ({"prefetch": -1}, ValueError, "prefetch"),
        ({"ordered": 1}, TypeError, "ordered must be a bool"),
    ],
)
def test_constructor_errors(kw: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        make(**kw)


def test_call_errors_name_the_input_and_the_state() -> None:
    ledger = make()
    ledger.submit("t")
    with pytest.raises(TypeError, match="now must be seconds"):
        ledger.next_assignment("soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        ledger.expire(math.nan)
    with pytest.raises(TypeError, match="worker is named by non-empty text or None, got ''"):
        ledger.next_assignment(0.0, "")
    with pytest.raises(TypeError, match="non-empty text, got None"):
        ledger.worker_gone(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"result for task 5, which was never submitted \(open: 1 queued"):
        ledger.result(5, 1, None, worker=None, now=0.0)
    with pytest.raises(ValueError, match="result for attempt 1 of task 0, which has had 0 .state: queued"):
        ledger.result(0, 1, None, worker=None, now=0.0)
    with pytest.raises(ValueError, match="attempt must be >= 1, got 0"):
        ledger.failure(0, 0, Failure("E", ""), worker=None, now=0.0)
    with pytest.raises(
        ValueError, match=r"failure for attempt 5 of task 0; max_attempts is 2 \(at most 4 sends\)"
    ):
        ledger.failure(0, 5, Failure("E", ""), worker=None, now=0.0)
    with pytest.raises(TypeError, match="task_id must be an int"):
        ledger.result("0", 1, None, worker=None, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="failure.. takes a Failure or an exception, got 'oops'"):
        ledger.failure(0, 1, "oops", worker=None, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window must be >= 0"):
        ledger.set_window(-2)
    with pytest.raises(ValueError, match="never submitted"):
        ledger.result(9, 1, None, worker="w", now=50.0)
    assert (
        ledger.statistics().stale == 0 and not ledger.statistics().per_worker
    )  # refused calls change nothing
    a = ledger.next_assignment(0.0)  # not even the clock
    assert a is not None and a.deadline == 1.0


@given(
    st.integers(0, 2**63 - 1),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.integers(1, 6),
    st.none() | st.text(),
)
def test_a_success_built_slot_by_slot_is_the_outcome_the_dataclass_builds(
    task_id: int, task: str, result: bytes, attempts: int, worker: str | None
) -> None:
    fast = success(task_id, task, result, attempts, worker)
    slow = Outcome(task_id, task, result, None, attempts, worker)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow) and fast.ok
    with pytest.raises(FrozenInstanceError):
        fast.result = 1  # type: ignore[misc]


def test_a_reply_for_an_attempt_another_worker_claimed_is_refused() -> None:
    """Push hands an attempt to one worker: once it is claimed, no other worker can answer
    for it (a forged or misattributed reply); a late reply for an earlier attempt can be
    anyone's, and is accepted as before."""
    ledger = TaskLedger(lease=LEASE, max_attempts=3, window=2, claim_timeout=CLAIM_TIMEOUT)
    first, second = ledger.submit("x"), ledger.submit("y")
    ledger.next_assignments(0.0, 2)
    assert ledger.claims([[first, 1], [second, 1]], worker="a", now=0.0) == []
    with pytest.raises(ValueError, match="which worker 'a' claimed"):
        ledger.result(first, 1, "forged", worker="m", now=0.0)
    with pytest.raises(ValueError, match="which worker 'a' claimed"):
        ledger.failure(first, 1, Failure("Boom", ""), worker="m", now=0.0)
    errors = ledger.replies([[second, 1, True, "forged"]], worker="m", now=0.0)
    assert len(errors) == 1 and ledger.pending == 2 and ledger.statistics().stale == 0
    ledger.expire(LEASE + 1)  # both leases run out: attempt 2 goes out, then a late reply from anyone counts
    ledger.next_assignments(LEASE + 1, 2)
    assert ledger.result(first, 1, "late", worker="m", now=LEASE + 1) is Receipt.DONE
    assert ledger.result(second, 2, "unclaimed", worker="m", now=LEASE + 1) is Receipt.DONE
    assert [(o.task_id, o.result) for o in ledger.pop_outcomes()] == [(first, "late"), (second, "unclaimed")]
