"""Work sharing as a sans-IO ledger: at least once to the workers, exactly once to the caller.

The driver submits tasks, asks for an assignment whenever it has credit, and reports
what comes back: a claim (a worker holds an attempt and is alive), a result, a handler
error, a lease that ran out, a worker that left.
The ledger never reads a clock or a socket; every call that depends on time takes
``now`` (seconds on any monotonic clock the driver chooses; should ``now`` go
backwards, leases are measured from the latest ``now`` seen).

Rules:

- An attempt placed by the transport (no worker named) must be claimed within
  ``claim_timeout``; a claim names its worker and starts its lease, renewed by each
  later claim. A task whose claim timeout or lease passes (:meth:`TaskLedger.expire`), whose
  worker leaves (:meth:`TaskLedger.worker_gone`) or whose handler fails
  (:meth:`TaskLedger.failure`) is queued again, ahead of fresh tasks, until it has had
  ``max_attempts`` attempts; then it finishes as an error carrying the last failure (the
  dead letter). A lost attempt counts: a task that kills every worker ends after
  ``max_attempts``. An attempt lost before any worker claimed it (it was in a connection
  that closed, or sat unread with a stalled worker) never started, so it could not have
  hurt anyone: it does not count, up to ``max_attempts`` such losses per task; later
  ones count, so a task is sent at most ``2 * max_attempts`` times.
- Exactly once: the first *success* wins, even one from an earlier attempt that arrives
  while the task waits for, or runs, a later one (counted ``late_accepted``: a slow worker
  did finish it). Every other reply for a task no longer pending, and any failure for an
  attempt that is not the current one in flight, is ignored and counted ``stale``.
- Outcomes come out only through :meth:`TaskLedger.pop_outcomes`: as they finish, or with
  ``ordered=True`` in submission order (an early finisher is held until all earlier ones
  are out). :meth:`result`, :meth:`failure`, :meth:`expire` and :meth:`worker_gone` update
  state and say what they did.
- Flat memory: a task is forgotten once its outcome is popped (or it is cancelled), and
  :meth:`wants_more` counts unpopped outcomes, so a stalled consumer stops intake.

Replies that could not come from this ledger (a task id never issued, an attempt never
dispatched), or not from this worker (a result or failure for the attempt in flight that
another worker claimed: push delivered it to one worker only), raise ValueError: the
driver treats that as a malformed message.

A driver that handles whole messages uses the batch forms: :meth:`TaskLedger.next_assignments`,
:meth:`TaskLedger.claims` and :meth:`TaskLedger.replies` do what one call per item would
(the tests hold them to that), the usual cases inline, and the last two return the
ValueErrors of bad items instead of raising.

The books themselves (state, queries, statistics) are :mod:`consensus.work.books`'; the ways
attempts are taken back without a reply (expiry, lost connections and workers, cancel)
are :mod:`consensus.work.losses`'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from consensus.failure import Failure
from consensus.work.losses import LedgerLosses
from consensus.work.records import (
    IN_FLIGHT,
    QUEUED,
    TaskRecord,
    Unmendable,
    check_int,
    check_name,
    check_worker,
)
from consensus.work.task import Assignment, LedgerStatistics, Outcome, Receipt, WorkerShare, success

__all__ = ["Assignment", "Failure", "LedgerStatistics", "Outcome", "Receipt", "TaskLedger", "WorkerShare"]


class TaskLedger(LedgerLosses):
    """Tasks queued, in flight and finished, for one stream of work."""

    # -------------------------------------------------------------- intake and dispatch
    def submit(self, task: Any) -> int:
        """Queue a task; returns its id (0, 1, 2, ... in submission order)."""
        if self._closed:
            call = "cancel()" if self._cancelled else "close_input()"
            raise ValueError(f"submit() after {call}: the ledger takes no more tasks ({self._describe()})")
        task_id = self._next_id
        self._next_id += 1
        self._tasks[task_id] = TaskRecord(task)
        self._fresh.append(task_id)
        return task_id

    def submit_many(self, tasks: Iterable[Any]) -> int:
        """:meth:`submit` for each of ``tasks``, in order (consecutive ids); returns how many
        were taken. If the iterable raises, the tasks before stay submitted."""
        if self._closed:
            call = "cancel()" if self._cancelled else "close_input()"
            raise ValueError(
                f"submit_many() after {call}: the ledger takes no more tasks ({self._describe()})"
            )
        records, fresh = self._tasks, self._fresh
        first = task_id = self._next_id
        try:
            for task in tasks:
                records[task_id] = TaskRecord(task)
                fresh.append(task_id)
                task_id += 1
        finally:
            self._next_id = task_id
        return task_id - first

    def close_input(self) -> None:
        """No more tasks will be submitted; :attr:`done` can become true."""
        self._closed = True

    def set_window(self, window: int) -> None:
        """Change how many attempts may be in flight at once (0: none; tasks wait).

        Shrinking recalls nothing: attempts already out finish or expire as usual."""
        self._window = check_int("window", window, 0)

    def next_assignment(self, now: float, worker: str | None = None) -> Assignment | None:
        """The next attempt to send (retries first, then fresh tasks in order), or None when
        the window is full, nothing is queued, or the ledger was cancelled."""
        worker = check_worker(worker)
        now = self._tick(now)
        task_id = self._next_queued()
        if task_id is None:
            return None
        rec = self._assign(task_id, now, worker)
        return Assignment(task_id, rec.attempt, rec.task, rec.deadline, worker)

    def next_assignments(self, now: float, limit: int, worker: str | None = None, *,
                         flat: bool = False) -> list[Any]:  # fmt: skip
        """Up to ``limit`` attempts to send at once: what as many :meth:`next_assignment`
        calls would assign, in that order, up to the first None; each as ``[task_id,
        attempt, task]`` (the form a batch carries on the wire; :meth:`next_deadline`
        says when the first of them is due). ``flat``: the items end to end in one list
        (``task_id, attempt, task, task_id, ...``), as a flat batch carries them."""
        worker = check_worker(worker)
        now = self._tick(now)
        batch: list[Any] = []
        if worker is not None:
            for _ in range(limit):
                task_id = self._next_queued()
                if task_id is None:
                    break
                rec = self._assign(task_id, now, worker)
                if flat:
                    batch += (task_id, rec.attempt, rec.task)
                else:
                    batch.append([task_id, rec.attempt, rec.task])
            return batch
        # Placed by the transport (push), the usual batch: _next_queued and _assign, inline.
        if self._cancelled:
            return batch
        retry, fresh, tasks, unclaimed = self._retry, self._fresh, self._tasks, self._unclaimed
        deadline = now + self.claim_timeout
        seq = self._seq
        for _ in range(min(limit, self._window - len(unclaimed) - len(self._leased))):
            queue = retry if retry else fresh
            if not queue:
                break
            task_id = queue.popleft()
            rec = tasks[task_id]
            rec.attempt += 1
            rec.state = IN_FLIGHT
            rec.worker = None
            rec.deadline = deadline
            rec.seq = seq = seq + 1
            unclaimed[task_id] = rec
            if flat:
                batch += (task_id, rec.attempt, rec.task)
            else:
                batch.append([task_id, rec.attempt, rec.task])
        self._seq = seq
        return batch

    def _next_queued(self) -> int | None:
        """The task to attempt next, taken off its queue; None if none may go now."""
        if self._cancelled or len(self._unclaimed) + len(self._leased) >= self._window:
            return None
        queue = self._retry if self._retry else self._fresh
        return queue.popleft() if queue else None

    def _assign(self, task_id: int, now: float, worker: str | None) -> TaskRecord:
        rec = self._tasks[task_id]
        rec.attempt += 1
        rec.state = IN_FLIGHT
        rec.worker = worker
        rec.seq = self._seq = self._seq + 1
        if worker is None:
            rec.deadline = now + self.claim_timeout
            self._unclaimed[task_id] = rec
        else:
            rec.deadline = now + self.lease
            self._leased[task_id] = rec
            counts = self._counts(worker)
            counts.assigned += 1
            counts.in_flight += 1
        return rec

    # -------------------------------------------------------------- replies and losses
    def result(self, task_id: int, attempt: int, value: Any, *, worker: str | None, now: float) -> Receipt:
        """A worker's success for ``(task_id, attempt)``: ``DONE`` the first time, else ``STALE``."""
        worker = check_worker(worker)
        rec = self._pending(task_id, attempt, "result")
        self._tick(now)
        if rec is None:
            return self._ignore(worker)
        if rec.state is IN_FLIGHT:
            if attempt != rec.attempt:
                self._late += 1
            elif worker is not None and rec.worker not in (None, worker):
                raise self._not_holder("result", task_id, attempt, worker, rec)
            self._unassign(task_id, rec)
        else:  # requeued after its lease or its worker was lost; that attempt finished after all
            self._retry.remove(task_id)
            self._late += 1
        if worker is not None:
            self._counts(worker).ok += 1
        # A late success from an attempt lost unclaimed did run: it counts at least once.
        self._finish(Outcome(task_id, rec.task, value, None, max(rec.counted, 1), worker))
        return Receipt.DONE

    def failure(
        self,
        task_id: int,
        attempt: int,
        error: Failure | BaseException,
        *,
        worker: str | None,
        now: float,
        final: bool = False,
    ) -> Receipt:
        """A handler error for the current attempt: ``REQUEUED`` while attempts remain, then
        ``DONE`` (a dead letter carrying ``error``); ``STALE`` for any other attempt.
        ``final=True`` ends the task at once (an error no retry can mend, such as a task
        that has no wire form)."""
        worker = check_worker(worker)
        if isinstance(error, BaseException):
            error = Failure.from_exception(error)
        elif not isinstance(error, Failure):
            raise TypeError(f"failure() takes a Failure or an exception, got {error!r}")
        rec = self._current(task_id, attempt, "failure", now)
        if rec is None:
            return self._ignore(worker)
        if worker is not None and rec.worker not in (None, worker):
            raise self._not_holder("failure", task_id, attempt, worker, rec)
        self._unassign(task_id, rec)
        rec.last_error = error
        if worker is not None:
            self._counts(worker).failed += 1
        if rec.counted < self.max_attempts and not final:
            self._requeue(task_id, rec)
            self._retried += 1
            return Receipt.REQUEUED
        self._finish(Outcome(task_id, rec.task, None, error, rec.counted, worker))
        return Receipt.DONE

    def claim(self, task_id: int, attempt: int, *, worker: str, now: float) -> bool:
        """A worker says it holds ``(task_id, attempt)``: on receipt, then again now and then
        while it works. The attempt becomes that worker's (so :meth:`worker_gone` takes it
        back at once) and its lease runs from ``now`` again. Returns False, changing nothing,
        when that attempt is no longer the one in flight or another worker holds it."""
        name = check_name(worker)
        rec = self._current(task_id, attempt, "claim", now)
        if rec is None or rec.worker not in (None, name):
            return False
        if rec.worker is None:
            rec.worker = name
            counts = self._counts(name)
            counts.assigned += 1
            counts.in_flight += 1
        rec.deadline = self._clock + self.lease  # the latest lease of all: the order by deadline holds
        rec.seq = self._seq = self._seq + 1
        leased = self._leased
        if self._unclaimed.pop(task_id, None) is None:
            del leased[task_id]  # (to the end: the latest deadline)
        leased[task_id] = rec
        return True

    def release(self, task_id: int, attempt: int, *, worker: str, now: float) -> bool:
        """A worker hands back an attempt it never started (it had no room for it): the task
        goes first in line again and the attempt does not count. Returns False, changing
        nothing, when that attempt is not the one in flight or another worker holds it."""
        name = check_name(worker)
        rec = self._current(task_id, attempt, "release", now)
        if rec is None or rec.worker not in (None, name):
            return False
        self._unassign(task_id, rec)
        if rec.worker is not None:
            self._workers[rec.worker].assigned -= 1
        rec.attempt -= 1
        rec.state = QUEUED
        rec.worker = None
        self._retry.appendleft(task_id)
        self._returned += 1
        return True

    def claims(self, items: Iterable[Sequence[int]], *, worker: str, now: float) -> list[ValueError]:
        """:meth:`claim` for each ``(task_id, attempt)`` of ``items``, in order: the claims of
        one message. Returns the errors of the items that could not come from this ledger
        (the others still apply)."""
        name = check_name(worker)
        now = self._tick(now)
        tasks, unclaimed, leased = self._tasks, self._unclaimed, self._leased
        deadline = self._clock + self.lease
        errors: list[ValueError] = []
        seq = self._seq
        claimed = 0  # usual claims: the worker's counts take them at the end, at once
        for task_id, attempt in items:
            rec = tasks.get(task_id) if type(task_id) is int and type(attempt) is int else None
            if rec is not None and rec.worker is None and rec.attempt == attempt and rec.state is IN_FLIGHT:
                # the usual claim: an attempt placed by the transport, claimed on receipt
                rec.worker = name
                claimed += 1
                del unclaimed[task_id]
                rec.deadline = deadline
                rec.seq = seq = seq + 1
                leased[task_id] = rec
                continue
            self._seq = seq
            try:
                self.claim(task_id, attempt, worker=name, now=now)
            except ValueError as exc:
                errors.append(exc)
            seq = self._seq
        self._seq = seq
        if claimed:
            counts = self._counts(name)
            counts.assigned += claimed
            counts.in_flight += claimed
        return errors

    def replies(self, items: Iterable[Sequence[Any]], *, worker: str, now: float) -> list[ValueError]:
        """:meth:`result` or :meth:`failure` for each ``(task_id, attempt, ok, value)`` of
        ``items`` (``value``: the result, or a Failure, or an :class:`Unmendable` one that
        ends the task at once), in order: the replies of one message. Returns the errors of
        the items that could not come from this ledger."""
        name = check_name(worker)
        now = self._tick(now)
        tasks, leased, ready = self._tasks, self._leased, self._ready
        counts = self._workers.get(name)  # a worker holding an attempt has its counts
        unordered = not self.ordered
        errors: list[ValueError] = []
        done = released = 0  # usual successes (and of them, outcomes out at once): counted at the end
        for task_id, attempt, ok, value in items:
            rec = tasks.get(task_id) if ok is True and type(task_id) is int and type(attempt) is int else None
            if (
                rec is not None
                and counts is not None
                and rec.worker == name
                and rec.attempt == attempt
                and rec.state is IN_FLIGHT
            ):  # the usual reply: a success from the worker that claimed the current attempt
                del leased[task_id]
                done += 1
                outcome = success(task_id, rec.task, value, max(rec.attempt - rec.free, 1), name)
                if unordered:
                    del tasks[task_id]
                    released += 1
                    ready.append(outcome)
                else:
                    self._finish(outcome)
                continue
            try:
                if ok:
                    self.result(task_id, attempt, value, worker=name, now=now)
                elif type(value) is Unmendable:
                    self.failure(task_id, attempt, value.failure, worker=name, now=now, final=True)
                else:
                    self.failure(task_id, attempt, value, worker=name, now=now)
            except ValueError as exc:
                errors.append(exc)
        if done and counts is not None:  # (a usual success needs the worker's counts)
            counts.in_flight -= done
            counts.ok += done
            self._ok += released
        return errors
