"""Warm spare segments (``patterns.shm.spare``): prepared for a size used again, taken by
the next segment of that size class, bounded, removed when unused, on close, at exit,
and by the sweep when their process is killed; never visible to receivers as payloads.

Nothing here waits for time: ``settle()`` waits for the background thread's work, and
idle limits are passed by moving the module's clock.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from _shm import in_use, mappings, no_leak, read_header, segments, shm_dir
from conftest import Peers, read_line, tell

import patterns
from patterns.errors import BadReference, SharedMemoryFull
from patterns.shm import creation, ring
from patterns.shm import spare as spares
from patterns.shm.header import FLAG_PROBE, PAYLOAD_OFFSET, monotonic_now
from patterns.shm.ref import ShmRef
from patterns.shm.segment import SharedBuffer, attach, place
from patterns.shm.sweep import SweepReport, sweep

__all__ = ["in_use", "no_leak", "shm_dir"]  # fixtures used by name

MiB = 1024 * 1024


def make_spare(folder: Path, size: int) -> spares.Spare:
    """Place two segments of ``size`` bytes (removed at once): the second prepares a spare."""
    for _ in range(2):
        place(b"\1" * size, lease=30, directory=folder).discard()
    assert spares.settle(30)
    (spare,) = spares.held(str(folder))
    return spare


def test_size_classes_round_up_by_at_most_an_eighth() -> None:
    assert spares.size_class(1) == spares.size_class(4096) == 4096
    assert spares.size_class(64 * MiB) == 64 * MiB and spares.size_class(512 * MiB) == 512 * MiB
    assert spares.size_class(64 * MiB + 1) == 72 * MiB
    previous = 0
    for size in [4097, 5000, 65_537, MiB - 1, MiB, MiB + 1, 3 * MiB + 5, 100 * MiB + 3, 2**40 + 1]:
        capacity = spares.size_class(size)
        assert size <= capacity <= size + size // 8 + 4096 and capacity % 4096 == 0 and capacity >= previous
        previous = capacity


def test_a_size_used_again_gets_a_spare_and_the_next_segment_is_that_spare(in_use: Path) -> None:
    spare = make_spare(in_use, 2 * MiB)
    header = read_header(spare.path)
    assert header.flags == FLAG_PROBE and header.pending == header.receivers == 1
    assert header.owner.pid == os.getpid() and header.payload_length == spare.capacity == 2 * MiB
    assert header.lease_deadline > monotonic_now()  # the sweep keeps it
    assert sweep(directory=in_use) == SweepReport(examined=1, kept=1)
    with pytest.raises(BadReference) as caught:  # a probe: never a payload, whoever guesses it
        attach(ShmRef(spare.path.name, header.token, 0, 1), directory=in_use)
    assert caught.value.reason == "mismatch"

    data = bytes(range(256)) * (2 * MiB // 256)
    started = monotonic_now()
    buf = place(data, lease=7, receivers=1, directory=in_use)
    assert buf.path == spare.path and spares.held(str(in_use)) == []  # taken
    taken = read_header(buf.path)
    assert taken.flags == 0 and taken.payload_length == len(data) and taken.token != header.token
    assert started + 7 <= taken.lease_deadline <= monotonic_now() + 7  # the lease starts when sent
    view = attach(buf.ref, directory=in_use)
    assert view == data and not buf.path.exists()
    del view
    assert spares.settle(30) and len(spares.held(str(in_use))) == 1  # and the next one is ready


def test_shared_buffer_takes_a_spare_zeroed_and_cut_to_its_length(in_use: Path) -> None:
    size = MiB + 12_345  # class: MiB + 128 KiB
    spare = make_spare(in_use, size)
    assert spare.capacity == spares.size_class(size) > size
    buf = patterns.shared_buffer(size, directory=in_use)
    assert buf.path == spare.path and len(buf.view) == size and not buf.view.readonly
    assert bytes(buf.view) == bytes(size)  # fresh: never sent, never written
    assert os.stat(buf.path).st_size == PAYLOAD_OFFSET + size
    buf.view[-3:] = b"end"
    buf.close(unmap_later=True)
    assert spares.settle(30) and mappings(buf.path) == 0  # unmapped off the caller's thread
    view = attach(buf.ref, directory=in_use)
    assert bytes(view[-3:]) == b"end" and len(view) == size


def test_no_spare_for_a_one_off_size_or_a_directory_no_socket_uses(shm_dir: Path) -> None:
    for _ in range(3):  # used again and again, but no socket keeps the directory in use
        place(b"x" * MiB, lease=30, directory=shm_dir).discard()
    assert spares.settle(30) and spares.held() == [] and segments(shm_dir) == []
    user = object()
    spares.register(user, str(shm_dir))
    try:
        place(b"x" * MiB, lease=30, directory=shm_dir).discard()  # again, now in use
        place(b"x" * (3 * MiB), lease=30, directory=shm_dir).discard()  # another class, once
        assert spares.settle(30)
        assert [s.capacity for s in spares.held(str(shm_dir))] == [MiB]  # seen twice within IDLE
    finally:
        spares.unregister(user)
    assert segments(shm_dir) == []


@pytest.mark.parametrize("limit", ["budget", "free space"])
def test_spares_are_bounded(in_use: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    if limit == "budget":
        monkeypatch.setattr(spares, "BUDGET", 3 * MiB - 1)
    else:  # 8 MiB free: a spare may take 2 MiB of it
        monkeypatch.setattr(spares, "free_bytes", lambda directory: 8 * MiB)
    make_spare(in_use, MiB)
    for _ in range(2):
        place(b"\2" * (2 * MiB), lease=30, directory=in_use).discard()
    assert spares.settle(30)
    assert [spare.capacity for spare in spares.held(str(in_use))] == [MiB]  # not 1 + 2 MiB more
    assert segments(in_use) == [spares.held(str(in_use))[0].path.name]


def test_an_idle_spare_is_dropped_and_never_taken_late(in_use: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spare = make_spare(in_use, MiB)
    later = spare.usable_until + 0.001
    monkeypatch.setattr(spares, "monotonic_now", lambda: later)
    assert spares.take(str(in_use), MiB) is None and not spare.path.exists()  # too late to use
    spare = make_spare(in_use, MiB)  # prepared "later": usable for IDLE seconds from then
    assert spare.usable_until == later + spares.IDLE
    assert read_header(spare.path).lease_deadline == spare.usable_until + spares.MARGIN
    monkeypatch.setattr(spares, "monotonic_now", lambda: later + spares.IDLE)
    spares._pool.tick()  # what the background thread does when it wakes (its pause also
    # counts the process's other segments in flight or pooled: not this test's to pin)
    assert spares.settle(30) and not spare.path.exists() and spares.held() == []


def test_a_full_directory_gives_the_spares_back_and_tries_again(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spare = make_spare(in_use, MiB)
    fresh = creation.fresh
    calls = []

    def full_while_spares_are_held(*args: object) -> SharedBuffer:
        calls.append(len(spares.held()))
        if spares.held():
            raise SharedMemoryFull("full", name=None, size=0, directory=str(in_use))
        return fresh(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(creation, "fresh", full_while_spares_are_held)
    buf = place(b"\3" * (5 * MiB), lease=30, directory=in_use)  # another size class
    assert calls == [1, 0] and not spare.path.exists() and mappings(spare.path) == 0
    buf.discard()

    def always_full(*args: object) -> SharedBuffer:
        raise SharedMemoryFull("full", name=None, size=0, directory=str(in_use))

    monkeypatch.setattr(creation, "fresh", always_full)
    with pytest.raises(SharedMemoryFull):  # no spare to give back: the error stands
        place(b"\3" * (5 * MiB), lease=30, directory=in_use)


MiB4 = 4 * MiB
PAYLOAD = bytes(range(256)) * (MiB4 // 256)


@pytest.fixture
def folder(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("NNG_CONSENSUS_SHM_DIR", str(shm_dir))
    yield shm_dir


async def test_sockets_keep_spares_while_open_and_take_them_away_on_close(
    address: Callable[[str], str], folder: Path
) -> None:
    addr = address("inproc")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr) as b:
        await b.wait_for_peers(1)
        names = []
        for turn in range(4):
            await a.send({"data": PAYLOAD, "turn": turn})
            got = await b.receive()
            assert got["data"] == PAYLOAD and got["turn"] == turn
            del got
            assert spares.settle(30)
            names.append([spare.path.name for spare in spares.held(str(folder))])
        assert names[0] == [] and all(len(held) == 1 for held in names[1:])  # from the second send on
        probes = [name for name in segments(folder) if read_header(folder / name).flags == FLAG_PROBE]
        assert set(names[-1]) <= set(probes) == set(segments(folder))  # payloads went with the receiver
    assert segments(folder) == [] and spares.held() == []  # closing the sockets took the spare


async def test_a_full_directory_still_falls_back_inline_with_spares_held(
    address: Callable[[str], str], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = address("inproc")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr) as b:
        await b.wait_for_peers(1)
        for _ in range(3):
            await a.send({"data": PAYLOAD})
            got = await b.receive()
            assert isinstance(got["data"], memoryview)
            del got
        assert spares.settle(30) and len(spares.held(str(folder))) == 1

        def full(*args: object) -> SharedBuffer:
            raise SharedMemoryFull("full", name=None, size=0, directory=str(folder))

        monkeypatch.setattr(spares, "take", lambda directory, size: None)  # a payload of another class
        monkeypatch.setattr(ring, "take", lambda *args, **kwargs: None)  # (no released one to reuse)
        monkeypatch.setattr(creation, "fresh", full)
        await a.send({"data": PAYLOAD})
        got = await b.receive()
        assert isinstance(got["data"], bytes) and got["data"] == PAYLOAD  # inline
        assert spares.held() == [] and a.statistics().bytes_sent > MiB4  # the spare was given back
    assert segments(folder) == []


async def test_a_killed_process_leaves_its_spare_to_the_sweep(shm_dir: Path, peers: Peers) -> None:
    child = peers.start("spare", str(shm_dir), str(MiB), script="shm_peer.py")
    words = (await read_line(child)).split()
    assert words[0] == "spare" and len(words) == 2 and words[1].startswith(f"nngc.{child.pid}.")
    assert segments(shm_dir) == [words[1]]
    child.send_signal(signal.SIGKILL)
    await trio.to_thread.run_sync(child.wait)
    assert segments(shm_dir) == [words[1]]  # nobody ran its exit hook
    assert sweep(directory=shm_dir) == SweepReport(examined=1, owner_dead=1)
    assert segments(shm_dir) == []


async def test_interpreter_exit_removes_the_spares(shm_dir: Path, peers: Peers) -> None:
    child = peers.start("spare", str(shm_dir), str(MiB), script="shm_peer.py")
    words = (await read_line(child)).split()
    assert words[0] == "spare" and segments(shm_dir) == words[1:]
    tell(child, "quit")  # it exits with the directory still "in use"
    assert await trio.to_thread.run_sync(child.wait) == 0
    assert segments(shm_dir) == []


@pytest.mark.parametrize("error", [errno.EINVAL, errno.ENOMEM])
def test_no_spare_when_it_cannot_be_pre_faulted(
    in_use: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    monkeypatch.setattr(spares._pool, "unsupported", False)  # restored afterwards
    monkeypatch.setattr(spares, "populate", lambda mapping, going: error)  # EINVAL: before Linux 5.14
    for _ in range(3):
        place(b"\4" * MiB, lease=30, directory=in_use).discard()
    assert spares.settle(30) and spares.held() == []
    assert spares._pool.unsupported is (error == errno.EINVAL)  # ENOMEM: maybe next time
    assert segments(in_use) == []  # the ones it tried went at once


def test_free_space_counts_the_memory_left_too(in_use: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from patterns.shm import header as _shm_header

    assert 0 < _shm_header.free_bytes(str(in_use)) <= _shm_header._memory_headroom()
    monkeypatch.setattr(_shm_header, "_memory_headroom", lambda: 4 * MiB)  # a tight cgroup limit, say
    assert spares.free_bytes(str(in_use)) == 4 * MiB
    for _ in range(3):
        place(b"\5" * MiB, lease=30, directory=in_use).discard()
    assert spares.settle(30) and spares.held() == []  # 1 MiB is more than a quarter of 4 MiB


def test_a_payload_that_comes_before_its_spare_is_ready_stops_the_preparation(
    in_use: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from patterns.shm import worker as _shm_worker

    started, release = threading.Event(), threading.Event()
    real = _shm_worker.populate

    def slow(mapping: object, going: Callable[[], bool]) -> int:
        started.set()
        assert release.wait(10)
        return real(mapping, going)  # type: ignore[arg-type]

    monkeypatch.setattr(spares, "populate", slow)
    for _ in range(2):
        place(b"\6" * MiB, lease=30, directory=in_use).discard()
    assert started.wait(10)
    (first,) = spares._pool.preparing
    buf = place(b"\7" * MiB, lease=30, directory=in_use)  # no spare yet: the cold way
    assert buf.path != first and first not in spares._pool.preparing  # the preparation was given up
    assert not first.exists()  # its name at once (the worker closes its memfd, off the sending path)
    release.set()
    assert spares.settle(30)
    (spare,) = spares.held(str(in_use))  # ... and the next one made in its place
    assert spare.path not in (first, buf.path)
    buf.discard()


def test_a_preparation_given_up_leaves_no_name_once_the_last_socket_closed(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leak behind a flaky ``test_tasks_and_results_go_through_shared_memory``: a spare
    still being prepared (its worker starved under load) was given up by the next payload,
    so the close of the directory's last socket did not see it, and its name outlived every
    socket until the worker came back to it. Its name must go with the books entry."""
    import threading

    from patterns.shm import worker as _shm_worker

    started, release = threading.Event(), threading.Event()
    real = _shm_worker.populate

    def starved(mapping: object, going: Callable[[], bool]) -> int:
        started.set()
        assert release.wait(10)  # the worker gets no CPU until the socket closed
        return real(mapping, going)  # type: ignore[arg-type]

    monkeypatch.setattr(spares, "populate", starved)
    user = object()  # a socket's beacons: the directory is in use
    spares.register(user, str(shm_dir))
    try:
        for _ in range(2):
            place(b"\6" * MiB, lease=30, directory=shm_dir).discard()
        assert started.wait(10)
        (first,) = spares._pool.preparing
        place(b"\7" * MiB, lease=30, directory=shm_dir).discard()  # before its spare: given up
        spares.unregister(user)  # the last socket closes
        assert segments(shm_dir) == [], "a spare's name outlived the sockets"
    finally:
        spares.unregister(user)
        release.set()
        assert spares.settle(30)
    assert segments(shm_dir) == [] and spares.held() == [] and not first.exists()
