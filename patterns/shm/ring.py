"""Reused payload segments: a segment its receivers released carries the next payload.

A fresh 64 MiB segment costs its allocation (``posix_fallocate``, ~30 ms here) and a
page fault per 4 KiB page on the copy (~60 ms); copying into pages that exist and are
mapped runs at memcpy speed (~6 ms). One warm spare (``_shm_spare``) cannot keep up
with a producer that never pauses, so payload segments are recycled: once every
receiver has released one, its sealed memfd and the sender's writable mapping of it go
to a per-size pool (the books are ``_shm_pool``'s) and the next ``place()`` or
``shared_buffer()`` of its size class in its directory takes it, under a new name and a
new token, with its pages already mapped.

**When is a segment released?** Its name is gone (``_shm_inflight``: every receiver
attached, or its lease ran out, or it was discarded) and no process but its sender holds
its memfd open. A receiver's mapping holds the file it opened through ``/proc`` open
until the mapping goes, so the proof is a *write lease* (``F_SETLEASE``), which the kernel
grants only when nobody else has the file open (no other reader, no writer): the sender
opens its own memfd read-only, asks for the lease and drops it at once (~3 us).

**Why a late receiver cannot read the next payload.** Every payload segment carries its
use's random token twice: in its header (the named file) and in the first bytes of the
memfd (the *stamp*, in the page before the payload). A receiver opens the memfd and
refuses it (``SegmentGone("reused")``) unless the stamp equals the header's token, before
it claims the segment (removes the name, or counts itself under the lock): so the stamp
is still intact for every rightful receiver. When a segment retires (its name is gone),
the sender first overwrites the stamp (zeros), then proves the release. A receiver that opened the memfd before the
proof makes the lease fail (no reuse: the proof is tried again later); one that opens it
after reads the stamp after it was overwritten, so it refuses it. The kernel orders the
two (a lease is installed with a full barrier before the open counts are read, and an
open that meets a lease waits until it is dropped). The size seals stay: a reused memfd
is never resized (a payload of its class that does not fit takes another one).

If the probe's lease is broken by such a late open, the kernel signals the sender; the
probe's descriptor asks for ``SIGURG`` (ignored unless a program handles it) instead
of the default ``SIGIO``, which would end the process. A system without leases
(``fs.leases-enable = 0``) reuses nothing.

A segment whose writer still maps it outside the pool (a ``shared_buffer`` never closed, or
a numpy array over its view that outlived the send) is never pooled: the writer could
otherwise write into a later payload. Only in a directory that an open socket with
shared memory uses (as the spares), and
bounded (:data:`LIMITS`, and at most :data:`SHARE` of the memory it and the free memory make
together): the bytes held retiring and free, free segments per class,
closed after :data:`IDLE` seconds unused or when a retired one's receivers keep it past
the same time, and all of a directory's when its last shared-memory socket closes, when
a segment there could not be made for lack of room, and at exit.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import mmap
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from patterns.shm.header import (
    MMAP_OPTIONS,
    PAYLOAD_OFFSET,
    STAMP_OFFSET,
    STAMP_SIZE,
    free_bytes,
    monotonic_now,
)
from patterns.shm.pool import Key, PoolLimits, PoolStatistics, SegmentPool

__all__ = [
    "CHECK_EVERY",
    "IDLE",
    "LIMITS",
    "Slot",
    "close",
    "drop",
    "forget",
    "free",
    "keep_mapping",
    "mapping_of",
    "release_proven",
    "retire",
    "retiring",
    "statistics",
    "take",
    "tick",
    "write_stamp",
]

IDLE: Final = 30.0
"""Seconds a free segment waits for reuse, and a retired one for its receivers' release."""
LIMITS: Final = PoolLimits(max_bytes=1 << 29, per_key=4, idle=IDLE, patience=IDLE)
"""512 MiB of payload held at most per process, four free segments per size class."""
SHARE: Final = 0.25
"""The pool keeps at most this share of the memory it and what is free make together
(``free_bytes``: the directory's room, ``MemAvailable``, the cgroup's limit)."""
ROOM_FRESH: Final = 1.0
"""Seconds a reading of the free memory is used again."""
CHECK_EVERY: Final = 0.02
"""Seconds between two proofs tried while retired segments wait."""

