"""Shared-memory segments in one process: write, attach, release, and the space limit.

Each test makes its segments in its own directory on /dev/shm's tmpfs (``shm_dir``)
and must leave it empty. Forged references are in ``test_shm_forged.py``; the sweep
and real processes in ``test_shm_sweep.py``.
"""

from __future__ import annotations

import array
import ctypes
import errno
import os
import subprocess
from pathlib import Path

import pytest
from _shm import (
    agent_command,
    mappings,
    no_leak,
    patch_header,
    read_header,
    segments,
    shm_dir,
    unshare_works,
)

import patterns.shm.attach
from patterns import Closed
from patterns.errors import SegmentGone, SharedMemoryError, SharedMemoryFull
from patterns.shm.header import DIRECTORY_ENV, PAYLOAD_OFFSET, monotonic_now, process_identity
from patterns.shm.segment import BufferState, SharedBuffer, attach, attach_all, place

__all__ = ["no_leak", "shm_dir"]  # fixtures used by name

MiB = 1024 * 1024


def test_write_then_attach(shm_dir: Path) -> None:
    with SharedBuffer.create(10, lease=30, directory=shm_dir) as buf:
        assert bytes(buf.view) == bytes(10)  # starts zeroed
        buf.view[:] = b"0123456789"
        ref = buf.ref
    assert (ref.offset, ref.length, ref.name) == (0, 10, buf.name)
    view = attach(ref, directory=shm_dir)
    assert view.readonly and view.format == "B" and bytes(view) == b"0123456789"
    with pytest.raises(TypeError):
        view[0] = 1
    assert segments(shm_dir) == []  # its only receiver attached


@pytest.mark.parametrize("how", ["place", "writable"])
def test_64_mib_round_trip(shm_dir: Path, how: str) -> None:
    data = os.urandom(4096) * (16 * 1024)
    if how == "place":
        buf = place(data, lease=30, directory=shm_dir)
        assert buf.state is BufferState.CLOSED
    else:
        with SharedBuffer.create(len(data), lease=30, directory=shm_dir) as buf:
            buf.view[:] = data
    view = attach(buf.ref, directory=shm_dir)
    assert len(view) == len(data) and view.tobytes() == data


def test_place_takes_any_buffer(shm_dir: Path) -> None:
    grid = ((ctypes.c_int32 * 3) * 2)(*[(ctypes.c_int32 * 3)(1, 2, 3), (ctypes.c_int32 * 3)(4, 5, 6)])
    doubles = array.array("d", [0.5, -1.0, 3.25])
    strided = memoryview(b"abcdefgh")[::2]  # not contiguous: made contiguous first
    for obj, expected in [
        (grid, bytes(memoryview(grid))),
        (doubles, doubles.tobytes()),
        (strided, b"aceg"),
        (bytearray(b"xyz"), b"xyz"),
        (b"", b""),
    ]:
        buf = place(obj, lease=30, directory=shm_dir)
        assert bytes(attach(buf.ref, directory=shm_dir)) == expected
    grown = bytearray(b"abc")
    place(grown, lease=30, directory=shm_dir).discard()
    grown += b"d"  # place() released its hold on the source


def test_numpy_writes_in_place(shm_dir: Path) -> None:
    np = pytest.importorskip("numpy")
    with SharedBuffer.create(8 * 1000, lease=30, directory=shm_dir) as buf:
        array_ = np.frombuffer(buf.view, dtype=np.float64)
        array_[:] = np.arange(1000)
        del array_
    received = np.frombuffer(attach(buf.ref, directory=shm_dir), dtype=np.float64)
    assert received.flags.writeable is False and received.sum() == 999 * 1000 / 2


def test_payload_is_page_aligned_and_header_says_who(shm_dir: Path) -> None:
    before = monotonic_now()
    buf = SharedBuffer.create(100, lease=30, receivers=3, directory=shm_dir)
    header = read_header(buf.path)
    assert header.owner == process_identity() and header.owner.pid == os.getpid()
    assert header.owner.start_time > 0 and header.owner.pid_ns > 0
    assert (header.receivers, header.pending, header.payload_length) == (3, 3, 100)
    assert before + 30 <= header.lease_deadline <= monotonic_now() + 30
    assert header.token == buf.ref.token and header.token.hex() not in buf.name
    assert PAYLOAD_OFFSET % 4096 == 0 and buf.path.stat().st_size == PAYLOAD_OFFSET + 100
    assert buf.name.startswith(f"nngc.{os.getpid()}.") and buf.path.stat().st_mode & 0o777 == 0o600
    buf.discard()


