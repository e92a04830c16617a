"""A sender that shrinks a segment under its receiver cannot crash it (issue 13).

A payload lives in a memfd sealed against shrinking (``patterns/shm/memfd.py``); a
receiver maps nothing else. These tests show the seals hold (and, as a control, that a
receiver which skipped the check dies of SIGBUS), that a payload which is
not such a memfd is refused before any byte is mapped, that the sender holds the memfd
exactly as long as a receiver may come, and, with real processes, that a room member
which cuts its answer's memory away after the host attached it changes nothing but
that answer's bytes (ipc and tcp), while one that does not seal gets its answers refused.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio
from _shm import no_leak, patch_header, read_header, segments, shm_dir
from conftest import ROOT, Peers, read_line, tell

import consensus
from patterns.errors import BadReference
from patterns.shm import inflight, memfd
from patterns.shm.ref import ShmRef
from patterns.shm.segment import SharedBuffer, attach, place

__all__ = ["no_leak", "shm_dir"]  # fixtures

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
SIZE = 2 * MiB  # above the default threshold


def payload_path(buf: SharedBuffer) -> str:
    return f"/proc/self/fd/{read_header(buf.path).memfd}"


def refused(ref: ShmRef, folder: Path) -> str:
    with pytest.raises(BadReference) as caught:
        attach(ref, directory=folder)
    return caught.value.reason


def test_a_payload_can_neither_shrink_nor_grow(shm_dir: Path) -> None:
    before = inflight.held()  # what earlier tests of this process still hold (their leases run)
    for buf in (place(b"sealed" * 1000, lease=30, directory=shm_dir), SharedBuffer.create(4096, lease=30)):
        path = payload_path(buf)
        fd = os.open(path, os.O_RDWR)
        try:
            seals = fcntl.fcntl(fd, memfd.F_GET_SEALS)
            assert seals & memfd.SEALS == memfd.SEALS
            for size in (0, os.fstat(fd).st_size - 1, os.fstat(fd).st_size + 1):
                with pytest.raises(PermissionError):
                    os.ftruncate(fd, size)
            assert os.stat(path).st_mode & 0o777 == 0o600
        finally:
            os.close(fd)
        buf.discard()
    assert inflight.held() <= before  # never handed over: the buffers held them, and closed them


def test_an_unsealed_payload_is_refused_and_claims_nothing(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memfd, "seal", lambda fd: None)  # a sender that does not seal
    buf = place(b"cut me" * 1000, lease=30, directory=shm_dir)
    monkeypatch.undo()
    assert refused(buf.ref, shm_dir) == "unsealed"
    assert buf.path.exists() and read_header(buf.path).pending == 1
    buf.discard()


def test_a_payload_that_is_no_memfd_is_refused(shm_dir: Path) -> None:
    buf = place(b"elsewhere" * 1000, lease=30, directory=shm_dir)
    plain = shm_dir / "plain"
    plain.write_bytes(bytes(1 << 16))
    read_end, write_end = os.pipe()
    plain_fd = os.open(plain, os.O_RDWR)
    try:
        for number in (-1, plain_fd, read_end, write_end):  # none, a tmpfs file, a pipe
            patch_header(buf.path, memfd=number)
            assert refused(buf.ref, shm_dir) == "unsealed", number
        assert read_header(buf.path).pending == 1
    finally:
        for fd in (plain_fd, read_end, write_end):
            os.close(fd)
        plain.unlink()
        buf.discard()


def test_the_payload_of_another_segment_is_refused(shm_dir: Path) -> None:
    mine = place(b"mine" * 1000, lease=30, directory=shm_dir)
    theirs = place(b"theirs" * 1000, lease=30, directory=shm_dir)
    patch_header(mine.path, memfd=read_header(theirs.path).memfd)
    assert refused(mine.ref, shm_dir) == "mismatch"  # another inode
    assert bytes(attach(theirs.ref, directory=shm_dir)) == b"theirs" * 1000
    mine.discard()


def test_a_payload_others_may_open_is_refused(shm_dir: Path) -> None:
    buf = place(b"private" * 1000, lease=30, directory=shm_dir)
    os.chmod(payload_path(buf), 0o640)
    assert refused(buf.ref, shm_dir) == "mode"
    os.chmod(payload_path(buf), 0o600)
    assert bytes(attach(buf.ref, directory=shm_dir)) == b"private" * 1000


def test_a_hole_punched_under_a_receiver_reads_as_zeros(shm_dir: Path) -> None:
    buf = place(b"\x09" * SIZE, lease=30, directory=shm_dir)
    fd = os.open(payload_path(buf), os.O_RDWR)
    view = attach(buf.ref, directory=shm_dir)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        assert (
            libc.fallocate(fd, 3, ctypes.c_long(0), ctypes.c_long(SIZE + 4096)) == 0
        )  # KEEP_SIZE|PUNCH_HOLE
        assert bytes(view) == bytes(SIZE)
    finally:
        os.close(fd)
        view.release()


def held(buf: SharedBuffer) -> bool:
    """Does this process hold ``buf``'s payload for its receivers? (others' may be held too)"""
    return str(buf.path) in inflight._held


def test_the_sender_holds_the_payload_until_its_receiver_attached(shm_dir: Path) -> None:
    buf = place(b"held" * 1000, lease=30, directory=shm_dir)
    assert not held(buf)
    ref = buf.ref  # handed over: inflight holds the memfd now
    assert held(buf)
    inflight.check()
    assert held(buf)  # the name is still there: a receiver may come
    assert bytes(attach(ref, directory=shm_dir)) == b"held" * 1000
    inflight.check()
    assert not held(buf)


def test_a_lease_that_passes_frees_name_and_payload(shm_dir: Path) -> None:
    buf = place(b"late" * 1000, lease=30, directory=shm_dir)
    ref = buf.ref
    inflight.check(now=buf.lease_deadline + 1)
    assert not held(buf) and segments(shm_dir) == []
    with pytest.raises(Exception) as caught:
        attach(ref, directory=shm_dir)
    assert getattr(caught.value, "reason", None) == "missing"


def test_a_payload_of_a_process_that_cannot_be_reached_is_refused(shm_dir: Path) -> None:
    """Process 1 (init) belongs to root; it never holds a memfd of ours: refused or gone,
    never mapped."""
    buf = place(b"init" * 1000, lease=30, directory=shm_dir)
    name = f"nngc.1.{buf.name.rsplit('.', 1)[1]}"
    os.rename(buf.path, shm_dir / name)
    patch_header(shm_dir / name, pid=1)
    with pytest.raises(Exception) as caught:
        attach(ShmRef(name, buf.ref.token, 0, 4), directory=shm_dir)
    assert getattr(caught.value, "reason", None) in {"owner", "unsealed", "sender-gone", "mismatch"}
    (shm_dir / name).unlink()


# ---------------------------------------------------------------- real processes

_RECEIVER = """
import sys
sys.path.insert(0, sys.argv[1])
import cbor2
from patterns.shm import memfd
from patterns.shm.ref import ShmRef
from patterns.shm.segment import attach
memfd._check = lambda fd, name, inode, size: None  # a receiver that would map any payload
ref = ShmRef.from_wire(cbor2.loads(bytes.fromhex(sys.stdin.readline())))
view = attach(ref, directory=sys.argv[2])
print("attached", flush=True)
sys.stdin.readline()
print("read", sum(view), flush=True)  # every page
"""


@pytest.mark.parametrize("sealed", [True, False])
def test_the_seals_are_what_keeps_a_receiver_alive(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch, sealed: bool
) -> None:
    """The control experiment: a receiver process that skips the payload checks maps an
    unsealed payload, its sender truncates it, and the receiver dies of SIGBUS as
    issue 13 found; with the seals the truncation fails (EPERM) and it reads on."""
    if not sealed:
        monkeypatch.setattr(memfd, "seal", lambda fd: None)
    buf = place(b"\x01" * SIZE, lease=30, directory=shm_dir)
    monkeypatch.undo()
    payload = os.dup(read_header(buf.path).memfd)  # ours: the sender closes its own once attached
    receiver = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, str(ROOT), str(shm_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert receiver.stdin is not None and receiver.stdout is not None
        receiver.stdin.write(cbor2.dumps(buf.ref.to_wire()).hex() + "\n")
        receiver.stdin.flush()
        assert receiver.stdout.readline() == "attached\n"
        if sealed:
            with pytest.raises(PermissionError):
                os.ftruncate(payload, 0)
        else:
            os.ftruncate(payload, 0)
        receiver.stdin.write("go\n")
        receiver.stdin.flush()
        out = receiver.stdout.readline()
        code = receiver.wait(timeout=30)
    finally:
        receiver.kill()
        receiver.wait()
        os.close(payload)
    if sealed:
        assert (out, code) == (f"read {SIZE}\n", 0)
    else:
        assert (out, code) == ("", -signal.SIGBUS)


@pytest.fixture
def folder(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("NNG_CONSENSUS_SHM_DIR", str(shm_dir))  # this process and its children
    yield shm_dir


async def start_mallory(peers: Peers, address: str, mode: str) -> subprocess.Popen[str]:
    proc = peers.start(address, "mallory", mode, str(SIZE), script="shm_truncator.py")
    with trio.fail_after(20):
        assert await read_line(proc) == "ready"
    return proc


async def stop(proc: subprocess.Popen[str]) -> None:
    tell(proc, "quit")
    assert await trio.to_thread.run_sync(proc.wait, 20) == 0


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_a_member_that_shrinks_its_answer_under_the_host_cannot_crash_it(
    transport: str, room_address: Callable[[str], str], peers: Peers, folder: Path
) -> None:
    addr = room_address(transport)
    async with consensus.host(addr) as room, consensus.join(addr, name="ann", on_poll=lambda q: "fine"):
        proc = await start_mallory(peers, addr, "sealed")
        await room.wait_for_members(2)
        for _ in range(5):  # over tcp the first answers may go inline, before the beacons
            result = await room.poll("give", timeout=10)
            answer: Any = result.answers["mallory"]["data"]
            if isinstance(answer, memoryview):
                break
        assert isinstance(answer, memoryview), "the answer never went through shared memory"
        with trio.fail_after(10):  # mallory tried once the host had attached the answer
            assert await read_line(proc) == "shrink EPERM EPERM punch 0"
        assert bytes(answer) == bytes(SIZE)  # the punched hole reads as zeros: no SIGBUS
        assert room.statistics().malformed == 0
        again = await room.poll("still there?", timeout=10)  # the host keeps serving
        assert again.answers["ann"] == "fine" and len(bytes(again.answers["mallory"]["data"])) == SIZE
        if isinstance(again.answers["mallory"]["data"], memoryview):
            with trio.fail_after(10):  # cut away again (zeros or nines, as the race goes)
                assert await read_line(proc) == "shrink EPERM EPERM punch 0"
        del result, answer, again
        await stop(proc)
    assert segments(folder) == []


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_answers_in_unsealed_memory_are_refused_and_counted(
    transport: str, room_address: Callable[[str], str], peers: Peers, folder: Path
) -> None:
    addr = room_address(transport)
    async with consensus.host(addr) as room, consensus.join(addr, name="ann", on_poll=lambda q: "fine"):
        proc = await start_mallory(peers, addr, "unsealed")
        await room.wait_for_members(2)
        for _ in range(5):  # over tcp the first answers may go inline, before the beacons
            result = await room.poll("give", timeout=3)
            if "mallory" not in result.answers:
                break
        assert dict(result.answers) == {"ann": "fine"}  # mallory's frame was refused
        assert room.statistics().malformed >= 1
        with trio.fail_after(10):  # and then truncated: nothing of it was mapped
            assert await read_line(proc) == "shrink done done punch 0"
        again = await room.poll("still there?", timeout=3)
        assert again.answers["ann"] == "fine" and "mallory" not in again.answers
        await stop(proc)
    assert segments(folder) == []
