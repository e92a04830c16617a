"""The task ledger's books: one mutable record per pending task, per-worker counters, and
the argument checks of :class:`consensus.work.ledger.TaskLedger` (pure code).

The checks have a fast path for the well-typed call the drivers make (exact ``int`` ids,
a ``float`` clock, a worker's name); anything else takes the slow path, which raises the
same errors as ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from consensus.failure import Failure

__all__ = [
    "Counts",
    "TaskRecord",
    "TaskState",
    "Unmendable",
    "check_int",
    "check_name",
    "check_now",
    "check_worker",
]


class TaskState(Enum):
    """Where a pending task is; a finished task leaves the books."""

    QUEUED = "queued"
    IN_FLIGHT = "in flight"


QUEUED = TaskState.QUEUED
IN_FLIGHT = TaskState.IN_FLIGHT


@dataclass(frozen=True, slots=True)
class Unmendable:
    """A failure the worker marked ``final`` (a result with no wire form): no retry can mend
    it, so the task ends at once instead of being sent again up to ``max_attempts``."""

    failure: Failure


@dataclass(slots=True)
class TaskRecord:
    task: Any
    attempt: int = 0
    state: TaskState = QUEUED
    worker: str | None = None
    deadline: float = 0.0
    seq: int = 0  # when it was assigned or last claimed: orders the attempts in flight
    last_error: Failure | None = None
    free: int = 0  # attempts lost before any claim that did not count

    @property
    def counted(self) -> int:
        """Attempts that count toward ``max_attempts`` (``attempt`` numbers them all)."""
        return self.attempt - self.free


@dataclass(slots=True)
class Counts:
    assigned: int = 0
    in_flight: int = 0
    ok: int = 0
    failed: int = 0
    lost: int = 0
    stale: int = 0


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_worker(worker: object) -> str | None:
    """A worker's name, or None where the transport picked the worker."""
    if worker is None or (type(worker) is str and worker):
        return worker
    return check_name(worker, " or None")


def check_name(worker: object, alternative: str = "") -> str:
    if type(worker) is str and worker:
        return worker
    if not isinstance(worker, str) or not worker:
        raise TypeError(f"a worker is named by non-empty text{alternative}, got {worker!r}")
    return worker


def check_now(now: object) -> float:
    """``now`` as seconds on a monotonic clock: a finite number."""
    if type(now) is float and now - now == 0.0:  # finite (inf - inf and nan - nan are nan)
        return now
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise TypeError(f"now must be seconds on a monotonic clock, got {now!r}")
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, got {now!r}")
    return float(now)