F_SETLEASE: Final[int] = getattr(fcntl, "F_SETLEASE", 1024)
F_SETSIG: Final[int] = getattr(fcntl, "F_SETSIG", 10)
_ZEROS: Final = bytes(STAMP_SIZE)


@dataclass(eq=False, slots=True)
class Slot:
    """A payload memfd that may be reused: sealed at ``PAYLOAD_OFFSET + capacity`` bytes,
    and the sender's writable mapping of all of it once one is kept (None: mapped on reuse)."""

    fd: int
    inode: int
    capacity: int
    key: Key
    mapping: mmap.mmap | None = None
    dead: bool = False  # closed, or its buffer discarded unsent: never pooled
    writer: bool = False  # its buffer still maps it writable (a view, a numpy array): never pooled


_lock = threading.Lock()
_pool: SegmentPool[Slot] = SegmentPool(LIMITS)
_pid = os.getpid()
_supported: bool | None = None  # leases work here (None: not tried yet)
_room: dict[str, tuple[float, int]] = {}  # directory -> (when read, free bytes)
in_use: Callable[[str], bool] = lambda directory: True
"""Whether an open socket uses shared memory in ``directory`` (``_shm_spare`` sets it):
only there are segments kept, as spares are (a one-off ``place()`` keeps nothing)."""


def write_stamp(fd: int, mapping: mmap.mmap | None, token: bytes) -> None:
    """Mark the memfd as carrying the use whose header holds ``token`` (zeros: none)."""
    if mapping is not None:
        mapping[STAMP_OFFSET : STAMP_OFFSET + STAMP_SIZE] = token
    else:
        os.pwrite(fd, token, STAMP_OFFSET)


def release_proven(fd: int) -> bool | None:
    """Nobody but this process's own descriptor holds memfd ``fd`` open (so nobody maps it)?
    None when this system cannot tell (no leases)."""
    try:
        probe = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return False if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM) else None  # later
    try:
        fcntl.fcntl(probe, F_SETSIG, signal.SIGURG)  # a broken lease must not SIGIO us
        try:
            fcntl.fcntl(probe, F_SETLEASE, fcntl.F_WRLCK)
        except OSError as exc:
            return False if exc.errno in (errno.EAGAIN, errno.EBUSY) else None
        fcntl.fcntl(probe, F_SETLEASE, fcntl.F_UNLCK)
        return True
    except OSError:
        return None
    finally:
        os.close(probe)


def retire(slot: Slot, unmap: Callable[[mmap.mmap], None]) -> None:
    """``slot``'s name is gone (the caller's descriptor is now ours): overwrite its stamp,
    then pool it once its release is proven; closed if it cannot be kept."""
    if slot.dead or slot.writer or os.getpid() != _pid or _supported is False or not in_use(slot.key[0]):
        close(slot, unmap)
        return
    try:
        write_stamp(slot.fd, slot.mapping, _ZEROS)  # before any proof: see the module docstring
    except (OSError, ValueError):
        close(slot, unmap)
        return
    now = monotonic_now()
    directory = slot.key[0]
    known = _room.get(directory)
    if known is None or now - known[0] >= ROOM_FRESH:
        known = _room[directory] = (now, free_bytes(directory))  # (reads /proc: not under the lock)
        if len(_room) > 64:
            _room.clear()
    with _lock:
        held = _pool.held_bytes + slot.capacity
        roomy = held <= SHARE * (known[1] + held)  # (what is held is not free: count it back)
        # in_use() again, under the lock: its directory's last socket may have closed since
        # the check above, and its drop() (which comes after) must find what is kept.
        kept = roomy and in_use(directory) and _pool.retire(slot, slot.key, slot.capacity, now)
        if not roomy:
            _pool.refuse()
        closing = [] if kept else [slot]
        closing += _prove(slot.key)
    for gone in closing:
        close(gone, unmap)


def _prove(key: Key | None) -> list[Slot]:
    """(Under the lock.) Try the proof of every retired slot (of ``key``); those to close."""
    global _supported
    closing: list[Slot] = []
    now = monotonic_now()
    for slot in _pool.retiring(key):
        proven = release_proven(slot.fd)
        if proven is None:
            _supported = False  # (a descriptor of ours not in /proc: no way to prove anything)
            closing += _pool.drop()
            break
        _supported = True
        if proven:
            extra = _pool.released(slot, now)
            if extra is not None:
                closing.append(extra)
    return closing


