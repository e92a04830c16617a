"""Segment names made ahead (``patterns.shm.names``): a payload that reuses a released
segment takes the name (and token) the background thread made for it, which until then
is a probe nobody can attach; the names go with the directory's last socket, after
their idle time, and when the payload fails; the sweep leaves a live owner's alone.

``spares.settle`` is the only wait: nothing sleeps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _shm import in_use, no_leak, read_header, segments, shm_dir

from patterns.errors import BadReference, SharedMemoryError
from patterns.shm import inflight, memcopy, names, ring
from patterns.shm import spare as spares
from patterns.shm.header import FLAG_PROBE, monotonic_now
from patterns.shm.ref import ShmRef
from patterns.shm.segment import attach, place
from patterns.shm.sweep import sweep
from patterns.shm.worker import unmap

__all__ = ["in_use", "no_leak", "shm_dir"]  # fixtures used by name

MiB = 1024 * 1024


def send_and_release(folder: Path, data: bytes) -> str:
    """Place ``data``, attach it as its receiver would, check it, release it; its name."""
    buf = place(data, lease=30, directory=folder)
    view = attach(buf.ref, directory=folder)
    assert bytes(view[:16]) == data[:16] and view.nbytes == len(data)
    view.release()
    inflight.check()  # the name is gone: it retires, and its release is proven at once
    ring.tick(unmap)
    return buf.name


def test_a_reused_segment_takes_the_name_made_ahead(in_use: Path) -> None:
    send_and_release(in_use, b"\1" * MiB)  # a fresh segment: no name made ahead
    assert spares.settle(30) and names.held(str(in_use)) == []
    send_and_release(in_use, b"\2" * MiB)  # the first reuse asks for the next one's name
    assert spares.settle(30)
    (ahead,) = names.held(str(in_use))
    assert read_header(Path(ahead.path)).flags == FLAG_PROBE  # waiting, it is a probe ...
    with pytest.raises(BadReference) as refused:  # ... which nobody can attach, its token or not
        attach(ShmRef(ahead.name, ahead.token, 0, 1), directory=in_use)
    assert refused.value.reason == "mismatch"
    buf = place(b"\3" * MiB, lease=30, directory=in_use)  # reuses the segment, under that name
    assert (buf.name, buf.ref.token) == (ahead.name, ahead.token)
    assert read_header(buf.path).flags == 0 and buf.path.stat().st_size == buf._header.total_size
    view = attach(buf.ref, directory=in_use)
    assert bytes(view[:1]) == b"\3" and view.nbytes == MiB
    view.release()
    assert spares.settle(30)
    (following,) = names.held(str(in_use))  # the next one is made already
    assert following.name != ahead.name and following.token != ahead.token


def test_names_go_when_idle_and_the_sweep_leaves_a_live_owner_s(in_use: Path) -> None:
    for data in (b"\1", b"\2"):
        send_and_release(in_use, data * MiB)
    assert spares.settle(30)
    (ahead,) = names.held(str(in_use))
    report = sweep(directory=in_use)
    assert report.removed == 0 and Path(ahead.path).exists()
    assert names.tick(monotonic_now()) is not None  # not yet: it says when
    assert names.tick(monotonic_now() + names.IDLE) is None
    assert names.held() == [] and not Path(ahead.path).exists()


def test_a_failed_payload_leaves_no_name(in_use: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for data in (b"\1", b"\2"):
        send_and_release(in_use, data * MiB)
    assert spares.settle(30)
    (ahead,) = names.held(str(in_use))

    def broken(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(memcopy, "copy_into", broken)
    with pytest.raises(SharedMemoryError):
        place(b"\3" * MiB, lease=30, directory=in_use)
    assert not Path(ahead.path).exists()
    assert spares.settle(30)
    assert ahead.name not in segments(in_use)


def test_no_name_is_made_for_a_directory_no_socket_uses(shm_dir: Path) -> None:
    names.make(str(shm_dir))
    assert names.held() == [] and segments(shm_dir) == []


def test_a_send_never_waits_for_the_lock_the_background_thread_holds(in_use: Path) -> None:
    """The background thread creates a name under the lock, at nice 10: a send that finds
    the lock taken makes its own name rather than wait for a thread that lost its CPU."""
    for data in (b"\1", b"\2"):
        send_and_release(in_use, data * MiB)
    assert spares.settle(30)
    (ahead,) = names.held(str(in_use))
    with names._lock:  # as while the background thread makes a name
        assert names.take(str(in_use)) == (None, False)
        buf = place(b"\3" * MiB, lease=30, directory=in_use)  # reuses the segment, its own name
    assert buf.name != ahead.name and ring.statistics().reused == 2
    view = attach(buf.ref, directory=in_use)
    assert bytes(view[:1]) == b"\3"
    view.release()
    assert names.held(str(in_use)) == [ahead]  # still waiting for the next payload