def test_the_view_outlives_the_name_and_its_release_unmaps(shm_dir: Path) -> None:
    buf = place(b"still here", lease=30, directory=shm_dir)
    assert mappings(buf.path) == 0  # place() writes without mapping
    view = attach(buf.ref, directory=shm_dir)
    assert not buf.path.exists()  # unlinked: its only receiver attached
    assert mappings(buf.path) == 1
    assert bytes(view) == b"still here"
    part = view[6:]
    view.release()  # a slice borrows the same mapping: it stays
    assert bytes(part) == b"here" and mappings(buf.path) == 1
    part.release()
    assert mappings(buf.path) == 0
    with pytest.raises(ValueError):
        bytes(part)  # a released view refuses, never faults


def test_a_dropped_view_unmaps_too(shm_dir: Path) -> None:
    buf = place(b"abc", lease=30, directory=shm_dir)
    view = attach(buf.ref, directory=shm_dir)
    assert mappings(buf.path) == 1
    del view
    assert mappings(buf.path) == 0


def _unsent(kind: str, folder: Path) -> tuple[str, int]:
    """A buffer made and dropped unsent, by ``kind``: its name and payload descriptor."""
    if kind == "created":
        buf = SharedBuffer.create(MiB, lease=30, directory=folder)
        buf.close()  # its view goes, its payload stays held
    else:
        buf = place(b"never sent", lease=30, directory=folder)
    name, fd = buf.name, buf._payload[0]
    assert os.readlink(f"/proc/self/fd/{fd}").startswith(f"/memfd:{name}")
    return name, fd


@pytest.mark.parametrize("kind", ["created", "placed"])
def test_a_buffer_collected_unsent_closes_its_payload(shm_dir: Path, kind: str) -> None:
    import gc

    name, fd = _unsent(kind, shm_dir)
    gc.collect()
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        target = ""
    assert not target.startswith(f"/memfd:{name}")  # closed (the number may serve another file now)
    (shm_dir / name).unlink()  # (its name would go at exit: ``owned``)


def test_pending_counts_down_to_the_unlink(shm_dir: Path) -> None:
    buf = place(b"for three", lease=30, receivers=3, directory=shm_dir)
    first = attach(buf.ref, directory=shm_dir)
    assert read_header(buf.path).pending == 2
    second = attach(buf.ref, directory=shm_dir)
    assert read_header(buf.path).pending == 1
    third = attach(buf.ref, directory=shm_dir)
    assert not buf.path.exists()
    with pytest.raises(SegmentGone) as caught:
        attach(buf.ref, directory=shm_dir)
    assert caught.value.reason == "missing" and caught.value.name == buf.name
    assert bytes(first) == bytes(second) == bytes(third) == b"for three"


def test_pending_zero_with_the_name_still_there_is_released(shm_dir: Path) -> None:
    buf = place(b"x", lease=30, receivers=2, directory=shm_dir)
    patch_header(buf.path, pending=0)  # as if the last receiver died before unlinking
    with pytest.raises(SegmentGone) as caught:
        attach(buf.ref, directory=shm_dir)
    assert caught.value.reason == "released"
    buf.discard()


def test_attach_after_the_lease_refuses_and_removes(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = place(b"late", lease=5, directory=shm_dir)
    monkeypatch.setattr(patterns.shm.attach, "monotonic_now", lambda: buf.lease_deadline + 0.001)
    with pytest.raises(SegmentGone, match=r"lease ended .* 1 of 1 receivers") as caught:
        attach(buf.ref, directory=shm_dir)
    assert caught.value.reason == "expired" and not buf.path.exists()


def test_several_ranges_of_one_segment_count_as_one_receiver(shm_dir: Path) -> None:
    one = place(b"0123456789", lease=30, receivers=1, directory=shm_dir)
    two = place(b"abc", lease=30, receivers=1, directory=shm_dir)
    refs = [one.ref_range(5, 5), two.ref, one.ref_range(0, 2), one.ref_range(10, 0)]
    views = attach_all(refs, directory=shm_dir)
    assert [bytes(v) for v in views] == [b"56789", b"abc", b"01", b""]
    assert segments(shm_dir) == []
    assert attach_all([], directory=shm_dir) == []
    with pytest.raises(ValueError, match="ends past"):
        one.ref_range(5, 6)
    with pytest.raises(ValueError):
        one.ref_range(-1, 1)


def test_close_drops_the_writers_mapping(shm_dir: Path) -> None:
    buf = SharedBuffer.create(4, lease=30, directory=shm_dir)
    view = buf.view
    assert mappings(buf.path) == 1
    buf.close()
    buf.close()  # idempotent
    assert buf.state is BufferState.CLOSED and mappings(buf.path) == 0
    with pytest.raises(Closed, match="closed"):
        _ = buf.view
    with pytest.raises(ValueError):
        view[0] = 1  # the released view refuses
    assert buf.path.exists()  # the name waits for the receiver
    buf.discard()
    assert (buf.state, buf.path.exists()) == (BufferState.DISCARDED, False)
    buf.discard()


def test_close_while_borrowed_unmaps_with_the_borrower(shm_dir: Path) -> None:
    buf = SharedBuffer.create(4, lease=30, directory=shm_dir)
    borrower = (ctypes.c_char * 4).from_buffer(buf.view)  # as numpy.frombuffer would
    buf.close()  # no error: the mapping now belongs to the borrower
    borrower.value = b"late"
    assert mappings(buf.path) == 1
    assert bytes(attach(buf.ref, directory=shm_dir)) == b"late"
    del borrower
    assert mappings(buf.path) == 0


def test_discard_keeps_attached_views(shm_dir: Path) -> None:
    buf = SharedBuffer.create(5, lease=30, receivers=2, directory=shm_dir)
    buf.view[:] = b"hello"
    view = attach(buf.ref, directory=shm_dir)
    buf.discard()
    assert bytes(view) == b"hello"
    with pytest.raises(SegmentGone):
        attach(buf.ref, directory=shm_dir)


def test_directory_from_the_environment(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DIRECTORY_ENV, str(shm_dir))
    buf = place(b"env", lease=30)
    assert buf.path.parent == shm_dir
    assert bytes(attach(buf.ref)) == b"env"


def test_default_directory_is_dev_shm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIRECTORY_ENV, raising=False)
    buf = place(b"default", lease=30)
    assert buf.path.parent == Path("/dev/shm") and buf.path.exists()
    assert bytes(attach(buf.ref)) == b"default"
    assert not buf.path.exists()


