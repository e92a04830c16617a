"""The watch over handlers run inline (``consensus.runtime.watch``): when it takes the
reading over, when it sleeps, and how its threads are woken. The readers that use it are
tested with real sockets in test_blocking_serve.py and test_blocking_thread_surveys.py."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from consensus.runtime.watch import Hand, Watch

JOIN_S = 10.0


def _hand() -> Hand:
    return Hand(lambda hand: None, "test hand")


def test_a_hand_is_woken_once_however_often_it_is_poked() -> None:
    hand = _hand()
    assert not hand.wake.acquire(blocking=False)
    hand.poke()
    hand.poke()
    assert hand.wake.acquire(blocking=False)
    assert not hand.wake.acquire(blocking=False)  # the second poke found it awake already


def test_an_armed_watch_takes_over_from_a_handler_that_ran_a_whole_period() -> None:
    watch, reader, watcher = Watch(), _hand(), _hand()
    watch.inline = reader
    watch.begun += 1
    watch.arm(watcher)
    assert watch.hand is watcher and watch.armed
    assert watch.look(watcher)  # the poke that armed it
    assert not watch.overdue(True)  # woken: no period has passed
    assert not watch.look(watcher)  # armed: a period passes, nothing pokes
    assert watch.overdue(False)  # the same handler ran through it
    assert watch.take_over() is reader
    assert (watch.hand, watch.inline, watch.armed) == (None, None, False)


def test_a_handler_begun_within_the_period_is_not_the_slow_one() -> None:
    watch, reader, watcher = Watch(), _hand(), _hand()
    watch.arm(watcher)
    watch.inline = reader
    watch.begun += 1
    assert not watch.overdue(True)
    watch.begun += 1  # the first returned, the next began
    assert not watch.overdue(False)
    assert watch.overdue(False)  # the second ran a whole period


def test_a_quiet_period_disarms_the_watch_until_the_next_handler() -> None:
    watch, watcher = Watch(), _hand()
    watch.arm(watcher)
    assert watch.look(watcher)
    assert not watch.overdue(True)
    assert not watch.overdue(False)  # a period with no handler running
    assert not watch.armed
    done = threading.Event()
    woke: list[bool] = []

    def sleep() -> None:
        woke.append(watch.look(watcher))  # untimed: only a poke ends it
        done.set()

    sleeper = threading.Thread(target=sleep, daemon=True)
    sleeper.start()
    watch.arm()  # the next handler begins: the sleeping watch is poked awake
    assert done.wait(JOIN_S)
    sleeper.join(JOIN_S)
    assert woke == [True] and watch.armed


def test_arming_an_armed_watch_does_not_poke_it() -> None:
    watch, watcher = Watch(), _hand()
    watch.arm(watcher)
    assert watch.look(watcher)
    watch.arm()
    assert not watcher.wake.acquire(blocking=False)


def test_a_thread_that_arms_itself_is_not_poked() -> None:
    watch, watcher = Watch(), _hand()
    watch.arm(watcher, wake=False)  # it goes straight to its first look: a whole period
    assert watch.armed and watch.hand is watcher
    assert not watcher.wake.acquire(blocking=False)


def test_release_leaves_nobody_watching() -> None:
    watch, watcher, other = Watch(), _hand(), _hand()
    watch.arm(watcher)
    assert watch.release() is watcher
    assert watch.release() is None
    watch.arm(other)  # the next spare watches afresh: it has seen nothing yet
    assert watch.hand is other
    watch.inline = _hand()
    assert not watch.overdue(False)  # its first look only learns the clock


@given(st.lists(st.sampled_from(["begin", "end", "look", "poked"]), max_size=40))
def test_takes_over_exactly_when_one_handler_spans_a_whole_period(steps: list[str]) -> None:
    """Against a naive model: the watch takes over after a period (an unpoked look) in which
    no handler began and one was running, the look before it having seen the same clock."""
    watch, watcher, reader = Watch(), _hand(), _hand()
    watch.arm(watcher)
    running, clock, seen = False, 0, -1
    for step in steps:
        if step == "begin":
            running, clock = True, clock + 1
            watch.inline, watch.begun = reader, clock
        elif step == "end":
            running = False
            watch.inline = None
        else:
            poked = step == "poked"
            expect = not poked and clock == seen and running
            assert watch.overdue(poked) is expect
            if not poked and clock == seen and not running:
                assert not watch.armed
            seen = clock
            if expect:
                return
