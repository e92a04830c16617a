"""The values of work distribution: assignments, outcomes, errors and statistics.

Frozen records produced by :class:`consensus.work.ledger.TaskLedger` (and later carried
by the drivers); no behaviour beyond small conveniences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from consensus.failure import Failure

__all__ = ["Assignment", "LedgerStatistics", "Outcome", "Receipt", "WorkerShare"]


class Receipt(Enum):
    """What the ledger did with one reply from a worker."""

    DONE = "done"  # the task finished: its outcome is ready to pop (or held, in ordered mode)
    REQUEUED = "requeued"  # a handler error with attempts left: the task waits for another attempt
    STALE = "stale"  # ignored: the task finished or was cancelled, or the attempt was superseded




@dataclass(frozen=True, slots=True)
class Assignment:
    """One attempt to hand to a worker; its reply must quote ``task_id`` and ``attempt``."""

    task_id: int
    attempt: int
    task: Any
    deadline: float  # unclaimed by then (or, for a named worker, its lease over): presumed lost
    worker: str | None  # None when the transport picks the worker (push)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The one final word on a task: its result, or the error that ended its last attempt."""

    task_id: int
    task: Any
    result: Any
    error: Failure | None
    attempts: int  # attempts dispatched, the successful one included
    worker: str | None  # who produced the outcome (for a lost attempt: who held it, if known)

    @property
    def ok(self) -> bool:
        return self.error is None


_new = object.__new__
_SET_TASK_ID, _SET_TASK, _SET_RESULT, _SET_ERROR, _SET_ATTEMPTS, _SET_WORKER = (
    Outcome.__dict__[name].__set__ for name in ("task_id", "task", "result", "error", "attempts", "worker")
)


def success(task_id: int, task: Any, result: Any, attempts: int, worker: str | None) -> Outcome:
    """``Outcome(task_id, task, result, None, attempts, worker)`` at half the cost: the
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; this
    writes the slots directly (the path every successful task takes)."""
    outcome: Outcome = _new(Outcome)
    _SET_TASK_ID(outcome, task_id)
    _SET_TASK(outcome, task)
    _SET_RESULT(outcome, result)
    _SET_ERROR(outcome, None)
    _SET_ATTEMPTS(outcome, attempts)
    _SET_WORKER(outcome, worker)
    return outcome


@dataclass(frozen=True, slots=True)
class WorkerShare:
    """One worker's share. ``assigned``, ``lost`` and ``in_flight`` count attempts sent to it
    by name; attempts the transport placed (push) appear only once the worker replies."""

    assigned: int = 0
    in_flight: int = 0
    ok: int = 0  # its successes that finished a task
    failed: int = 0  # handler errors it reported for a current attempt
    lost: int = 0  # its attempts whose lease expired or that it held when it left
    stale: int = 0  # its replies that were ignored


@dataclass(frozen=True, slots=True)
class LedgerStatistics:
    """Counts; ``queued + in_flight + ready + released + cancelled == submitted`` and
    ``done_ok + failed == ready + released``."""

    submitted: int
    queued: int
    in_flight: int
    ready: int  # finished, not yet popped (held ones included)
    released: int  # popped
    done_ok: int
    failed: int  # dead letters: tasks that ended as errors
    redelivered: int  # requeued after a lost attempt (lease expired, worker left)
    returned: int  # attempts handed back unstarted by a worker with no room (not counted)
    retried: int  # requeued after a handler error
    stale: int
    late_accepted: int
    cancelled: int
    window: int
    per_worker: Mapping[str, WorkerShare]
