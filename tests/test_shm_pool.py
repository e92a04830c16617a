"""The pure books of reused segments (``patterns.shm.pool``), against a naive reference.

The reference keeps one flat list of records and recomputes everything from it; any
sequence of retire / release / take / expire / drop with times that only go forward
must give the same answers, the same statistics, and never more bytes than the bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import given, settings

from patterns.shm.pool import PoolLimits, PoolStatistics, SegmentPool

LIMITS = PoolLimits(max_bytes=100, per_key=2, idle=10.0, patience=5.0)
KEYS = [("/a", 8), ("/a", 16), ("/b", 8)]


@dataclass(eq=False)
class Item:
    name: int


@dataclass
class Record:
    item: Item
    key: tuple[str, int]
    capacity: int
    since: float
    free: bool = False


@dataclass
class Reference:
    """Everything in one list, recomputed each time: slow and obviously right."""

    records: list[Record] = field(default_factory=list)
    reused: int = 0
    missed: int = 0
    released_count: int = 0
    refused: int = 0
    trimmed: int = 0

    def held(self) -> int:
        return sum(r.capacity for r in self.records)

    def retire(self, item: Item, key: tuple[str, int], capacity: int, now: float) -> bool:
        if any(r.item is item for r in self.records) or self.held() + capacity > LIMITS.max_bytes:
            self.refused += 1
            return False
        self.records.append(Record(item, key, capacity, now))
        return True

    def released(self, item: Item, now: float) -> Item | None:
        found = [r for r in self.records if r.item is item and not r.free]
        if not found:
            return None
        record = found[0]
        self.released_count += 1
        if sum(1 for r in self.records if r.free and r.key == record.key) >= LIMITS.per_key:
            self.records.remove(record)
            self.refused += 1
            return item
        self.records.remove(record)  # free ones are kept in release order: appended last
        record.free, record.since = True, now
        self.records.append(record)
        return None

    def take(self, key: tuple[str, int], size: int, final: bool) -> Item | None:
        fitting = [r for r in self.records if r.free and r.key == key and r.capacity >= size]
        if not fitting:
            self.missed += final
            return None
        record = fitting[-1]  # the most recently released
        self.records.remove(record)
        self.reused += 1
        return record.item

    def expire(self, now: float) -> set[int]:
        gone = [
            r
            for r in self.records
            if (now - r.since >= LIMITS.idle if r.free else now - r.since >= LIMITS.patience)
        ]
        return self._remove(gone)

    def drop(self, directory: str | None) -> set[int]:
        return self._remove([r for r in self.records if directory is None or r.key[0] == directory])

    def _remove(self, gone: list[Record]) -> set[int]:
        for record in gone:
            self.records.remove(record)
        self.trimmed += len(gone)
        return {id(r.item) for r in gone}

    def statistics(self) -> PoolStatistics:
        free = [r for r in self.records if r.free]
        return PoolStatistics(
            pooled=len(free),
            pooled_bytes=sum(r.capacity for r in free),
            retiring=len(self.records) - len(free),
            reused=self.reused,
            missed=self.missed,
            released=self.released_count,
            refused=self.refused,
            trimmed=self.trimmed,
        )


operation = st.one_of(
    st.tuples(st.just("retire"), st.integers(0, 7), st.sampled_from(KEYS), st.integers(0, 40)),
    st.tuples(st.just("released"), st.integers(0, 7)),
    st.tuples(st.just("take"), st.sampled_from(KEYS), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("expire")),
    st.tuples(st.just("drop"), st.sampled_from([None, "/a", "/b"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(operation, st.floats(0, 4, allow_nan=False)), max_size=60))
def test_the_pool_keeps_the_books_of_a_naive_reference(steps: list[tuple[tuple[object, ...], float]]) -> None:
    items = [Item(i) for i in range(8)]
    pool: SegmentPool[Item] = SegmentPool(LIMITS)
    reference = Reference()
    now = 0.0
    for op, pause in steps:
        now += pause
        match op:
            case ("retire", int(i), (str(d), int(c)), int(capacity)):
                assert pool.retire(items[i], (d, c), capacity, now) == reference.retire(
                    items[i], (d, c), capacity, now
                )
            case ("released", int(i)):
                assert pool.released(items[i], now) is reference.released(items[i], now)
            case ("take", (str(d), int(c)), int(size), bool(final)):
                assert pool.take((d, c), size, final=final) is reference.take((d, c), size, final)
            case ("expire",):
                assert {id(x) for x in pool.expire(now)} == reference.expire(now)
            case ("drop", directory):
                assert {id(x) for x in pool.drop(directory)} == reference.drop(directory)  # type: ignore[arg-type]
        assert pool.statistics() == reference.statistics()
        assert pool.held_bytes == reference.held() <= LIMITS.max_bytes
        assert set(map(id, pool.retiring())) == {id(r.item) for r in reference.records if not r.free}
        moments = [r.since + (LIMITS.idle if r.free else LIMITS.patience) for r in reference.records]
        assert pool.next_due(now) == (max(0.0, min(moments) - now) if moments else None)


def test_a_taken_item_is_the_warmest_that_fits() -> None:
    pool: SegmentPool[Item] = SegmentPool(LIMITS)
    small, large = Item(1), Item(2)
    assert pool.retire(small, KEYS[0], 5, 0.0) and pool.retire(large, KEYS[0], 8, 0.0)
    pool.released(large, 1.0)
    pool.released(small, 2.0)
    assert pool.take(KEYS[0], 6) is large  # the warmest (small) has no room for 6 bytes
    assert pool.take(KEYS[0], 6) is None and pool.take(KEYS[0], 5) is small
    assert pool.statistics() == PoolStatistics(reused=2, missed=1, released=2)
