"""Shared by the ledger tests (``tests/test_ledger*.py``): hypothesis settings, the workers,
the lease and claim timeout of a run, and the ids of outcomes."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from consensus.work.ledger import Outcome

SOME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORKERS = ["a", "b", "c"]
LEASE = 2.0
CLAIM_TIMEOUT = 1.0


def outcome_ids(outcomes: list[Outcome]) -> list[int]:
    return [o.task_id for o in outcomes]
