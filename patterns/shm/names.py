"""Segment names made ahead: a reused segment's name is ready before its payload comes.

Every payload segment gets a new name (a file in the segment directory, ``_shm_making``),
made after its bytes are copied in. On an isolated 64 MiB send that step ran cold (the
copy had just pushed every cache line the kernel and the interpreter use out of the
caches): creating the file (``open(O_CREAT | O_EXCL)``, ``ftruncate``, ``pwrite``,
``fstat``) took 100-250 us there, against 10-20 us in a loop, and the name itself
(``pathlib`` join, the name's pattern check, the token) 50-100 us more. So a payload
that reuses a released segment (``_shm_ring``, the path a repeated send takes) finds
its name made ahead by the background thread: a file of ours holding a *probe* header
(it can never be attached), under a random name nobody was told, held open, and the
token of its next use, which nobody has seen either. Taking it costs a ``ftruncate``, a
``pwrite`` of the real header and a ``close`` (30 us cold); the name still appears with
its header complete, after the payload (it only stops being a probe then).

Bounds: one name per directory, and only in a directory that an open socket with shared
memory uses (as the spares and the pool: ``ring.in_use``); the next one is asked for
when one is taken. Each costs a descriptor and a sparse file of one page (no payload,
no memory). A name waits :data:`IDLE` seconds at most (then it is removed), and its probe
lease runs :data:`MARGIN` seconds longer, so what a killed process left goes with the
sweep (owner dead) or that lease. The names of a directory go when its last socket
closes and at exit (``_shm_spare.drop``).
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from typing import Final

from patterns.shm import ring
from patterns.shm.header import (
    FLAG_PROBE,
    Header,
    monotonic_now,
    process_identity,
    unlink_quietly,
)
from patterns.shm.ref import TOKEN_SIZE, make_name

__all__ = ["IDLE", "MARGIN", "Ahead", "discard", "drop", "held", "make", "take", "tick", "use"]

IDLE: Final = 30.0
"""Seconds a name made ahead waits to be taken before it is removed."""
MARGIN: Final = 15.0
"""Its probe lease runs this much longer (it is never taken that late)."""


@dataclass(frozen=True, slots=True)
class Ahead:
    """A name made ahead: its file (``path``, open as ``fd``, with inode ``inode``) and the
    token its next use carries."""

    path: str
    name: str
    fd: int
    inode: int
    token: bytes
    usable_until: float  # CLOCK_MONOTONIC; removed after


_lock = threading.Lock()
_ready: dict[str, Ahead] = {}  # directory -> its name made ahead
_making: dict[str, str] = {}  # path of a name being made -> its directory
_asked: set[str] = set()  # directories whose next name is asked for and not made yet
_pid = os.getpid()


def take(directory: str) -> tuple[Ahead | None, bool]:
    """The name made ahead for ``directory`` (None: none yet, or it waited too long), now
    the caller's; and whether to ask the background thread for the next (:func:`make`).

    Never waits for the lock: the background thread holds it while it creates a file, at
    nice 10, and on a busy machine may lose its CPU meanwhile; a send then makes its own
    name rather than wait for it."""
    if not _lock.acquire(blocking=False):
        return None, False
    try:
        ahead = _ready.pop(directory, None)
        ask = os.getpid() == _pid and directory not in _asked
        if ask:
            _asked.add(directory)
    finally:
        _lock.release()
    if ahead is not None and ahead.usable_until <= monotonic_now():
        discard(ahead)
        ahead = None
    return ahead, ask


def use(ahead: Ahead, header: Header) -> int:
    """Turn ``ahead`` into the name of the segment ``header`` describes (its header
    written, the file as long as the segment: sparse); its inode. Removed on failure."""
    try:
        os.ftruncate(ahead.fd, header.total_size)
        os.pwrite(ahead.fd, header.pack(), 0)
    except BaseException:
        unlink_quietly(ahead.path)
        raise
    finally:
        os.close(ahead.fd)
    return ahead.inode


def make(directory: str) -> None:
    """On the background thread: make ``directory``'s next name, unless unwanted by now."""
    owner = process_identity()
    name = make_name(owner.pid, secrets.token_hex(16))
    path = f"{directory}/{name}"
    usable_until = monotonic_now() + IDLE
    probe = Header(FLAG_PROBE, owner, secrets.token_bytes(TOKEN_SIZE), 0, usable_until + MARGIN, 1, 1)
    with _lock:  # made under the lock: a drop() either sees it in _making or prevents it
        _asked.discard(directory)
        if os.getpid() != _pid or directory in _ready or not ring.in_use(directory):
            return
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return  # (a full or vanished directory: the payload makes its own name)
        _making[path] = directory
    ahead = None
    try:
        os.ftruncate(fd, probe.total_size)
        os.pwrite(fd, probe.pack(), 0)
        ahead = Ahead(path, name, fd, os.fstat(fd).st_ino, secrets.token_bytes(TOKEN_SIZE), usable_until)
    except OSError:
        pass
    with _lock:
        kept = _making.pop(path, None) is not None and ahead is not None and directory not in _ready
        if kept and ahead is not None:
            _ready[directory] = ahead
            return
        unlink_quietly(path)  # under the lock: a drop() that missed it must not return first
    os.close(fd)


def drop(directory: str | None = None) -> int:
    """Remove the names made ahead for ``directory`` (None: all), those being made too;
    how many. When this returns no such name is left in the directory."""
    with _lock:
        gone = [_ready.pop(key) for key in list(_ready) if directory is None or key == directory]
        making = [path for path, key in _making.items() if directory is None or key == directory]
        for path in making:
            del _making[path]  # the background thread sees it went and closes what it holds
            unlink_quietly(path)
    for ahead in gone:
        discard(ahead)
    return len(gone) + len(making)


def tick(now: float) -> float | None:
    """Remove the names that waited too long; seconds until the next one would (None: none)."""
    with _lock:
        stale = [key for key, ahead in _ready.items() if ahead.usable_until <= now]
        gone = [_ready.pop(key) for key in stale]
        upcoming = [ahead.usable_until - now for ahead in _ready.values()]
    for ahead in gone:
        discard(ahead)
    return min(upcoming) if upcoming else None


def held(directory: str | None = None) -> list[Ahead]:
    """The names waiting now (of ``directory``, or all)."""
    with _lock:
        return [ahead for key, ahead in _ready.items() if directory is None or key == directory]


def discard(ahead: Ahead) -> None:
    """Remove a taken name that will not be used (its file and descriptor)."""
    unlink_quietly(ahead.path)
    os.close(ahead.fd)


def _reset_after_fork() -> None:
    """In a forked child: the parent's names are the parent's (the child's copies are closed)."""
    global _lock, _pid
    _lock = threading.Lock()
    for ahead in _ready.values():
        try:
            os.close(ahead.fd)
        except OSError:
            pass
    _ready.clear()
    _making.clear()
    _asked.clear()
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_after_fork)
