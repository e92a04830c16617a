"""The shared-memory background thread (``patterns.shm.worker``): jobs run in order, not
before their delay, a failing job is logged and the thread goes on, a thread in a deep
sleep is woken by a submission, and unmapping drops a mapping without the caller's GIL.

``settle()`` is the only wait: no test sleeps.
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

import pytest
from _shm import mappings, no_leak, shm_dir

from patterns.shm import worker as _shm_worker
from patterns.shm.worker import Worker, populate, unmap

__all__ = ["no_leak", "shm_dir"]  # fixtures used by name


def test_jobs_run_in_order_and_not_before_their_delay() -> None:
    worker = Worker(lambda: None)
    ran: list[tuple[str, float]] = []
    submitted = time.monotonic()
    worker.submit(lambda: ran.append(("late", time.monotonic())), delay=0.05)
    worker.submit(lambda: ran.append(("next", time.monotonic())))
    assert worker.settle(10)
    assert [name for name, _ in ran] == ["late", "next"]
    assert ran[0][1] >= submitted + 0.05


def test_a_failing_job_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(lambda: None)
    ran = []

    def broken() -> None:
        raise RuntimeError("boom")

    worker.submit(broken)
    worker.submit(lambda: ran.append(1))
    assert worker.settle(10) and ran == [1]
    assert "boom" in caplog.text


def test_a_deep_sleeper_is_woken_by_a_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_shm_worker, "ACTIVE", 0.0)  # never polls: sleeps until notified
    ticks = []
    worker = Worker(lambda: ticks.append(1))  # type: ignore[func-returns-value]
    worker.submit(lambda: None)
    assert worker.settle(10)
    ran = []
    worker.submit(lambda: ran.append(1))
    assert worker.settle(10) and ran == [1]  # without the notification it would sleep forever


def test_populate_and_unmap(shm_dir: Path) -> None:
    path = shm_dir / "mapped"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.posix_fallocate(fd, 0, 4 * _shm_worker.CHUNK + 4096)
        mapping = mmap.mmap(fd, 4 * _shm_worker.CHUNK + 4096)
    finally:
        os.close(fd)
    assert populate(mapping) == 0
    mapping[-5:] = b"kept!"
    assert mappings(path) == 1
    unmap(mapping)
    assert mapping.closed and mappings(path) == 0
    assert path.read_bytes()[-5:] == b"kept!"  # the data stays in the file
    with open(path, "r+b") as file:
        borrowed = mmap.mmap(file.fileno(), 0)
    view = memoryview(borrowed)
    unmap(borrowed)  # a borrower holds it: it stays usable, unmapped when the borrower goes
    assert bytes(view[-5:]) == b"kept!"
    view[:2] = b"ok"
    assert mappings(path) == 1
    view.release()
    del view, borrowed
    assert mappings(path) == 0 and path.read_bytes()[:2] == b"ok"
    path.unlink()


def test_the_periodic_sweep_runs_on_the_background_thread(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _shm import patch_header

    from patterns.shm import codec as _shm_codec
    from patterns.shm import spare as _shm_spare
    from patterns.shm.segment import place

    buf = place(b"left by a process whose pid was reused", lease=30, directory=shm_dir)
    patch_header(buf.path, start_time=1)  # its owner is dead
    monkeypatch.setattr(_shm_codec, "_last_sweep", {})
    _shm_codec.maybe_sweep(str(shm_dir))
    assert _shm_spare.settle(10) and not buf.path.exists()
    again = place(b"a live one", lease=30, directory=shm_dir)
    patch_header(again.path, start_time=1)
    _shm_codec.maybe_sweep(str(shm_dir))  # not yet due: at most every SWEEP_EVERY seconds
    assert _shm_spare.settle(10) and again.path.exists()
    again.discard()


def test_the_thread_is_nicer_than_the_senders() -> None:
    import threading

    base = os.getpriority(os.PRIO_PROCESS, 0)
    seen = []
    worker = Worker(lambda: None)
    worker.submit(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    assert worker.settle(10)
    assert seen == [max(base, _shm_worker.NICE)] and os.getpriority(os.PRIO_PROCESS, 0) == base


def test_a_job_submitted_when_no_thread_can_start_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(threading.Thread, "start", refused)
    ran = []
    worker = Worker(lambda: None)
    worker.submit(lambda: ran.append(1), delay=5.0)
    assert ran == [1] and worker.settle(0)


def test_a_poll_that_finds_nothing_due_does_not_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """While jobs keep coming the thread looks for them every POLL; a look that finds none
    ticks only when the last tick said something is due (a tick beside a send took the
    GIL from it). Here nothing is ever due: after its job, the thread looks 50 times and
    ticks at most once."""
    import threading

    class Counting(threading.Condition):
        """Counts the background thread's waits: one per look while it polls."""

        looks = 0
        enough = threading.Event()

        def wait(self, timeout: float | None = None) -> bool:
            if threading.current_thread().name == "nngc-shm":
                Counting.looks += 1
                if Counting.looks >= 50:
                    Counting.enough.set()
            return super().wait(timeout)

    monkeypatch.setattr(_shm_worker, "POLL", 0.001)
    monkeypatch.setattr(_shm_worker, "TICK_ACTIVE", 60.0)
    ticks: list[int] = []
    worker = Worker(lambda: ticks.append(1))  # type: ignore[func-returns-value]
    worker._cond = Counting()  # (before its thread starts)
    worker.submit(lambda: None)
    assert worker.settle(10)
    before = len(ticks)
    assert Counting.enough.wait(30)
    assert len(ticks) - before <= 1


def test_a_deep_sleep_waits_for_the_tick_that_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once no job came for ACTIVE seconds the thread sleeps until the tick its last tick
    said is due (here in 60 s), not TICK_ACTIVE: an idle process holding a name made ahead
    or a spare must not wake ten times a second."""
    import threading

    timeouts: list[float | None] = []
    slept = threading.Event()

    class Recording(threading.Condition):
        """Records the timeout of the background thread's first wait in a deep sleep."""

        def wait(self, timeout: float | None = None) -> bool:
            if threading.current_thread().name == "nngc-shm" and worker._deep and not slept.is_set():
                timeouts.append(timeout)
                slept.set()
            return super().wait(timeout)

    monkeypatch.setattr(_shm_worker, "ACTIVE", 0.0)  # deep at once after a job
    worker = Worker(lambda: 60.0)
    worker._cond = Recording()  # (before its thread starts)
    worker.submit(lambda: None)
    assert slept.wait(30)
    timeout = timeouts[0]
    assert timeout is not None and timeout > 30.0
