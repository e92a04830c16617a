"""The replay window against the naive reference, on the sequences real keys produce: mostly
in order over more than a window, with late and repeated numbers, and jumps past the window
(``test_trust.py`` has random numbers)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.trust.seal import WINDOW, ReplayWindow

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
