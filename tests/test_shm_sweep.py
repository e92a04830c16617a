"""The sweep, and segments crossing real processes: delivery, SIGKILL of a writer or a receiver.

The decision (``judge``) is tested as a table; the sweep on real files; then child
processes (``tests/shm_agent.py``) write and attach. Time is never waited for: a lease
is made to pass by sweeping with a later ``now``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio
from _shm import no_leak, patch_header, read_header, ref_from_hex, ref_hex, segments, shm_dir
from conftest import Peers, read_line, tell
from shm_agent import pattern

from patterns.shm.header import Header, OwnerIdentity, monotonic_now, process_identity
from patterns.shm.segment import SharedBuffer, attach, place
from patterns.shm.sweep import DEFAULT_GRACE, SweepReport, Verdict, judge, sweep

__all__ = ["no_leak", "shm_dir"]  # fixtures used by name

OWNER = OwnerIdentity(pid=4242, start_time=777, pid_ns=1)
HEADER = Header(
    flags=0, owner=OWNER, token=bytes(16), payload_length=10, lease_deadline=100.0, receivers=2, pending=1
)


@pytest.mark.parametrize(
    ("header", "alive", "age", "verdict"),
    [
        (HEADER, True, 0.0, Verdict.KEEP),
        (HEADER, None, 0.0, Verdict.KEEP),  # another pid namespace: only the lease counts
        (HEADER, False, 0.0, Verdict.OWNER_DEAD),
        (replace(HEADER, lease_deadline=99.0), True, 0.0, Verdict.EXPIRED),
        (replace(HEADER, lease_deadline=50.0), None, 0.0, Verdict.EXPIRED),
        (replace(HEADER, pending=0), True, 0.0, Verdict.RELEASED),
        (None, True, DEFAULT_GRACE - 1, Verdict.KEEP),  # perhaps being made right now
        (None, True, DEFAULT_GRACE + 1, Verdict.GARBAGE),
        (replace(HEADER, owner=replace(OWNER, pid=1)), True, DEFAULT_GRACE + 1, Verdict.GARBAGE),
        (replace(HEADER, owner=replace(OWNER, pid=1)), True, 1.0, Verdict.KEEP),
    ],
)
def test_judge(header: Header | None, alive: bool | None, age: float, verdict: Verdict) -> None:
    asked: list[OwnerIdentity] = []

    def is_alive(owner: OwnerIdentity) -> bool | None:
        asked.append(owner)
        return alive

    now = 99.5 if verdict is not Verdict.EXPIRED else 100.0
    assert judge(header, name_pid=4242, now=now, age=age, grace=DEFAULT_GRACE, is_alive=is_alive) is verdict
    assert asked in ([], [OWNER])


def test_lease_expiry_is_swept_and_attached_views_survive(shm_dir: Path) -> None:
    buf = place(b"leased", lease=30, receivers=2, directory=shm_dir)
    view = attach(buf.ref, directory=shm_dir)
    assert sweep(directory=shm_dir) == SweepReport(examined=1, kept=1)
    report = sweep(buf.lease_deadline, directory=shm_dir)
    assert report == SweepReport(examined=1, expired=1) and report.removed == 1
    assert segments(shm_dir) == [] and bytes(view) == b"leased"


def test_a_reused_pid_is_a_dead_owner(shm_dir: Path) -> None:
    buf = place(b"x", lease=3600, directory=shm_dir)
    patch_header(buf.path, start_time=process_identity().start_time + 1)
    assert sweep(directory=shm_dir) == SweepReport(examined=1, owner_dead=1)


def test_an_owner_in_another_pid_namespace_waits_for_its_lease(shm_dir: Path) -> None:
    buf = place(b"x", lease=3600, directory=shm_dir)
    patch_header(buf.path, pid_ns=12345, start_time=1)
    assert sweep(directory=shm_dir) == SweepReport(examined=1, kept=1)
    assert sweep(buf.lease_deadline + 1, directory=shm_dir).expired == 1


def test_released_and_garbage(shm_dir: Path) -> None:
    released = place(b"x", lease=3600, directory=shm_dir)
    patch_header(released.path, pending=0)
    young, old = (shm_dir / f"nngc.{os.getpid()}.{i * 32}" for i in "ab")
    young.write_bytes(b"half made")
    old.write_bytes(b"half made")
    long_ago = time.time() - DEFAULT_GRACE - 10
    os.utime(old, (long_ago, long_ago))
    assert sweep(directory=shm_dir) == SweepReport(examined=3, kept=1, released=1, garbage=1)
    assert segments(shm_dir) == [young.name]
    assert sweep(directory=shm_dir, grace=-1).garbage == 1


def test_what_is_not_ours_is_left_alone(shm_dir: Path) -> None:
    strangers = ["nngc.foo", "nngc.1.zz", "nngc.1." + "A" * 32, "other"]
    for name in strangers:
        (shm_dir / name).write_bytes(b"")
    (shm_dir / f"nngc.1.{'c' * 32}").mkdir()
    (shm_dir / f"nngc.1.{'d' * 32}").symlink_to(shm_dir / "other")
    assert sweep(directory=shm_dir, grace=-1) == SweepReport()
    assert len(list(shm_dir.iterdir())) == 6
    for entry in shm_dir.iterdir():
        entry.rmdir() if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def test_a_missing_directory_is_an_empty_sweep(tmp_path: Path) -> None:
    assert sweep(directory=tmp_path / "nowhere") == SweepReport()


def test_concurrent_sweeps_remove_each_segment_once(shm_dir: Path) -> None:
    buffers = [place(b"x", lease=1, directory=shm_dir) for _ in range(60)]
    later = max(buf.lease_deadline for buf in buffers) + 1
    start = threading.Barrier(4)
    reports: list[SweepReport] = []

    def sweeper() -> None:
        start.wait(timeout=10)
        reports.append(sweep(later, directory=shm_dir))

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(reports) == 4 and segments(shm_dir) == []
    assert sum(report.expired for report in reports) == 60
    assert all(report.kept == report.garbage == 0 for report in reports)


# ---------------------------------------------------------------- real processes


async def kill(proc: subprocess.Popen[str], *, reap: bool = True) -> None:
    """SIGKILL ``proc`` and wait until it is dead; ``reap=False`` leaves it a zombie."""
    proc.send_signal(signal.SIGKILL)
    if reap:
        await trio.to_thread.run_sync(proc.wait)
    else:
        await trio.to_thread.run_sync(os.waitid, os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)


async def refs_of(proc: subprocess.Popen[str], count: int) -> list[str]:
    lines = [await read_line(proc) for _ in range(count + 1)]
    assert lines[-1] == "ready" and all(line.startswith("ref ") for line in lines[:-1])
    return [line.split()[1] for line in lines[:-1]]


@pytest.mark.deadline(30)
async def test_a_receiver_process_attaches_and_the_name_goes(shm_dir: Path, peers: Peers) -> None:
    data = pattern(3 * 1024 * 1024 + 7)
    buf = place(data, lease=30, receivers=2, directory=shm_dir)
    receivers = [peers.start("attach", str(shm_dir), script="shm_agent.py") for _ in range(2)]
    for proc in receivers:
        assert await read_line(proc) == "ready"
    tell(receivers[0], ref_hex(buf.ref))
    assert await read_line(receivers[0]) == f"ok {len(data)} {hashlib.blake2b(data).hexdigest()}"
    assert read_header(buf.path).pending == 1
    tell(receivers[1], ref_hex(buf.ref_range(5, 10)))
    assert await read_line(receivers[1]) == f"ok 10 {hashlib.blake2b(data[5:15]).hexdigest()}"
    assert segments(shm_dir) == []  # both attached
    tell(receivers[0], ref_hex(buf.ref))
    assert await read_line(receivers[0]) == "error SegmentGone missing"


@pytest.mark.deadline(30)
async def test_sweeps_in_several_processes_at_once(shm_dir: Path, peers: Peers) -> None:
    buffers = [place(b"x", lease=1, directory=shm_dir) for _ in range(300)]
    later = repr(max(buf.lease_deadline for buf in buffers) + 1)
    sweepers = [peers.start("sweep", str(shm_dir), later, script="shm_agent.py") for _ in range(3)]
    for proc in sweepers:
        assert await read_line(proc) == "ready"
    for proc in sweepers:
        tell(proc, "go")
    results = [(await read_line(proc)).split() for proc in sweepers]
    assert all(words[0] == "swept" and words[1] == words[2] for words in results)
    assert sum(int(words[1]) for words in results) == 300 and segments(shm_dir) == []


@pytest.mark.deadline(30)
async def test_sigkill_of_the_writer_is_swept_by_owner(shm_dir: Path, peers: Peers) -> None:
    size = 1024 * 1024
    writer = peers.start("write", str(shm_dir), str(size), "3600", "1", "3", script="shm_agent.py")
    refs = [ref_from_hex(text) for text in await refs_of(writer, 3)]
    assert all(ref.owner_pid == writer.pid for ref in refs)
    view = attach(refs[0], directory=shm_dir)  # a receiver that attached before the kill
    assert sweep(directory=shm_dir) == SweepReport(examined=2, kept=2)  # its owner lives
    await kill(writer, reap=False)  # a zombie is dead: it runs no code and maps nothing
    assert sweep(directory=shm_dir) == SweepReport(examined=2, owner_dead=2)
    await kill(writer)
    assert segments(shm_dir) == [] and view == pattern(size)


@pytest.mark.deadline(30)
async def test_sigkill_of_a_receiver_before_attaching_is_swept_by_lease(shm_dir: Path, peers: Peers) -> None:
    buf = place(b"never read", lease=30, directory=shm_dir)
    receiver = peers.start("attach", str(shm_dir), script="shm_agent.py")
    assert await read_line(receiver) == "ready"
    await kill(receiver)
    assert sweep(directory=shm_dir) == SweepReport(examined=1, kept=1)  # owner alive, lease running
    assert read_header(buf.path).pending == 1
    assert monotonic_now() < buf.lease_deadline
    assert sweep(buf.lease_deadline, directory=shm_dir) == SweepReport(examined=1, expired=1)
    assert segments(shm_dir) == []


@pytest.mark.deadline(30)
async def test_a_receiver_killed_while_holding_a_view_leaves_nothing(shm_dir: Path, peers: Peers) -> None:
    buf = SharedBuffer.create(4096, lease=30, directory=shm_dir)
    buf.view[:4] = b"data"
    receiver = peers.start("attach", str(shm_dir), script="shm_agent.py")
    assert await read_line(receiver) == "ready"
    tell(receiver, ref_hex(buf.ref))
    assert (await read_line(receiver)).startswith("ok 4096 ")
    await kill(receiver)
    assert segments(shm_dir) == []  # the name went at attach; the kernel dropped its mapping
    assert bytes(buf.view[:4]) == b"data"
    buf.close()
