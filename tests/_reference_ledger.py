"""A naive reference task ledger, written from the specification only, for the property tests.

It shares no code with ``consensus``: one dict per task kept forever, plain loops and
linear scans, states as strings. Slow and simple on purpose. Outcomes are plain tuples
``(task_id, ok, result, error_type, attempts, worker)``.
"""

from __future__ import annotations

from typing import Any

RefOutcome = tuple[int, bool, Any, "str | None", int, "str | None"]


class RefLedger:
    def __init__(self, *, lease: float, max_attempts: int, window: int, ordered: bool, prefetch: int | None,
                 claim_timeout: float):  # fmt: skip
        self.lease = lease
        self.claim_timeout = claim_timeout
        self.max_attempts = max_attempts
        self.window = window
        self.ordered = ordered
        self.prefetch = prefetch
        self.tasks: list[dict[str, Any]] = []
        self.closed = False
        self.cancelled = False
        self.seq = 0  # a clock of events, to order requeues, assignments and finishes
        self.counters = {"redelivered": 0, "retried": 0, "stale": 0, "late_accepted": 0, "returned": 0}
        self.workers: dict[str, dict[str, int]] = {}

    def _tick(self) -> int:
        self.seq += 1
        return self.seq

    def worker(self, name: str) -> dict[str, int]:
        if name not in self.workers:
            self.workers[name] = {"assigned": 0, "in_flight": 0, "ok": 0, "failed": 0, "lost": 0, "stale": 0}
        return self.workers[name]

    def in_state(self, *states: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["state"] in states]

    # ------------------------------------------------------------------ calls
    def wants_more(self) -> bool:
        extra = self.window if self.prefetch is None else self.prefetch
        return not self.closed and len(self.in_state("queued", "flight", "finished")) < self.window + extra

    def submit(self, task: Any) -> int:
        if self.closed:
            raise ValueError("closed")
        self.tasks.append(
            {"id": len(self.tasks), "task": task, "state": "queued", "attempt": 0, "worker": None,
             "deadline": None, "requeued_at": None, "assigned_at": None, "finished_at": None,
             "outcome": None, "last_error": None, "charged": 0, "free_losses": 0}
        )  # fmt: skip
        return len(self.tasks) - 1

    def next_assignment(self, now: float, worker: str | None) -> tuple[int, int, float, str | None] | None:
        if self.cancelled or len(self.in_state("flight")) >= self.window:
            return None
        queued = self.in_state("queued")
        retries = sorted((t for t in queued if t["requeued_at"] is not None), key=lambda t: t["requeued_at"])
        fresh = sorted((t for t in queued if t["requeued_at"] is None), key=lambda t: t["id"])
        if retries:
            t = retries[0]
        elif fresh:
            t = fresh[0]
        else:
            return None
        t["state"] = "flight"
        t["attempt"] += 1
        t["charged"] += 1
        t["worker"] = worker
        t["deadline"] = now + (self.lease if worker is not None else self.claim_timeout)
        t["assigned_at"] = self._tick()
        if worker is not None:
            self.worker(worker)["assigned"] += 1
            self.worker(worker)["in_flight"] += 1
        return (t["id"], t["attempt"], t["deadline"], worker)

    def _check(self, task_id: int, attempt: int) -> dict[str, Any]:
        if task_id < 0 or task_id >= len(self.tasks) or attempt < 1 or attempt > 2 * self.max_attempts:
            raise ValueError("impossible reply")
        t = self.tasks[task_id]
        if t["state"] in ("queued", "flight") and attempt > t["attempt"]:
            raise ValueError("attempt never dispatched")
        return t

    @staticmethod
    def _check_holder(t: dict[str, Any], attempt: int, worker: str | None) -> None:
        """Only the worker that claimed the attempt in flight can reply for it."""
        claimed = t["state"] == "flight" and attempt == t["attempt"] and None not in (worker, t["worker"])
        if claimed and worker != t["worker"]:
            raise ValueError("a reply for an attempt another worker claimed")

    def _stale(self, worker: str | None) -> str:
        self.counters["stale"] += 1
        if worker is not None:
            self.worker(worker)["stale"] += 1
        return "stale"

    def _take_back(self, t: dict[str, Any]) -> None:
        if t["worker"] is not None:
            self.worker(t["worker"])["in_flight"] -= 1

    def _finish(
        self, t: dict[str, Any], ok: bool, result: Any, error: str | None, worker: str | None
    ) -> None:
        t["state"] = "finished"
        t["finished_at"] = self._tick()
        t["outcome"] = (t["id"], ok, result, error, max(t["charged"], 1) if ok else t["charged"], worker)

    def result(self, task_id: int, attempt: int, value: Any, worker: str | None) -> str:
        t = self._check(task_id, attempt)
        if t["state"] not in ("queued", "flight"):
            return self._stale(worker)
        self._check_holder(t, attempt, worker)
        if t["state"] == "queued" or attempt != t["attempt"]:
            self.counters["late_accepted"] += 1
        if t["state"] == "flight":
            self._take_back(t)
        if worker is not None:
            self.worker(worker)["ok"] += 1
        self._finish(t, True, value, None, worker)
        return "done"

    def failure(self, task_id: int, attempt: int, error: str, worker: str | None) -> str:
        t = self._check(task_id, attempt)
        if t["state"] != "flight" or attempt != t["attempt"]:
            return self._stale(worker)
        self._check_holder(t, attempt, worker)
        self._take_back(t)
        if worker is not None:
            self.worker(worker)["failed"] += 1
        if t["charged"] >= self.max_attempts:
            self._finish(t, False, None, error, worker)
            return "done"
        t["state"] = "queued"
        t["requeued_at"] = self._tick()
        self.counters["retried"] += 1
        return "requeued"

    def claim(self, task_id: int, attempt: int, worker: str, now: float) -> bool:
        t = self._check(task_id, attempt)
        if t["state"] != "flight" or attempt != t["attempt"]:
            return False
        if t["worker"] is None:
            t["worker"] = worker
            self.worker(worker)["assigned"] += 1
            self.worker(worker)["in_flight"] += 1
        elif t["worker"] != worker:
            return False
        t["deadline"] = now + self.lease  # the tests' clock never steps back
        t["assigned_at"] = self._tick()
        return True

    def release(self, task_id: int, attempt: int, worker: str, now: float) -> bool:
        t = self._check(task_id, attempt)
        if t["state"] != "flight" or attempt != t["attempt"]:
            return False
        if t["worker"] is not None and t["worker"] != worker:
            return False
        self._take_back(t)
        if t["worker"] is not None:
            self.worker(t["worker"])["assigned"] -= 1
        t["attempt"] -= 1
        t["charged"] -= 1
        t["worker"] = None
        t["state"] = "queued"
        t["requeued_at"] = -self._tick()  # first in line, the latest release first
        self.counters["returned"] += 1
        return True

    def _lost(self, t: dict[str, Any], error: str) -> None:
        self._take_back(t)
        holder = t["worker"]
        if holder is not None:
            self.worker(holder)["lost"] += 1
        elif t["free_losses"] < self.max_attempts:  # never claimed: the attempt is not charged
            t["free_losses"] += 1
            t["charged"] -= 1
        if t["charged"] >= self.max_attempts:
            self._finish(t, False, None, error, holder)
        else:
            t["state"] = "queued"
            t["requeued_at"] = self._tick()
            self.counters["redelivered"] += 1

    def expire(self, now: float) -> list[int]:
        due = [t for t in self.in_state("flight") if t["deadline"] <= now]
        due.sort(key=lambda t: (t["deadline"], t["assigned_at"]))
        for t in due:
            self._lost(t, "Unclaimed" if t["worker"] is None else "LeaseExpired")
        return [t["id"] for t in due]

    def hasten_unclaimed(self, now: float, grace: float) -> int:
        moved = 0
        for t in self.in_state("flight"):
            if t["worker"] is None and t["deadline"] > now + grace:
                t["deadline"] = now + grace
                moved += 1
        return moved

    def worker_gone(self, worker: str) -> list[int]:
        gone = [t for t in self.in_state("flight") if t["worker"] == worker]
        gone.sort(key=lambda t: t["assigned_at"])
        for t in gone:
            self._lost(t, "WorkerLost")
        return [t["id"] for t in gone]

    def cancel(self) -> list[int]:
        if self.cancelled:
            return []
        self.cancelled = self.closed = True
        ids = []
        for t in self.in_state("queued", "flight"):
            if t["state"] == "flight":
                self._take_back(t)
            t["state"] = "cancelled"
            ids.append(t["id"])
        return ids

    def pop_outcomes(self) -> list[RefOutcome]:
        out = []
        if self.ordered:
            for t in self.tasks:
                if t["state"] in ("released", "cancelled"):
                    continue
                if t["state"] != "finished":
                    break
                out.append(t)
        else:
            out = sorted(self.in_state("finished"), key=lambda t: t["finished_at"])
        for t in out:
            t["state"] = "released"
        return [t["outcome"] for t in out]

    @property
    def done(self) -> bool:
        return self.closed and not self.in_state("queued", "flight", "finished")

    def statistics(self) -> dict[str, Any]:
        finished = [t for t in self.tasks if t["outcome"] is not None]
        return {
            "submitted": len(self.tasks),
            "queued": len(self.in_state("queued")),
            "in_flight": len(self.in_state("flight")),
            "ready": len(self.in_state("finished")),
            "released": len(self.in_state("released")),
            "done_ok": sum(1 for t in finished if t["outcome"][1]),
            "failed": sum(1 for t in finished if not t["outcome"][1]),
            "cancelled": len(self.in_state("cancelled")),
            "window": self.window,
            **self.counters,
            "per_worker": {name: dict(c) for name, c in sorted(self.workers.items())},
        }
