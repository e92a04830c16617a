"""A naive reference ask table, written from the ``consensus.hotline.asks`` docstring only.

A plain dict of open asks and a dict of counters; verdicts as ``(action, id)`` strings.
``closed`` counts asks ended by ``close`` (the asker gave up), which the real table
does not report: it only keeps ``opened == open + answered + expired + failed + closed``.
"""

from __future__ import annotations

KINDS = ("reply", "chunk", "end", "error")


class RefAsks:
    def __init__(self) -> None:
        self.asks: dict[int, tuple[float, bool]] = {}  # id -> (deadline, stream)
        # ("unsent": counted by the driver, for an ask it did not send; no operation here changes it)
        self.counts = dict.fromkeys(("opened", "answered", "expired", "failed", "stale", "malformed", "unsent"), 0)
        self.closed = 0

    def open(self, ask_id: int, deadline: float, stream: bool) -> None:
        if ask_id in self.asks:
            raise ValueError(ask_id)
        self.asks[ask_id] = (deadline, stream)
        self.counts["opened"] += 1

    def on_reply(self, kind: str, ask_id: int) -> tuple[str, int]:
        if kind not in KINDS:
            raise ValueError(kind)
        if ask_id not in self.asks:
            self.counts["stale"] += 1
            return ("drop", ask_id)
        stream = self.asks[ask_id][1]
        if kind == "error" or (kind == "reply" and not stream) or (kind == "end" and stream):
            del self.asks[ask_id]
            self.counts["answered"] += 1
            return ("finish", ask_id)
        if kind == "chunk" and stream:
            return ("deliver", ask_id)
        # reply to a stream, chunk or end to a plain ask
        del self.asks[ask_id]
        self.counts["failed"] += 1
        self.counts["malformed"] += 1
        return ("violation", ask_id)

    def close(self, ask_id: int) -> bool:
        if ask_id not in self.asks:
            return False
        del self.asks[ask_id]
        self.closed += 1
        return True

    def expire(self, now: float) -> list[int]:
        due = sorted(i for i, (deadline, _) in self.asks.items() if deadline <= now)
        for i in due:
            del self.asks[i]
        self.counts["expired"] += len(due)
        return due

    def fail_all(self) -> list[int]:
        ids = sorted(self.asks)
        self.asks = {}
        self.counts["failed"] += len(ids)
        return ids

    def next_deadline(self) -> float | None:
        deadlines = [deadline for deadline, _ in self.asks.values()]
        return min(deadlines) if deadlines else None

    def statistics(self) -> dict[str, int]:
        return {"open": len(self.asks), **self.counts}
