"""The handler threads of a trio run (``consensus/runtime/crew.py``): a burst of jobs on one
thread, a slow job that does not hold up the others, threads that end with the run."""

from __future__ import annotations

import functools
import logging
import threading

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.runtime import crew as crew_module
from consensus.runtime.batch import at_batch_end
from consensus.runtime.crew import Crew, crew

pytestmark = pytest.mark.timeout(60)


async def test_a_burst_runs_on_one_thread_woken_once() -> None:
    ran: list[tuple[int, str]] = []
    done = threading.Event()
    here = crew()
    assert crew() is here  # one per trio run

    def job(i: int) -> None:
        ran.append((i, threading.current_thread().name))  # list.append is atomic
        if len(ran) == 8:
            done.set()

    now = trio.current_time()
    for i in range(8):  # no checkpoint between: the thread woken by the first takes them all
        here.submit(functools.partial(job, i), now)
    assert await trio.to_thread.run_sync(done.wait, 20)
    assert sorted(i for i, _ in ran) == list(range(8))
    assert {name for _, name in ran} == {"consensus handler"}
    stats = here.statistics()
    assert stats.waiting == 0 and stats.threads >= 1


async def test_a_slow_job_does_not_hold_up_the_ones_behind_it() -> None:
    release, quick = threading.Event(), threading.Event()
    threads: dict[str, threading.Thread] = {}
    here = Crew(name="test crew slow")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(here.watch)

        def slow() -> None:
            threads["slow"] = threading.current_thread()
            release.wait(20)

        def fast() -> None:
            threads["fast"] = threading.current_thread()
            quick.set()

        here.submit(slow, trio.current_time())
        here.submit(fast, trio.current_time())  # queued behind the slow one: rescued after PATIENCE
        assert await trio.to_thread.run_sync(quick.wait, 20)
        assert threads["fast"] is not threads["slow"]
        assert not release.is_set()
        release.set()
        nursery.cancel_scope.cancel()
    for thread in threads.values():  # the run's end closed the crew: its threads leave
        thread.join(10)
        assert not thread.is_alive()
    assert here.statistics().threads == 0


async def test_a_raising_job_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    after = threading.Event()
    here = Crew(name="test crew raising")

    def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="consensus"):
        now = trio.current_time()
        here.submit(boom, now)
        here.submit(after.set, now)
        assert await trio.to_thread.run_sync(after.wait, 20)
    here.close()
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_an_idle_thread_ends_and_a_new_one_starts_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crew_module, "IDLE_EXIT", 0.05)
    here = Crew(name="test crew idle")
    first, second = threading.Event(), threading.Event()
    seen: list[threading.Thread] = []

    def note(event: threading.Event) -> None:
        seen.append(threading.current_thread())
        event.set()

    here.submit(lambda: note(first), trio.current_time())
    assert await trio.to_thread.run_sync(first.wait, 20)
    seen[0].join(10)  # idle past IDLE_EXIT: gone
    assert not seen[0].is_alive() and here.statistics().threads == 0
    here.submit(lambda: note(second), trio.current_time())
    assert await trio.to_thread.run_sync(second.wait, 20)
    here.close()
    seen[1].join(10)
    assert not seen[1].is_alive()


def test_every_thread_ends_with_its_trio_run() -> None:
    names: list[threading.Thread] = []

    async def main() -> None:
        done = threading.Event()

        def job() -> None:
            names.append(threading.current_thread())
            done.set()

        crew().submit(job, trio.current_time())
        assert await trio.to_thread.run_sync(done.wait, 20)

    trio.run(main)
    names[0].join(10)
    assert not names[0].is_alive()


async def test_calls_deferred_to_the_batch_end_run_together_in_order(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[int] = []

    def fail() -> None:
        raise RuntimeError("deferred failure")

    at_batch_end(ran.append, 1)
    at_batch_end(fail)
    at_batch_end(ran.append, 2)
    assert ran == []  # not before this task gives the batch up
    with caplog.at_level(logging.ERROR, logger="consensus"):
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
    assert ran == [1, 2]  # one failing call does not lose the others
    assert any(r.exc_info and "deferred failure" in str(r.exc_info[1]) for r in caplog.records)


def test_calls_deferred_when_the_run_ends_still_run() -> None:
    ran: list[str] = []

    async def main() -> None:
        at_batch_end(ran.append, "first")
        await trio.lowlevel.checkpoint()
        at_batch_end(ran.append, "last")  # the run ends right after: the system task flushes it

    trio.run(main)
    assert ran == ["first", "last"]


@settings(max_examples=25)
@given(st.lists(st.tuples(st.sampled_from(["quick", "blocked", "raising"]), st.booleans()), min_size=1, max_size=24))
def test_every_job_runs_exactly_once_and_no_thread_outlives_the_run(plan: list[tuple[str, bool]]) -> None:
    """Random bursts (a checkpoint or not after each submit) of quick, blocked and raising
    jobs: each runs once, the blocked ones do not hold up the rest, every thread ends."""
    ran: list[int] = []
    release = threading.Event()
    threads: set[threading.Thread] = set()
    quick_done = threading.Event()
    quick_total = sum(kind != "blocked" for kind, _ in plan)

    def job(i: int, kind: str) -> None:
        threads.add(threading.current_thread())
        if kind == "blocked":
            release.wait(20)
        ran.append(i)
        if sum(plan[j][0] != "blocked" for j in ran) == quick_total:
            quick_done.set()
        if kind == "raising":
            raise RuntimeError("planned")

    async def main() -> None:
        here = crew()
        for i, (kind, checkpoint) in enumerate(plan):
            here.submit(functools.partial(job, i, kind), trio.current_time())
            if checkpoint:
                await trio.lowlevel.checkpoint()
        if quick_total:  # behind blocked jobs or not, the others all run while those still block
            assert await trio.to_thread.run_sync(quick_done.wait, 20)
        release.set()
        while len(ran) < len(plan):
            await trio.sleep(0.01)

    logging.getLogger("consensus").disabled = True  # the planned failures
    try:
        trio.run(main)
    finally:
        logging.getLogger("consensus").disabled = False
    assert sorted(ran) == list(range(len(plan)))
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
