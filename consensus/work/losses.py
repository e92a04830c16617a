"""Attempts a :class:`~consensus.work.ledger.TaskLedger` takes back without a reply.

A lease or claim timeout that ran out (:meth:`LedgerLosses.expire`), a connection that
closed with unclaimed attempts perhaps in it (:meth:`LedgerLosses.hasten_unclaimed`), a
worker that left (:meth:`LedgerLosses.worker_gone`), and the end of the stream
(:meth:`LedgerLosses.cancel`). Pure code on the books of
:class:`~consensus.work.books.LedgerBooks`; :mod:`consensus.work.ledger` states the rules.
"""

from __future__ import annotations

import math
from heapq import merge
from itertools import takewhile

from consensus.failure import Failure
from consensus.work.books import LedgerBooks
from consensus.work.records import check_name

__all__ = ["LedgerLosses"]


class LedgerLosses(LedgerBooks):
    """The ledger's books, and how attempts are taken back; :class:`TaskLedger` adds the rest."""

    def expire(self, now: float) -> list[int]:
        """Take back every attempt whose deadline (its lease, or its claim timeout while
        unclaimed) is at or before ``now``; returns the task ids, each requeued or
        (attempts exhausted) finished as an error."""
        now = self._tick(now)
        expired: list[int] = []
        # Each timer is in deadline order: its due attempts are a prefix, taken in one pass
        # (asking for each timer's first again after each loss would rescan the holes a
        # plain dict keeps where its first entries were: quadratic in the attempts due).
        due = [
            list(takewhile(lambda item: item[1].deadline <= now, timer.items()))
            for timer in (self._unclaimed, self._leased)
        ]
        for task_id, rec in merge(*due, key=lambda item: (item[1].deadline, item[1].seq)):
            expired.append(task_id)
            if rec.worker is None:
                error = Failure(
                    "Unclaimed", f"no worker claimed attempt {rec.attempt} in {self.claim_timeout} s"
                )
            else:
                error = Failure("LeaseExpired", f"lease expired after {rec.counted} attempts")
            self._lose(task_id, rec, error)
        return expired

    def hasten_unclaimed(self, now: float, grace: float) -> int:
        """A connection to some worker closed: an attempt not yet claimed may have been on
        its way through it. Each unclaimed attempt's deadline comes forward to at most
        ``now + grace`` (a live worker claims within that); returns how many moved."""
        now = self._tick(now)
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < math.inf:
            raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace!r}")
        moved = 0
        for rec in self._unclaimed.values():  # in deadline order: the order survives the min()
            if rec.deadline > now + grace:
                rec.deadline = now + grace
                moved += 1
        return moved

    def worker_gone(self, worker: str, now: float | None = None) -> list[int]:
        """A named worker left or died: its attempts in flight are lost at once (each counts
        toward ``max_attempts``). Returns their task ids. Attempts placed by the transport
        (``worker=None``) and not claimed are not known to be its: their claim timeout
        takes them back."""
        name = check_name(worker)
        if now is not None:
            self._tick(now)
        lost = [(task_id, rec) for task_id, rec in self._leased.items() if rec.worker == name]
        for task_id, rec in lost:
            reason = f"worker {name!r} went away during attempt {rec.attempt}"
            self._lose(task_id, rec, Failure("WorkerLost", reason))
        return [task_id for task_id, _ in lost]

    def cancel(self) -> list[int]:
        """Stop: nothing more is assigned or submitted. Returns the ids queued or in flight,
        which will never finish (their late replies are stale). Outcomes already finished,
        held ones included, stay poppable, in order."""
        if self._cancelled:
            return []
        self._cancelled = self._closed = True
        ids = sorted(self._tasks)
        for rec in self._leased.values():
            if rec.worker is not None:
                self._workers[rec.worker].in_flight -= 1
        self._tasks.clear()
        self._fresh.clear()
        self._retry.clear()
        self._unclaimed.clear()
        self._leased.clear()
        self._cancelled_count = len(ids)
        self._ready.extend(self._held[task_id] for task_id in sorted(self._held))
        self._held.clear()
        return ids
