"""What every phase of ``bench.distribute`` shares: the knobs, the child pool, CPU accounting.

:class:`Knobs` are the throughput knobs (``Worker(concurrency=, prefetch=)``,
``Dispatcher(max_batch=)``), with the benchmark's own, the library's defaults and the
sweep of ``--explore``. :class:`Pool` holds the spawned children (see
:mod:`bench._distribute_workers`); :class:`SystemCpu` and :func:`other_pct` account for
the machine's CPU use over a timed window; :data:`sequence` names ipc paths and workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ._common import _cpu_times
from ._distribute_workers import Child

WORKERS = 2
RAW_STYLES = {  # phase: (how this process sends, how the pullers receive)
    "raw_trio": ("trio", "trio"),
    "raw_trio_pull": ("sync", "trio"),
    "raw_sync": ("sync", "sync"),
}


@dataclass(frozen=True)
class Knobs:
    concurrency: int
    prefetch: int | None  # None: the library's default (= concurrency)
    max_batch: int

    @property
    def capacity(self) -> int:
        return self.concurrency + (self.concurrency if self.prefetch is None else self.prefetch)

    def label(self) -> str:
        prefetch = "default" if self.prefetch is None else str(self.prefetch)
        return f"concurrency={self.concurrency} prefetch={prefetch} max_batch={self.max_batch}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "prefetch": self.prefetch,
            "max_batch": self.max_batch,
            "capacity_per_worker": self.capacity,
        }


LIBRARY_DEFAULTS = Knobs(concurrency=1, prefetch=None, max_batch=256)
# The benchmark's knobs: a worker's capacity 16 x max_batch keeps batches full (see --explore).
DEFAULT_KNOBS = Knobs(concurrency=1, prefetch=4095, max_batch=256)
# The sweep of --explore. The ratio of a worker's capacity (concurrency + prefetch) to
# max_batch decides whether the pump stays batch-sized or fragments (see the report).
EXPLORE = (
    LIBRARY_DEFAULTS,
    Knobs(1, 63, 64),
    Knobs(1, 255, 64),
    Knobs(1, 1023, 64),
    Knobs(1, 4095, 64),
    Knobs(1, 4095, 16),
    Knobs(1, 63, 256),
    Knobs(1, 255, 256),
    Knobs(1, 1023, 256),
    Knobs(1, 2047, 256),
    Knobs(1, 4095, 256),
    Knobs(1, 8191, 256),
    Knobs(1, 8191, 1024),
    Knobs(16, 4080, 256),
    Knobs(256, 3840, 256),
)


class _Sequence:
    """Unique names for ipc paths and workers across phases."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


sequence = _Sequence()


class SystemCpu:
    """All CPU use on the machine over a window (Linux ``/proc/stat``), in % of one core."""

    def __init__(self) -> None:
        self.before = _cpu_times()

    def busy_pct(self) -> float | None:
        after = _cpu_times()
        if self.before is None or after is None or after[0] == self.before[0]:
            return None
        total, idle = after[0] - self.before[0], after[1] - self.before[1]
        return 100.0 * (total - idle) / total * (os.cpu_count() or 1)


def other_pct(system: float | None, *ours: float | None) -> float | None:
    """CPU use by processes other than this benchmark's over the window (100 = one core)."""
    if system is None or any(v is None for v in ours):
        return None
    return round(max(0.0, system - sum(v for v in ours if v is not None)), 1)


# ===================================================================== children
class Pool:
    """The spawned children: ``WORKERS`` for workers or pullers, plus a spare for the kill phase."""

    def __init__(self, size: int) -> None:
        self.children: list[Child] = []
        self.size = size
        self.spawned = 0

    def start(self) -> None:
        for _ in range(self.size):
            self.children.append(self._spawn())
        for child in self.children:
            child.wait_started()

    def _spawn(self) -> Child:
        self.spawned += 1
        return Child(self.spawned - 1)

    def replace(self, child: Child) -> None:
        """Reap ``child`` (killed) and put a fresh process in its place."""
        i = self.children.index(child)
        child.stop()
        self.children[i] = fresh = self._spawn()
        fresh.wait_started()

    def stop(self) -> None:
        for child in self.children:
            child.stop()
