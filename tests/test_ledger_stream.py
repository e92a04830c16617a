"""The ledger's stream (``consensus.work.ledger``): memory stays flat over a long stream,
intake stops for a stalled consumer or with no worker, ordered release, cancellation, when
the ledger is done, and leases when the clock steps back.
"""

from __future__ import annotations

import random

import pytest
from _ledger import WORKERS, outcome_ids

from consensus.work.ledger import Assignment, Failure, Receipt, TaskLedger


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
