"""Reused payload segments (``patterns.shm.ring``): a released segment carries the next
payload of its size class with its pages mapped; never while a receiver maps it; a late
reference to its earlier use is refused; bounded; nothing left behind.

Receivers here are this process (``attach``) or a spawned child; ``inflight.check`` and
``ring.tick`` are what the background thread runs, called directly so nothing waits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from _shm import in_use, mappings, no_leak, read_header, segments, shm_dir
from conftest import Peers, read_line, tell

import patterns
from patterns.errors import SegmentGone
from patterns.shm import creation, inflight, names, ring
from patterns.shm import spare as spares
from patterns.shm.header import PAYLOAD_OFFSET, free_bytes, monotonic_now
from patterns.shm.pool import PoolLimits, PoolStatistics, SegmentPool
from patterns.shm.segment import SharedBuffer, attach, place
from patterns.shm.worker import unmap

__all__ = ["in_use", "no_leak", "shm_dir"]  # fixtures used by name

MiB = 1024 * 1024


def send_and_release(folder: Path, data: bytes) -> int:
    """Place ``data``, attach it as its receiver would, check it, release it; its memfd's inode."""
    buf = place(data, lease=30, directory=folder)
    view = attach(buf.ref, directory=folder)
    assert bytes(view[:16]) == data[:16] and view.nbytes == len(data)
    view.release()
    inflight.check()  # the name is gone: it retires, and its release is proven at once
    ring.tick(unmap)  # (unless the background thread retired it before the release: proven now)
    return buf._header.memfd_inode


def test_a_released_segment_carries_the_next_payload(in_use: Path) -> None:
    first = send_and_release(in_use, b"\1" * MiB)
    assert ring.statistics() == PoolStatistics(pooled=1, pooled_bytes=MiB, released=1)
    second = send_and_release(in_use, b"\2" * MiB)  # reads back its own bytes, not the first's
    assert second == first
    third = send_and_release(in_use, b"\3" * (MiB - 4096))  # same size class, fits
    assert third == first
    stats = ring.statistics()
    assert (stats.reused, stats.pooled, stats.released) == (2, 1, 3)
    assert spares.settle(30)  # (a reuse asks for a spare behind it, and for its next name)
    ahead = [made.name for made in names.held(str(in_use))]
    assert len(ahead) == 1
    assert segments(in_use) == sorted([spare.path.name for spare in spares.held(str(in_use))] + ahead)


def test_a_stream_keeps_a_spare_behind_the_segment_it_reuses(in_use: Path) -> None:
    """Back to back, the segment just sent comes back only once its receiver let go of it:
    a spare waits behind it, so a receiver that lags costs no fresh segment."""
    first = send_and_release(in_use, b"\1" * MiB)
    assert spares.settle(30) and spares.held(str(in_use)) == []  # one payload: no spare
    buf = place(b"\2" * MiB, lease=30, directory=in_use)  # reuses the first: a stream
    assert buf._header.memfd_inode == first
    assert spares.settle(30)
    (spare,) = spares.held(str(in_use))
    held = attach(buf.ref, directory=in_use)  # its receiver lags: the next takes the spare
    third = place(b"\3" * MiB, lease=30, directory=in_use)
    assert third._header.memfd_inode == spare.payload_inode and spares.held(str(in_use)) == []
    held.release()
    view = attach(third.ref, directory=in_use)
    assert bytes(view[:1]) == b"\3"
    view.release()
    inflight.check()
    ring.tick(unmap)
    assert ring.statistics().pooled == 2  # two segments circulate from now on


