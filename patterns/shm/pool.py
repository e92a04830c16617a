"""The pure bookkeeping of reused segments: which wait for proof of release, which are free.

A payload segment whose receivers all attached (its name is gone) is *retired* here; once
the driver (``_shm_ring``) has proven that no receiver maps it any more it is *released*
and becomes free for the next payload of its size class in its directory. This module
only keeps the books: no clock (``now`` is passed in), no file, no lock. Items are
opaque to it and compared by identity.

Bounds (:class:`PoolLimits`): the payload bytes held (retiring and free together), the
free segments per key, how long a free segment waits unused (``idle``) and how long a
retired one may wait for its proof (``patience``); whatever goes over a bound is handed
back to the caller to close, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Entry", "PoolLimits", "PoolStatistics", "SegmentPool"]

T = TypeVar("T")
Key = tuple[str, int]  # (directory, size class)


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """What the pool may hold."""

    max_bytes: int
    """Payload bytes of the segments held, retiring and free together."""
    per_key: int
    """Free segments kept per (directory, size class)."""
    idle: float
    """Seconds a free segment waits to be reused before it is closed."""
    patience: float
    """Seconds a retired segment waits for its receivers' release before it is closed."""


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """This process's pool of reused shared-memory segments (see ``docs/statistics.md``)."""

    pooled: int = 0
    pooled_bytes: int = 0
    retiring: int = 0
    reused: int = 0
    missed: int = 0
    released: int = 0
    refused: int = 0
    trimmed: int = 0


@dataclass(eq=False, slots=True)
class Entry(Generic[T]):
    """One segment in the books: its item, key, capacity and since when it waits."""

    item: T
    key: Key
    capacity: int
    since: float


@dataclass(slots=True)
class _Counters:
    reused: int = 0
    missed: int = 0
    released: int = 0
    refused: int = 0
    trimmed: int = 0


class SegmentPool(Generic[T]):
    """Retiring and free segments, by (directory, size class); see the module docstring."""

    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self._retiring: dict[int, Entry[T]] = {}  # id(item) -> entry, oldest first
        self._free: dict[Key, list[Entry[T]]] = {}  # most recently released last
        self._held: set[int] = set()  # id() of every item held, retiring or free
        self._bytes = 0
        self._counts = _Counters()
        self._stats_cache: PoolStatistics | None = None

    # ------------------------------------------------------------ the two stages
    def retire(self, item: T, key: Key, capacity: int, now: float) -> bool:
        """``item``'s name is gone: hold it until its release is proven. False: over the
        byte bound or already held (the caller closes it; counted as refused)."""
        self._stats_cache = None
        if id(item) in self._held or self._bytes + capacity > self.limits.max_bytes or capacity < 0:
            self._counts.refused += 1
            return False
        self._retiring[id(item)] = Entry(item, key, capacity, now)
        self._held.add(id(item))
        self._bytes += capacity
        return True

    def refuse(self) -> None:
        """Count a segment the driver would not retire (no memory to spare for it)."""
        self._stats_cache = None
        self._counts.refused += 1

    def retiring(self, key: Key | None = None) -> list[T]:
        """The items waiting for proof of release (of ``key``, or all), oldest first."""
        return [e.item for e in self._retiring.values() if key is None or e.key == key]

    def released(self, item: T, now: float) -> T | None:
        """``item``'s release is proven: free it for reuse. Returns the item the caller
        must close instead (itself when its key already holds ``per_key`` free ones)."""
        self._stats_cache = None
        entry = self._retiring.pop(id(item), None)
        if entry is None:
            return None
        self._counts.released += 1
        free = self._free.setdefault(entry.key, [])
        if len(free) >= self.limits.per_key:
            self._held.discard(id(item))
            self._bytes -= entry.capacity
            self._counts.refused += 1
            return item
        entry.since = now
        free.append(entry)
        return None

    def take(self, key: Key, size: int, *, final: bool = True) -> T | None:
        """A free item of ``key`` with room for ``size`` bytes, now the caller's (the most
        recently released first: its pages are the warmest); None counts a miss, unless
        the caller will look again (not ``final``)."""
        self._stats_cache = None
        free = self._free.get(key, [])
        for index in range(len(free) - 1, -1, -1):
            if free[index].capacity >= size:
                entry = free.pop(index)
                if not free:
                    del self._free[key]
                self._held.discard(id(entry.item))
                self._bytes -= entry.capacity
                self._counts.reused += 1
                return entry.item
        self._counts.missed += final
        return None

    def free(self, key: Key) -> int:
        """How many free items ``key`` holds."""
        return len(self._free.get(key, ()))

    # ------------------------------------------------------------ trimming
    def expire(self, now: float) -> list[T]:
        """Free items unused for ``idle`` seconds and retired ones past ``patience``: the caller closes them."""
        gone = [e for e in self._retiring.values() if now - e.since >= self.limits.patience]
        for entry in gone:
            del self._retiring[id(entry.item)]
        for key in list(self._free):
            stale = [e for e in self._free[key] if now - e.since >= self.limits.idle]
            if stale:
                gone.extend(stale)
                kept = [e for e in self._free[key] if now - e.since < self.limits.idle]
                if kept:
                    self._free[key] = kept
                else:
                    del self._free[key]
        return self._forget(gone)

    def drop(self, directory: str | None = None) -> list[T]:
        """Everything held for ``directory`` (None: all): the caller closes them."""
        gone = [e for e in self._retiring.values() if directory is None or e.key[0] == directory]
        for entry in gone:
            del self._retiring[id(entry.item)]
        for key in [k for k in self._free if directory is None or k[0] == directory]:
            gone.extend(self._free.pop(key))
        return self._forget(gone)

    def next_due(self, now: float) -> float | None:
        """Seconds until :meth:`expire` has something to do (None: nothing held)."""
        limits = self.limits
        moments = [e.since + limits.patience for e in self._retiring.values()]
        moments += [e.since + limits.idle for free in self._free.values() for e in free]
        return max(0.0, min(moments) - now) if moments else None

    def _forget(self, gone: list[Entry[T]]) -> list[T]:
        self._stats_cache = None
        self._bytes -= sum(e.capacity for e in gone)
        self._held.difference_update(id(e.item) for e in gone)
        self._counts.trimmed += len(gone)
        return [e.item for e in gone]

    # ------------------------------------------------------------ the books
    @property
    def held_bytes(self) -> int:
        return self._bytes

    def statistics(self) -> PoolStatistics:
        if self._stats_cache is None:
            free = [e for entries in self._free.values() for e in entries]
            c = self._counts
            self._stats_cache = PoolStatistics(
                pooled=len(free),
                pooled_bytes=sum(e.capacity for e in free),
                retiring=len(self._retiring),
                reused=c.reused,
                missed=c.missed,
                released=c.released,
                refused=c.refused,
                trimmed=c.trimmed,
            )
        return self._stats_cache
