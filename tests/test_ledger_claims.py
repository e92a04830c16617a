"""The ledger's claims (``consensus.work.ledger``): a claim names the attempt's holder and
renews its lease, a released attempt goes first in line, unclaimed attempts expire at the
claim timeout and their losses are free up to a bound, and nobody answers for an attempt
another worker claimed.
"""

from __future__ import annotations

import pytest
from _ledger import CLAIM_TIMEOUT, LEASE

from consensus.work.ledger import Failure, Receipt, TaskLedger, WorkerShare


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