class Clock:
    """``creation``'s clock and sleep while a payload waits for a segment on its way back:
    each sleep moves the clock by the poll, and runs ``on_sleep`` (a receiver letting go)."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None) -> None:
        self.now, self.sleeps, self.on_sleep = 0.0, 0, on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        self.on_sleep()


def test_a_payload_waits_a_moment_for_the_segment_its_receiver_is_letting_go(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = place(b"\1" * 64 * MiB, lease=30, directory=in_use)
    view = attach(first.ref, directory=in_use)
    inflight.check()
    assert ring.retiring((str(in_use), 64 * MiB))  # its receiver still maps it
    clock = Clock(view.release)  # ... and lets go while the next payload waits
    monkeypatch.setattr(creation, "time", clock)
    second = place(b"\2" * 64 * MiB, lease=30, directory=in_use)
    assert second._header.memfd_inode == first._header.memfd_inode and clock.sleeps == 1
    assert ring.statistics().missed == 0
    attach(second.ref, directory=in_use).release()


def test_a_payload_that_waits_for_its_class_s_only_segment_asks_for_the_spare_first(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that one segment serves only by waiting for its receiver each time: the
    spare that becomes its second segment is asked for before the wait, not after the copy."""
    key = (str(in_use), spares.size_class(64 * MiB))
    first = place(b"\1" * 64 * MiB, lease=30, directory=in_use)
    view = attach(first.ref, directory=in_use)
    inflight.check()
    asked: list[bool] = []

    def letting_go() -> None:
        asked.append(key in spares._pool.queued or key in spares._pool.preparing.values())
        view.release()

    monkeypatch.setattr(creation, "time", Clock(letting_go))
    second = place(b"\2" * 64 * MiB, lease=30, directory=in_use)
    assert second._header.memfd_inode == first._header.memfd_inode and asked == [True]
    attach(second.ref, directory=in_use).release()
    assert spares.settle(30)
    (spare,) = spares.held(str(in_use))  # the stream's second segment, ready
    assert spare.capacity == key[1]


