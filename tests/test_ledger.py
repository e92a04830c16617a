"""The work-sharing ledger (``consensus.work.ledger``): a sans-IO state machine checked against a naive reference.

Arbitrary interleavings of submissions, assignments, results and failures (current,
stale and impossible attempts, named and unnamed workers), lease expiries, departures,
window changes, pops and cancellation run in lock-step on :class:`TaskLedger` and on
``tests/_reference_ledger.py``. The properties the issue asks for and the edge cases are
in ``tests/test_ledger_*.py``: attempts (exactly once, the poison task), claims, the
stream (ordered release, bounded memory over a long stream), the API's errors.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import pytest
from _ledger import CLAIM_TIMEOUT, LEASE, SOME, WORKERS, outcome_ids
from _reference_ledger import RefLedger, RefOutcome
from hypothesis import given
from hypothesis import strategies as st

from consensus.work.ledger import Failure, LedgerStatistics, Outcome, Receipt, TaskLedger

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
