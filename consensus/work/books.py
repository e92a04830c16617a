"""The books of :class:`consensus.work.ledger.TaskLedger`: its state, queries, statistics and the
internal steps its operations share (pure code; see that module for the rules).

Pending tasks are :class:`~consensus.work.records.TaskRecord` values in ``_tasks``; those
waiting sit in ``_fresh`` (never attempted) or ``_retry`` (served first); those in flight
in one of two timers, each in deadline order. Finished outcomes wait in ``_ready`` (and,
in ordered mode, ``_held``) until popped.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import chain
from types import MappingProxyType
from typing import Any

from consensus.failure import Failure
from consensus.work.records import IN_FLIGHT, QUEUED, Counts, TaskRecord, check_int, check_now
from consensus.work.task import LedgerStatistics, Outcome, Receipt, WorkerShare

__all__ = ["LedgerBooks"]


class LedgerBooks:
    """What a task ledger knows, and how it is asked; :class:`TaskLedger` adds what changes it."""

    def __init__(
        self,
        *,
        lease: float,
        max_attempts: int,
        window: int,
        ordered: bool = False,
        prefetch: int | None = None,
        claim_timeout: float | None = None,
    ) -> None:
        if isinstance(lease, bool) or not isinstance(lease, (int, float)):
            raise TypeError(f"lease must be a number of seconds, got {lease!r}")
        if not (lease > 0 and math.isfinite(lease)):
            raise ValueError(f"lease must be a finite number of seconds > 0, got {lease!r}")
        if not isinstance(ordered, bool):
            raise TypeError(f"ordered must be a bool, got {ordered!r}")
        self.lease = float(lease)
        if claim_timeout is not None:
            if isinstance(claim_timeout, bool) or not isinstance(claim_timeout, (int, float)):
                raise TypeError(f"claim_timeout must be a number of seconds or None, got {claim_timeout!r}")
            if not (claim_timeout > 0 and math.isfinite(claim_timeout)):
                raise ValueError(
                    f"claim_timeout must be a finite number of seconds > 0, got {claim_timeout!r}"
                )
        self.claim_timeout = self.lease if claim_timeout is None else min(float(claim_timeout), self.lease)
        self.max_attempts = check_int("max_attempts", max_attempts, 1)
        self.ordered = ordered
        self._window = check_int("window", window, 0)
        self._prefetch = None if prefetch is None else check_int("prefetch", prefetch, 0)
        self._tasks: dict[int, TaskRecord] = {}  # pending: queued or in flight
        self._fresh: deque[int] = deque()  # never attempted, in submission order
        self._retry: deque[int] = deque()  # to attempt again, served first
        # The attempts in flight as two timers, each in deadline order: placed by the transport
        # and not yet claimed (claim_timeout), and held by a named worker (lease). The leased
        # ones are also in the order of their assignment or last claim (``seq``). Plain dicts
        # (insertion-ordered): an OrderedDict's insert and delete cost 0.14 µs a task more,
        # twice per task; only a renewal moves an entry (delete, insert at the end).
        self._unclaimed: dict[int, TaskRecord] = {}
        self._leased: dict[int, TaskRecord] = {}
        self._seq = 0
        self._ready: deque[Outcome] = deque()  # releasable, in release order
        self._held: dict[int, Outcome] = {}  # ordered mode: finished ahead of an earlier task
        self._workers: dict[str, Counts] = {}
        self._next_id = 0
        self._next_release = 0
        self._clock = -math.inf
        self._closed = False
        self._cancelled = False
        self._released = self._ok = self._failed = self._redelivered = self._retried = 0
        self._stale = self._late = self._cancelled_count = self._returned = 0

    # -------------------------------------------------------------- queries
    @property
    def window(self) -> int:
        return self._window

    @property
    def high_water(self) -> int:
        """How many tasks the ledger holds (pending or unpopped) before it stops wanting more."""
        return self._window + (self._window if self._prefetch is None else self._prefetch)

    @property
    def in_flight(self) -> int:
        """Attempts in flight now."""
        return len(self._unclaimed) + len(self._leased)

    @property
    def pending(self) -> int:
        """Tasks not finished: queued or in flight."""
        return len(self._tasks)

    @property
    def input_closed(self) -> bool:
        return self._closed

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def done(self) -> bool:
        """The input is closed (or cancelled) and every outcome has been popped."""
        return self._closed and not self._tasks and not self._ready and not self._held

    def wants_more(self) -> bool:
        """Should the driver pull another task from the caller's iterable?"""
        return self.room() > 0

    def room(self) -> int:
        """How many more tasks the driver may pull from the caller's iterable now
        (:meth:`wants_more` stays true for that many submits)."""
        if self._closed:
            return 0
        return max(0, self.high_water - len(self._tasks) - len(self._ready) - len(self._held))

    def next_deadline(self) -> float | None:
        """The earliest deadline in flight: when to call :meth:`expire` next."""
        first = self._first_due()
        return None if first is None else first[1].deadline

    def statistics(self) -> LedgerStatistics:
        in_flight = self.in_flight
        workers = {
            name: WorkerShare(c.assigned, c.in_flight, c.ok, c.failed, c.lost, c.stale)
            for name, c in sorted(self._workers.items())
        }
        return LedgerStatistics(
            submitted=self._next_id,
            queued=len(self._tasks) - in_flight,
            in_flight=in_flight,
            ready=len(self._ready) + len(self._held),
            released=self._released,
            done_ok=self._ok,
            failed=self._failed,
            redelivered=self._redelivered,
            returned=self._returned,
            retried=self._retried,
            stale=self._stale,
            late_accepted=self._late,
            cancelled=self._cancelled_count,
            window=self._window,
            per_worker=MappingProxyType(workers),
        )

    def _describe(self) -> str:
        state = "cancelled" if self._cancelled else "input closed" if self._closed else "open"
        return (
            f"{state}: {len(self._tasks) - self.in_flight} queued, {self.in_flight} in flight, "
            f"{len(self._ready) + len(self._held)} finished unpopped, {self._next_id} submitted"
        )

    def in_flight_tasks(self) -> dict[int, Any]:
        """The tasks with an attempt in flight, by id."""
        in_flight = sorted(chain(self._unclaimed.items(), self._leased.items()), key=lambda item: item[1].seq)
        return {task_id: rec.task for task_id, rec in in_flight}

    def holder(self, task_id: object, attempt: object) -> str | None:
        """The worker that claimed ``attempt`` of ``task_id``, if that attempt is the one in
        flight (None: unclaimed, not in flight, or no such task)."""
        rec = self._tasks.get(task_id) if type(task_id) is int else None
        if rec is None or rec.state is not IN_FLIGHT or rec.attempt != attempt:
            return None
        return rec.worker

    def queued_tasks(self) -> dict[int, Any]:
        """The tasks waiting for an attempt (fresh or to retry), by id."""
        return {task_id: rec.task for task_id, rec in self._tasks.items() if rec.state is QUEUED}

    def pop_outcomes(self) -> list[Outcome]:
        """Finished outcomes not yet popped (in submission order when ``ordered``); each
        task's outcome is popped exactly once, then the ledger forgets the task."""
        out = list(self._ready)
        self._ready.clear()
        self._released += len(out)
        return out

    # -------------------------------------------------------------- internals
    def _tick(self, now: object) -> float:
        now = check_now(now)
        self._clock = max(self._clock, now)
        return self._clock

    def _counts(self, worker: str) -> Counts:
        counts = self._workers.get(worker)
        if counts is None:
            counts = self._workers[worker] = Counts()
        return counts

    def _pending(self, task_id: object, attempt: object, what: str) -> TaskRecord | None:
        """The pending record a reply refers to; None when the task is finished or cancelled."""
        if (  # the common reply, in one expression; anything else gets every check below
            type(task_id) is int
            and type(attempt) is int
            and 0 <= task_id < self._next_id
            and 0 < attempt <= 2 * self.max_attempts
        ):
            rec = self._tasks.get(task_id)
            if rec is None or attempt <= rec.attempt:
                return rec
        task_id = check_int("task_id", task_id, 0)
        attempt = check_int("attempt", attempt, 1)
        if task_id >= self._next_id:
            raise ValueError(f"{what} for task {task_id}, which was never submitted ({self._describe()})")
        if attempt > 2 * self.max_attempts:
            raise ValueError(
                f"{what} for attempt {attempt} of task {task_id}; max_attempts is {self.max_attempts}"
                f" (at most {2 * self.max_attempts} sends)"
            )
        rec = self._tasks.get(task_id)
        if rec is not None and attempt > rec.attempt:
            raise ValueError(
                f"{what} for attempt {attempt} of task {task_id}, which has had {rec.attempt} "
                f"(state: {rec.state.value})"
            )
        return rec

    def _current(self, task_id: object, attempt: object, what: str, now: float) -> TaskRecord | None:
        """The record if ``attempt`` is the one in flight for ``task_id``; else None."""
        rec = self._pending(task_id, attempt, what)
        self._tick(now)
        if rec is None or rec.state is not IN_FLIGHT or attempt != rec.attempt:
            return None
        return rec

    @staticmethod
    def _not_holder(what: str, task_id: int, attempt: int, worker: str, rec: TaskRecord) -> ValueError:
        """A reply for the attempt in flight from a worker other than the one that claimed it:
        push delivered that attempt to one worker only, so it cannot be this one's."""
        return ValueError(
            f"{what} from worker {worker!r} for attempt {attempt} of task {task_id}, which worker "
            f"{rec.worker!r} claimed"
        )

    def _ignore(self, worker: str | None) -> Receipt:
        self._stale += 1
        if worker is not None:
            self._counts(worker).stale += 1
        return Receipt.STALE

    def _unassign(self, task_id: int, rec: TaskRecord) -> None:
        if self._leased.pop(task_id, None) is None:
            del self._unclaimed[task_id]
        if rec.worker is not None:
            self._workers[rec.worker].in_flight -= 1

    def _requeue(self, task_id: int, rec: TaskRecord) -> None:
        rec.state = QUEUED
        rec.worker = None
        self._retry.append(task_id)

    def _lose(self, task_id: int, rec: TaskRecord, error: Failure) -> None:
        """An attempt in flight is presumed lost: requeue it, or end the task with ``error``."""
        holder = rec.worker
        self._unassign(task_id, rec)
        if holder is not None:
            self._workers[holder].lost += 1
        elif rec.free < self.max_attempts:  # never claimed, never started: it does not count
            rec.free += 1
        if rec.counted < self.max_attempts:
            self._requeue(task_id, rec)
            self._redelivered += 1
            return
        if rec.last_error is not None:
            error = Failure(error.type, f"{error.message}; last handler error: {rec.last_error}")
        self._finish(Outcome(task_id, rec.task, None, error, rec.counted, holder))

    def _finish(self, outcome: Outcome) -> None:
        task_id = outcome.task_id
        del self._tasks[task_id]
        if outcome.ok:
            self._ok += 1
        else:
            self._failed += 1
        if not self.ordered:
            self._ready.append(outcome)
            return
        if task_id != self._next_release:
            self._held[task_id] = outcome
            return
        self._ready.append(outcome)
        task_id += 1
        while task_id in self._held:
            self._ready.append(self._held.pop(task_id))
            task_id += 1
        self._next_release = task_id

    def _first_due(self) -> tuple[int, TaskRecord] | None:
        heads = [next(iter(timer.items())) for timer in (self._unclaimed, self._leased) if timer]
        return min(heads, key=lambda head: (head[1].deadline, head[1].seq), default=None)
