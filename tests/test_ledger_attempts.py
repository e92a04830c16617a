"""The ledger's attempts (``consensus.work.ledger``): a poison task ends failed after exactly
``max_attempts`` (a property), retries before fresh tasks, a late success winning, dead
letters carrying the last error, final failures, and a departed worker's attempts taken back.
"""

from __future__ import annotations

from _ledger import SOME, outcome_ids
from hypothesis import given
from hypothesis import strategies as st

from consensus.work.ledger import Assignment, Failure, Outcome, Receipt, TaskLedger


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
