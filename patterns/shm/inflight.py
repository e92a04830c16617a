"""The payloads this process sent and still holds open until their receivers attached.

A segment's payload is a memfd (``_shm_memfd``) that exists only while a process holds
it open; receivers open it through ``/proc/<pid>/fd/<n>``. So once a segment's
reference has left, the sender keeps the descriptor here until the segment's *name*
(its file in the segment directory) is gone: its last receiver removed it as it
attached, the sweep removed it, or it was discarded. A segment whose lease passed is
removed here (name and descriptor). The memory itself is freed by the kernel when the
descriptor is closed and the receivers' mappings are gone.

:func:`check` runs on the shared-memory background thread (``_shm_worker``), a few
milliseconds after a send and then while descriptors are held; one ``stat`` per held
segment. At a normal exit the process waits up to :data:`EXIT_PATIENCE` seconds for
receivers that have not attached yet (a program that sends and ends at once still
delivers); a killed process delivers nothing it had not delivered (the receiver gets
``SegmentGone("sender-gone")``).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from dataclasses import dataclass
from typing import Final

from patterns.shm import ring
from patterns.shm.header import monotonic_now, unlink_quietly
from patterns.shm.worker import unmap

__all__ = ["EXIT_PATIENCE", "check", "held", "hold", "holds", "release_all"]

EXIT_PATIENCE: Final = 1.0
"""Seconds a process that exits waits for the receivers of what it sent last."""
CHECK_EVERY: Final = 0.02
"""Seconds between two checks while descriptors are held."""
BURST: Final = 64
"""Held payloads beyond which a new one first checks the others (a sender outrunning the
background check); the next such check waits until twice as many are held (amortised)."""


@dataclass(frozen=True, slots=True)
class _Held:
    fd: int
    inode: int  # of the name's file: a name reused by another file is not ours
    deadline: float  # the lease (CLOCK_MONOTONIC)
    slot: ring.Slot | None  # reusable once released: handed to ``ring`` when the name goes


_lock = threading.Lock()
_checking = threading.Lock()  # one check() at a time: see check()
_held: dict[str, _Held] = {}
_pid = os.getpid()
_crowd = BURST  # held payloads at which hold() checks them itself


def hold(path: str, fd: int, inode: int, deadline: float, slot: ring.Slot | None = None) -> None:
    """Keep payload ``fd`` of the segment named ``path`` open until its name goes or its lease
    passes (then ``slot``, if given, retires to ``ring`` for reuse instead of closing)."""
    with _lock:
        previous = _held.pop(path, None)
        _held[path] = _Held(fd, inode, deadline, slot)
        crowded = len(_held) > _crowd
    if previous is not None and previous.fd != fd:
        os.close(previous.fd)
    if crowded:
        check()


def held() -> int:
    """How many payloads this process holds for their receivers."""
    with _lock:
        return len(_held)


def holds(key: tuple[str, int]) -> bool:
    """Is a reusable payload of ``key`` (directory, size class) held for its receivers?"""
    with _lock:
        return any(entry.slot is not None and entry.slot.key == key for entry in _held.values())


def check(now: float | None = None) -> float | None:
    """Close the payloads whose name is gone or whose lease passed (removing its name);
    seconds until the next check is due (None: nothing held).

    Checks run one at a time: a payload leaves ``_held`` before its slot reaches ``ring``,
    so a sender's check beside the background thread's would otherwise return while the
    slot is in neither, and the sender's next ``place()`` would miss its reuse."""
    with _checking:
        return _check(monotonic_now() if now is None else now)


def _check(moment: float) -> float | None:
    with _lock:
        entries = list(_held.items())
    done: list[tuple[str, _Held]] = []
    for path, entry in entries:
        try:
            gone = os.stat(path).st_ino != entry.inode
        except FileNotFoundError:
            gone = True
        except OSError:
            gone = False  # cannot tell now: the lease settles it
        if not gone and entry.deadline <= moment:
            _unlink_if(path, entry.inode)
            gone = True
        if gone:
            done.append((path, entry))
    global _crowd
    closing = []
    with _lock:
        for path, entry in done:
            if _held.get(path) is entry:  # not closed by another check meanwhile
                del _held[path]
                closing.append(entry)
        left = bool(_held)
        _crowd = max(BURST, 2 * len(_held))
    for entry in closing:
        if entry.slot is not None and entry.slot.fd == entry.fd:
            ring.retire(entry.slot, unmap)  # the descriptor is the ring's now
        else:
            os.close(entry.fd)
    return CHECK_EVERY if left else None


def _unlink_if(path: str, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            unlink_quietly(path)
    except OSError:
        pass


def release_all(patience: float = 0.0) -> int:
    """Wait up to ``patience`` seconds for the receivers still due, then close every payload
    (removing the names still waiting); how many were closed without their receivers."""
    limit = time.monotonic() + patience
    while check() is not None and time.monotonic() < limit:
        time.sleep(0.005)
    with _lock:
        entries = list(_held.items()) if os.getpid() == _pid else []
        _held.clear()
    for path, entry in entries:
        _unlink_if(path, entry.inode)  # nobody can attach it once this process is gone
        os.close(entry.fd)
    return len(entries)


def _reset_after_fork() -> None:
    """In a forked child: the parent's payloads are the parent's to hold."""
    global _lock, _checking, _pid
    _lock = threading.Lock()
    _checking = threading.Lock()
    for entry in _held.values():
        try:
            os.close(entry.fd)  # the child's copies (the parent still holds its own)
        except OSError:
            pass
    _held.clear()
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(lambda: release_all(EXIT_PATIENCE))
