"""The replay window against the naive reference, on the sequences real keys produce: mostly
in order over more than a window, with late and repeated numbers, and jumps past the window
(``test_trust.py`` has random numbers)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.trust import Guard, Key
from consensus.trust.seal import WINDOW, MacSender, ReplayWindow, Scheme
from patterns import Unauthenticated

jumps = st.lists(
    st.integers(1, 1) | st.integers(2, 5) | st.integers(-8, 0) | st.integers(-WINDOW - 2, -WINDOW + 2)
    | st.integers(WINDOW - 2, WINDOW + 2) | st.integers(1, 3 * WINDOW),
    max_size=300,
)  # fmt: skip


def _check(window: ReplayWindow, seqs: list[int]) -> None:
    seen: set[int] = set()
    top = 0
    for seq in seqs:
        expected = seq > 0 and seq not in seen and seq > top - WINDOW  # the naive reference
        assert window.accept(seq) is expected, (seq, top)
        if expected:
            seen.add(seq)
            top = max(top, seq)


@settings(max_examples=150, deadline=None)
@given(jumps, st.integers(-2, 3))
def test_the_window_accepts_what_the_naive_reference_accepts(moves: list[int], start: int) -> None:
    seqs, seq = [], start
    for move in moves:
        seq += move
        seqs.append(seq)
    _check(ReplayWindow(), seqs)


@settings(max_examples=150, deadline=None)
@given(st.integers(WINDOW, 3 * WINDOW), st.dictionaries(st.integers(1, 3 * WINDOW), st.integers(1, 2 * WINDOW + 8),
       max_size=12), st.lists(st.integers(1, 3 * WINDOW), max_size=8))  # fmt: skip
def test_numbers_mostly_in_order_over_more_than_a_window(count: int, late: dict[int, int], again: list[int]) -> None:
    """1 to ``count`` in order, but for the ones in ``late``, that many numbers later (past
    the window: refused), and those in ``again`` a second time: a number skipped when the
    window moved on is taken late once, though its byte held a number a window older."""
    order = sorted(range(1, count + 1), key=lambda n: n + late.get(n, 0) + 0.5 * (n in late))
    for n in again:
        if n <= count:
            order.insert(min(order.index(n) + 3, len(order)), n)
    _check(ReplayWindow(), order)


def test_a_window_of_many_in_order_numbers_refuses_each_again() -> None:
    window = ReplayWindow()
    assert all(window.accept(seq) for seq in range(1, 5 * WINDOW))
    assert not any(window.accept(seq) for seq in range(4 * WINDOW + 1, 5 * WINDOW))  # seen
    assert not window.accept(4 * WINDOW)  # too old
    assert window.accept(6 * WINDOW) and window.accept(5 * WINDOW + 1)  # a jump, then one late
    assert not window.accept(5 * WINDOW + 1) and window.accept(5 * WINDOW + 2)


class _CountedBytes(bytearray):
    """A window's bytes that count the writes to them (one per item or slice assigned)."""

    writes = 0

    def __setitem__(self, index: Any, value: Any) -> None:
        self.writes += 1
        super().__setitem__(index, value)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2**40), st.integers(2, 3 * WINDOW))
def test_a_jump_costs_a_few_writes_whatever_its_length(top: int, jump: int) -> None:
    """A key's holder chooses its numbers: one jumping by nearly a window each frame must not
    make each frame clear the skipped numbers' bytes one by one (WINDOW - 1 writes: ~30 µs a
    frame, against ~0.2 for one in order)."""
    window = ReplayWindow()
    assert window.accept(top)
    window.seen = counted = _CountedBytes(window.seen)
    assert window.accept(top + jump)
    assert counted.writes <= 3  # (at most two slices cleared, the new number's byte set)
    assert not window.accept(top + jump) and window.accept(top + jump - 1) is (jump > 1)


# From 0 to 2**64 - 1 (a header's 8-byte number): in order, late, repeated, just inside and
# just past the window, and jumps of any size up to the whole range.
moves = st.lists(
    st.integers(1, 1) | st.integers(-3, 3) | st.integers(-WINDOW - 1, -WINDOW + 1) | st.integers(WINDOW - 1, WINDOW + 1)
    | st.integers(-2 * WINDOW, 2 * WINDOW) | st.integers(-(2**64), 2**64),
    max_size=200,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([0, 1, 2, WINDOW - 1, WINDOW, 2**63, 2**64 - WINDOW - 3]), moves)
def test_a_guard_refuses_what_the_naive_reference_refuses_over_the_whole_range(start: int, steps: list[int]) -> None:
    """Through :meth:`Guard.open` (which takes the next number in order itself, and hands any
    other to :meth:`ReplayWindow.accept`) and a window of its own: each number once, none
    ``WINDOW`` or more behind the newest, none under 1; every refusal a ``replay``."""
    sender, guard, alone = MacSender(b"k" * 8, b"\1" * 32), Guard(), ReplayWindow()
    guard.add(Key(b"k" * 8, Scheme.MAC, b"\1" * 32))
    seen: set[int] = set()
    top, seq = 0, start
    for step in steps:
        seq = min(max(seq + step, 0), 2**64 - 1)
        expected = seq > 0 and seq not in seen and seq > top - WINDOW  # the naive reference
        sender._seq = seq - 1  # (seal() numbers its frame one past it)
        frame = sender.seal(b"payload")
        if expected:
            assert guard.open(frame).payload == b"payload"
            seen.add(seq)
            top = max(top, seq)
        else:
            with pytest.raises(Unauthenticated) as refused:
                guard.open(frame)
            assert refused.value.reason == "replay"
        assert alone.accept(seq) is expected, (seq, top)
