"""Which workers have gone silent: the dispatcher's liveness rule, pure.

A worker whose host is cut off (its cable pulled, its link down) closes no connection:
no FIN or RST crosses a link that is down, so the transport never says it left. It
announces in its hello how often it beats (``hb``); it then sends a ``beat`` every ``hb``
seconds in which nothing else went out. The dispatcher watches a worker from the first
frame after its hello (with a secret, a worker can seal nothing before its first batch),
and takes it as gone once it has heard nothing from it for its *limit*:

- ``LIVENESS_BEATS`` (3) of its heartbeats by default, so one or two beats lost or late on
  a busy machine do not count;
- ``liveness`` seconds when the dispatcher sets it, but never less than two heartbeats
  (a dispatcher set shorter than a worker beats would drop it between two beats).

A worker that announced no heartbeat is never taken as silent (claim_timeout and leases
still apply). Once taken as silent, a worker is no longer watched until a new hello.

A check that comes long after a worker was due (more than a third of its limit: one
heartbeat by default) says the dispatcher itself did not run (its loop blocked by the
caller's code, say): the worker's frames may be waiting unread, so it gets half its limit
from now to be heard instead of being taken as gone.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["LIVENESS_BEATS", "Liveness"]

LIVENESS_BEATS: Final = 3  # heartbeats missed before a worker is taken as gone, by default


class Liveness:
    """The last time each watched worker was heard from, and its limit."""

    __slots__ = ("_last", "_limits", "liveness")

    def __init__(self, liveness: float | None = None) -> None:
        if liveness is not None and (
            isinstance(liveness, bool) or not isinstance(liveness, (int, float)) or not liveness > 0
        ):
            raise ValueError(f"liveness must be a number of seconds > 0 (or None), got {liveness!r}")
        self.liveness = None if liveness is None else float(liveness)
        self._limits: dict[str, float] = {}  # worker -> seconds of silence it is allowed
        self._last: dict[str, float] = {}  # worker -> when it was last heard, once watched

    def limit(self, heartbeat: float | None) -> float:
        """The silence allowed a worker beating every ``heartbeat`` s (inf: not watched)."""
        if heartbeat is None:
            return math.inf
        if self.liveness is None:
            return LIVENESS_BEATS * heartbeat
        return max(self.liveness, 2 * heartbeat)

    def announce(self, worker: str, heartbeat: float | None) -> None:
        """``worker`` said hello announcing ``heartbeat``; its clock starts at its next frame."""
        limit = self.limit(heartbeat)
        if limit == math.inf:
            self.forget(worker)
        else:
            self._limits[worker] = limit

    def heard(self, worker: str, now: float) -> bool:
        """A frame came from ``worker`` at ``now`` (any kind but hello). True when its clock
        started with it (a deadline earlier than the others may have come)."""
        last = self._last.get(worker)
        if last is None:
            if worker not in self._limits:
                return False
            self._last[worker] = now
            return True
        if last < now:
            self._last[worker] = now
        return False

    def forget(self, worker: str) -> None:
        """``worker`` left: it is no longer watched."""
        self._limits.pop(worker, None)
        self._last.pop(worker, None)

    def watched(self, worker: str) -> bool:
        return worker in self._last

    def due(self, now: float) -> list[tuple[str, float]]:
        """The workers silent for their limit at ``now``, with how long they were silent;
        each is no longer watched. One checked long after it was due gets half its limit
        more instead (the dispatcher did not run: its frames may be unread)."""
        limits, last_heard = self._limits, self._last
        silent: list[tuple[str, float]] = []
        for worker, last in list(last_heard.items()):
            limit = limits[worker]
            if now - last < limit:
                continue
            if now - last - limit > limit / LIVENESS_BEATS:
                last_heard[worker] = now - limit / 2
            else:
                silent.append((worker, now - last))
        for worker, _ in silent:
            self.forget(worker)
        return silent

    def deadline(self) -> float | None:
        """When the next worker would fall silent, if no frame comes from it (None: no one watched)."""
        limits = self._limits
        return min((last + limits[worker] for worker, last in self._last.items()), default=None)