@pytest.mark.parametrize(
    ("size", "lease", "receivers"),
    [(-1, 1, 1), (True, 1, 1), (1.0, 1, 1), (2**49, 1, 1), (1, 0, 1), (1, -1, 1), (1, float("inf"), 1),
     (1, float("nan"), 1), (1, True, 1), (1, "1", 1), (1, 1, 0), (1, 1, 2**32), (1, 1, True)],
)  # fmt: skip
def test_bad_arguments(shm_dir: Path, size: object, lease: object, receivers: object) -> None:
    with pytest.raises(ValueError, match=repr(size) if size in (-1, 2**49) else None):
        SharedBuffer.create(size, lease=lease, receivers=receivers, directory=shm_dir)  # type: ignore[arg-type]


def test_a_missing_directory_is_an_error_not_full(tmp_path: Path) -> None:
    with pytest.raises(SharedMemoryError) as caught:
        SharedBuffer.create(1, lease=1, directory=tmp_path / "nowhere")
    assert caught.value.reason == "create" and not isinstance(caught.value, SharedMemoryFull)
    assert "nowhere" in str(caught.value)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
@pytest.mark.parametrize("how", ["create", "place"])
def test_no_room_raises_full_and_leaves_nothing(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch, code: int, how: str
) -> None:
    real_pwrite = os.pwrite

    def no_room(*args: object) -> None:
        raise OSError(code, os.strerror(code))

    def pwrite_without_room(fd: int, data: bytes, offset: int) -> int:
        if offset >= PAYLOAD_OFFSET:
            no_room()
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    monkeypatch.setattr(os, "pwrite", pwrite_without_room)
    with pytest.raises(SharedMemoryFull) as caught:
        if how == "create":
            SharedBuffer.create(4 * MiB, lease=1, directory=shm_dir)
        else:
            place(bytes(4 * MiB), lease=1, directory=shm_dir)
    assert (caught.value.size, caught.value.directory, caught.value.reason) == (
        4 * MiB,
        str(shm_dir),
        "space",
    )
    assert str(4 * MiB) in str(caught.value) and str(shm_dir) in str(caught.value)
    assert list(shm_dir.iterdir()) == []


def test_more_than_the_free_space_is_refused_before_creating(shm_dir: Path) -> None:
    free = os.statvfs(shm_dir).f_bavail * os.statvfs(shm_dir).f_frsize
    with pytest.raises(SharedMemoryFull, match=f"{free + 1} bytes") as caught:
        SharedBuffer.create(free + 1, lease=1, directory=shm_dir)
    assert caught.value.size == free + 1 and list(shm_dir.iterdir()) == []


def test_a_small_dev_shm_raises_full_and_never_sigbus() -> None:
    """A child with its own 1 MiB /dev/shm asks for 4 MiB (the 64 MB container case, scaled):
    refused up front, never SIGBUS."""
    if not unshare_works():
        pytest.skip("`unshare -rm` is unavailable here: cannot give a child its own small /dev/shm")
    script = 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" "$@"'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, *agent_command("full", str(4 * MiB))],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != DIRECTORY_ENV},
    )
    assert done.returncode == 0, done.stderr
    # The payload lives in a memfd, not on /dev/shm's tmpfs: the directory's free space
    # bounds segments through the pre-check alone; without it a segment is made in memory.
    assert done.stdout.splitlines() == [
        *(f"full {how} precheck {4 * MiB} /dev/shm 0" for how in ("create", "place")),
        *(f"created {how} no-precheck" for how in ("create", "place")),
        "left 0",
    ]