def take(key: Key, size: int, unmap: Callable[[mmap.mmap], None], *, final: bool = True) -> Slot | None:
    """A released slot of ``key`` with room for ``size`` payload bytes, mapped writable; or
    None (counted as a miss when ``final``: the caller will not look again)."""
    if os.getpid() != _pid:
        return None
    with _lock:
        if not _pool.held_bytes:
            return None  # (nothing retiring nor free: not counted as a miss)
        closing = _prove(key)
        slot = _pool.take(key, size, final=final)
    for gone in closing:
        close(gone, unmap)
    if slot is not None and slot.mapping is None:
        try:
            slot.mapping = mapping_of(slot.fd, PAYLOAD_OFFSET + slot.capacity)
        except OSError:
            close(slot, unmap)
            return None
    return slot


def free(key: Key) -> int:
    """How many released segments of ``key`` wait for reuse."""
    with _lock:
        return _pool.free(key)


def retiring(key: Key) -> bool:
    """Does a segment of ``key`` wait for the proof of its release?"""
    with _lock:
        return bool(_pool.retiring(key))


def mapping_of(fd: int, length: int) -> mmap.mmap:
    """A writable shared mapping of ``length`` bytes of ``fd``, its existing pages mapped at once."""
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(fd, length, flags, mmap.PROT_READ | mmap.PROT_WRITE, **MMAP_OPTIONS)


def keep_mapping(slot: Slot, mapping: mmap.mmap, *, keep: bool = True) -> bool:
    """The writer released its view of ``mapping`` (of ``slot``'s memfd, unborrowed now):
    with ``keep``, keep the mapping for the slot's reuse; False: the caller unmaps it (not
    kept, the slot is closed, or has one already)."""
    with _lock:
        slot.writer = False
        if not keep or slot.dead or slot.mapping is not None:
            return False
        slot.mapping = mapping
        return True


def forget(slot: Slot, unmap: Callable[[mmap.mmap], None]) -> None:
    """``slot``'s buffer was discarded or closed its memfd: it will never be pooled."""
    with _lock:
        slot.dead = True
        mapping, slot.mapping = slot.mapping, None
    if mapping is not None:
        unmap(mapping)


def tick(unmap: Callable[[mmap.mmap], None]) -> float | None:
    """On the background thread: prove what retired, close what expired; seconds until
    the next tick is due (None: nothing held)."""
    now = monotonic_now()
    with _lock:
        closing = _prove(None)
        closing += _pool.expire(now)
        waiting = bool(_pool.retiring())
        due = _pool.next_due(now)
    for gone in closing:
        close(gone, unmap)
    if waiting:
        due = CHECK_EVERY if due is None else min(due, CHECK_EVERY)
    return due


def drop(directory: str | None, unmap: Callable[[mmap.mmap], None]) -> int:
    """Close every slot held for ``directory`` (None: all); how many."""
    with _lock:
        gone = _pool.drop(directory)
    for slot in gone:
        close(slot, unmap)
    return len(gone)


def statistics() -> PoolStatistics:
    """A snapshot of this process's pool."""
    with _lock:
        return _pool.statistics()


def close(slot: Slot, unmap: Callable[[mmap.mmap], None]) -> None:
    with _lock:
        already = slot.dead and slot.fd < 0
        slot.dead = True
        fd, slot.fd = slot.fd, -1
        mapping, slot.mapping = slot.mapping, None
    if mapping is not None:
        unmap(mapping)
    if fd >= 0 and not already:
        os.close(fd)


def _unmap_now(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:
        pass


def _reset_after_fork() -> None:
    """In a forked child: the parent's slots are the parent's (the child's copies are closed)."""
    global _lock, _pool, _pid
    _lock = threading.Lock()
    for slot in _pool.drop():
        try:
            os.close(slot.fd)
        except OSError:
            pass
    _pool = SegmentPool(LIMITS)
    _pid = os.getpid()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(lambda: drop(None, _unmap_now) if os.getpid() == _pid else None)