def test_a_payload_waits_only_a_bounded_moment_and_never_for_a_small_one(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(creation, "time", clock)
    for size in (MiB, 64 * MiB):
        first = place(b"\1" * size, lease=30, directory=in_use)
        view = attach(first.ref, directory=in_use)  # held on to: never back in time
        inflight.check()
        clock.sleeps = 0
        second = place(b"\2" * size, lease=30, directory=in_use)
        assert second._header.memfd_inode != first._header.memfd_inode  # a fresh one, after
        bound = min(creation.MAX_WAIT, creation.WAIT_PER_MIB * size / MiB)
        assert clock.sleeps == 0 if size < 2 * MiB else 0 < clock.sleeps <= bound / creation.POLL + 1
        view.release()
        attach(second.ref, directory=in_use).release()


def test_a_segment_a_receiver_still_maps_is_not_reused(in_use: Path) -> None:
    buf = place(b"\1" * MiB, lease=30, directory=in_use)
    held = attach(buf.ref, directory=in_use)
    inflight.check()
    assert ring.statistics().retiring == 1  # its name is gone, its memory is not released
    fresh = send_and_release(in_use, b"\2" * MiB)
    assert fresh != buf._header.memfd_inode
    assert bytes(held[:4]) == b"\1" * 4 and bytes(held[-4:]) == b"\1" * 4  # untouched
    held.release()
    assert ring.tick(unmap) is not None
    assert ring.statistics().retiring == 0 and ring.statistics().pooled == 2


def test_a_late_reference_to_an_earlier_use_is_refused(in_use: Path) -> None:
    buf = place(b"\1" * MiB, lease=30, directory=in_use)
    ref = buf.ref
    stale = in_use / "stale-header"
    shutil.copy2(buf.path, stale)  # what a slow receiver read before the name went
    attach(ref, directory=in_use).release()
    inflight.check()
    assert send_and_release(in_use, b"\2" * MiB) == buf._header.memfd_inode  # reused
    again = place(b"\3" * MiB, lease=30, directory=in_use)  # the memfd now carries this one
    assert again._header.memfd_inode == buf._header.memfd_inode
    os.rename(stale, buf.path)  # the old header, its descriptor number and inode all still match
    with pytest.raises(SegmentGone) as caught:
        attach(ref, directory=in_use)
    assert caught.value.reason == "reused" and "later payload" in str(caught.value)
    buf.path.unlink(missing_ok=True)
    again.discard()


def test_a_check_beside_the_background_one_returns_once_its_segment_is_pooled(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background thread's check took the segment out of the held ones and was
    preempted before it reached the pool: a sender's own check must not return in that
    window (its next place() would make a fresh segment instead of the reuse)."""
    handing, returned = threading.Event(), threading.Event()
    retire = ring.retire

    def preempted(slot: ring.Slot, unmap: Callable[[Any], None]) -> None:
        handing.set()
        returned.wait(0.5)  # (before the fix the sender's check returned meanwhile)
        retire(slot, unmap)

    monkeypatch.setattr(ring, "retire", preempted)  # (the real background thread's check too)
    buf = place(b"\1" * MiB, lease=30, directory=in_use)
    attach(buf.ref, directory=in_use).release()
    background = threading.Thread(target=inflight.check)
    background.start()
    try:
        assert handing.wait(10)
        inflight.check()
        returned.set()
        assert ring.statistics().pooled == 1
        assert send_and_release(in_use, b"\2" * MiB) == buf._header.memfd_inode
    finally:
        returned.set()
        background.join(10)


def test_a_segment_that_retires_as_its_directory_is_dropped_is_not_kept(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last socket using the directory closes (its pooled segments dropped) while a
    segment is between the first in-use check of its retirement and the pool."""
    monkeypatch.setattr(ring, "_pool", SegmentPool(ring.LIMITS))
    monkeypatch.setattr(ring, "_room", {})  # (so the retirement reads the free memory)
    user = object()
    spares.register(user, str(shm_dir))

    def closing_meanwhile(directory: str) -> int:
        spares.unregister(user)  # (whichever thread retires it: the background's or ours)
        return free_bytes(directory)

    monkeypatch.setattr(ring, "free_bytes", closing_meanwhile)
    try:
        buf = place(b"\1" * MiB, lease=30, directory=shm_dir)
        attach(buf.ref, directory=shm_dir).release()
        inflight.check()
        assert spares.settle(30)
        assert ring.statistics().pooled == ring.statistics().retiring == 0
    finally:
        spares.unregister(user)
        ring.drop(str(shm_dir), unmap)


def test_a_reused_buffer_to_fill_starts_zeroed(in_use: Path) -> None:
    first = send_and_release(in_use, b"\7" * MiB)
    with patterns.shared_buffer(MiB, directory=in_use) as buf:
        assert buf._header.memfd_inode == first
        assert bytes(buf.view) == bytes(MiB)
        buf.view[:3] = b"abc"
        ref = buf.ref
    view = attach(ref, directory=in_use)
    assert bytes(view[:3]) == b"abc"
    view.release()
    inflight.check()
    ring.tick(unmap)  # (the background thread may have retired it before the release)
    assert ring.statistics().pooled == 1  # its mapping came back with it


def test_the_pool_is_bounded_in_bytes_and_per_size(in_use: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ring, "_pool", SegmentPool(PoolLimits(max_bytes=2 * MiB, per_key=1, idle=30, patience=30))
    )
    bufs = [place(bytes([i]) * MiB, lease=30, directory=in_use) for i in range(3)]
    views = [attach(buf.ref, directory=in_use) for buf in bufs]
    inflight.check()
    stats = ring.statistics()
    assert (stats.retiring, stats.refused) == (2, 1)  # 2 MiB held: the third is closed at once
    for view in views:
        view.release()
    ring.tick(unmap)
    stats = ring.statistics()
    assert (stats.pooled, stats.pooled_bytes, stats.released, stats.refused) == (1, MiB, 2, 2)  # one per size


def test_an_unused_pooled_segment_is_closed_after_its_idle_time(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_and_release(in_use, b"\1" * MiB)
    now = monotonic_now()
    monkeypatch.setattr(ring, "monotonic_now", lambda: now + ring.IDLE)
    assert ring.tick(unmap) is None
    assert ring.statistics().pooled == 0 and ring.statistics().trimmed == 1


def test_a_one_off_place_without_a_socket_keeps_nothing(shm_dir: Path) -> None:
    before = ring.statistics()
    send_and_release(shm_dir, b"\1" * MiB)
    after = ring.statistics()
    assert (after.pooled, after.retiring, after.released) == (before.pooled, before.retiring, before.released)


def test_the_proof_sees_a_mapping_in_another_process(tmp_path: Path) -> None:
    """The lease probe: refused while a spawned process maps the memfd, granted once it unmapped."""
    fd = os.memfd_create("probe-test", os.MFD_CLOEXEC)
    os.ftruncate(fd, 2 * PAYLOAD_OFFSET)
    assert ring.release_proven(fd) is True
    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import mmap, os, sys\n"
            f"f = os.open('/proc/{os.getpid()}/fd/{fd}', os.O_RDONLY)\n"
            "m = mmap.mmap(f, 4096, prot=mmap.PROT_READ); os.close(f)\n"
            "print('mapped', flush=True); sys.stdin.readline(); m.close()\n"
            "print('unmapped', flush=True); sys.stdin.readline()\n"
        )],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "mapped"
        assert ring.release_proven(fd) is False
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "unmapped"
        assert ring.release_proven(fd) is True  # the process lives on, its mapping does not
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
        os.close(fd)


def test_a_buffer_discarded_unsent_never_joins_the_pool(in_use: Path) -> None:
    buf = SharedBuffer.create(MiB, lease=30, directory=in_use)
    header = read_header(buf.path)
    buf.discard()
    inflight.check()
    assert ring.statistics().released == 0 and mappings(buf.path) == 0
    assert header.memfd >= 0


@pytest.mark.parametrize("borrow", ["slice", "array", "open"])
def test_a_buffer_its_writer_may_still_write_is_never_reused(in_use: Path, borrow: str) -> None:
    """A slice or numpy array of the view that outlived the send, or a buffer never closed,
    could write into a later payload: such a segment is closed, never pooled."""
    np = pytest.importorskip("numpy") if borrow == "array" else None
    buf = patterns.shared_buffer(MiB, directory=in_use)
    kept: object = None
    if borrow == "slice":
        kept = buf.view[:16]
    elif np is not None:
        kept = np.frombuffer(buf.view, dtype=np.uint8)
    ref = buf.ref
    if borrow != "open":
        buf.close()
    attach(ref, directory=in_use).release()
    inflight.check()
    stats = ring.statistics()
    assert (stats.released, stats.pooled, stats.retiring) == (0, 0, 0)
    assert send_and_release(in_use, b"\2" * MiB) != buf._header.memfd_inode
    del kept
    buf.close()


def test_the_pool_keeps_at_most_a_share_of_the_free_memory(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ring, "_room", {})
    monkeypatch.setattr(ring, "free_bytes", lambda directory: 2 * MiB)  # 1 MiB would be a third of 3
    send_and_release(in_use, b"\1" * MiB)
    stats = ring.statistics()
    assert (stats.pooled, stats.refused) == (0, 1)


def test_the_stamp_is_checked_before_the_claim(in_use: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender overwrites the stamp as soon as the name is gone: a receiver that claimed
    the segment (removed the name) must not be refused for it, whatever happens next."""
    import patterns.shm.attach as attaching

    real_map = attaching._map

    def map_after_the_sender_looked(*args: Any) -> list[memoryview]:
        inflight.check()  # the name is gone: the sender retires it (its stamp overwritten)
        return real_map(*args)

    monkeypatch.setattr(attaching, "_map", map_after_the_sender_looked)
    buf = place(b"\5" * MiB, lease=30, directory=in_use)
    view = attach(buf.ref, directory=in_use)
    assert ring.statistics().retiring == 1 and bytes(view[:2]) == b"\5\5"
    view.release()
    assert ring.tick(unmap) is not None and ring.statistics().pooled == 1


@pytest.mark.timeout(90)
async def test_a_stream_to_a_receiver_that_holds_some_views_never_changes_them(
    in_use: Path, monkeypatch: pytest.MonkeyPatch, peers: Peers, address: Callable[[str], str]
) -> None:
    """Back to back to another process, which keeps up to three views while more arrive:
    segments are reused (the pool says so) and no held view ever reads a later payload."""
    monkeypatch.setenv("NNG_CONSENSUS_SHM_DIR", str(in_use))
    addr, count = address("ipc"), 40
    async with patterns.Pair(listen=addr, name="test") as sock:
        proc = peers.start("stream", addr, str(count), script="shm_peer.py")
        with trio.fail_after(30):
            assert await read_line(proc) == "ready"
            await sock.wait_for_peers(1)
            before = sock.statistics().shm_pool.reused
            for tag in range(count):
                await sock.send({"tag": tag, "data": bytes([tag]) * MiB})
                assert (await sock.receive()) == {"ack": tag}
            assert await read_line(proc) == f"stream ok {count}"
            assert sock.statistics().shm_pool.reused - before >= count // 2
        tell(proc, "quit")
