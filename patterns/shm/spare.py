"""Warm spare segments: a large copy into shared memory at memcpy speed.

Copying a payload into a *fresh* tmpfs file runs at about 2 GB/s here: the kernel
allocates and zeroes each page and every 4 KiB page faults (or takes the write path)
on first touch. Into pages that already exist and are mapped, the same copy runs at
memcpy speed (9-11 GB/s). So after a segment of some size is made for a socket that
uses shared memory, the background thread (``_shm_worker``) prepares a **spare** of
the same size class ahead of time: a segment file of ours, created, its space reserved
(``posix_fallocate``: never SIGBUS), mapped writable and pre-faulted. The next
:func:`~patterns.shm.segment.place` (or ``shared_buffer``) of a payload of that class
takes it and only copies into it.

A spare changes nothing a receiver or a sweeper can observe:

- It is fresh: never sent, never written but for its header; its payload is zeros.
  (Segments that were sent are reused only once released: ``_shm_ring``.)
- While it waits it is a *probe* (``FLAG_PROBE``: it can never be attached), with a
  random token and name nobody was told, our pid and start time, and a lease of
  :data:`IDLE` + :data:`MARGIN` seconds: a killed owner's spare goes with the sweep
  (owner dead), like any segment of ours. When taken, its header is rewritten (a new
  token, the payload length, the receivers, and a lease that starts then).
- Bounded: one spare per size class and directory; at most :data:`BUDGET` bytes in
  all; a spare is only prepared when it takes at most :data:`SHARE` of the directory's
  free space and of the memory available (:func:`free_bytes`); dropped after :data:`IDLE` seconds unused; all of a directory's spares are
  dropped when a segment there could not be made for lack of room (and that segment is
  tried again), when the last socket using shared memory in it closes, and at exit.
- Only for repeated use: a spare is prepared when a segment of a size class is made
  for the second time within :data:`IDLE` seconds, and only in a directory kept *in
  use* by an open socket with shared memory enabled (its beacons, ``_shm_beacon``).
  A one-off large send, or segments made without a socket, never leave a spare.

Size classes: a payload of ``n`` bytes belongs to the class of ``n`` rounded up to a
multiple of an eighth of the largest power of two not above it, so a spare is at most
1/8 larger than the payload (:mod:`~patterns.shm.spare_record`, with the :class:`Spare`
record); the excess is cut off (``ftruncate``) when it is taken.
"""

from __future__ import annotations

import atexit
import errno
import logging
import mmap
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from patterns.shm import inflight, memcopy, memfd, names, ring
from patterns.shm.header import (
    FLAG_PROBE,
    PAYLOAD_OFFSET,
    STAMP_OFFSET,
    STAMP_SIZE,
    Header,
    folder_name,
    free_bytes,
    monotonic_now,
    process_identity,
    unlink_quietly,
)
from patterns.shm.ref import make_name
from patterns.shm.spare_record import Spare, size_class
from patterns.shm.worker import Worker, populate, unmap

__all__ = [
    "BUDGET",
    "IDLE",
    "MARGIN",
    "SHARE",
    "Spare",
    "check_held_soon",
    "directory_key",
    "drop",
    "fill",
    "free_bytes",
    "held",
    "in_background",
    "later",
    "ready",
    "register",
    "settle",
    "size_class",
    "take",
    "unmap_later",
    "unregister",
    "wanted",
]

log = logging.getLogger("patterns")

IDLE: Final = 30.0
"""Seconds a spare waits to be taken before it is dropped."""
MARGIN: Final = 15.0
"""A waiting spare's lease runs this long past its idle limit (it is never taken that late)."""
BUDGET: Final = 1 << 30
"""Bytes all spares of a process may hold together (payload capacity)."""
SHARE: Final = 0.25
"""A spare is prepared only if it needs at most this fraction of its directory's free space."""
DEFER: Final = 0.005
"""Seconds the background work a send causes waits, so as not to compete with its delivery."""
MAX_SEEN: Final = 256  # size classes remembered (the stale ones are forgotten first)


class _Pool:
    """This process's spares, by (directory, size class)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, set[int]] = {}  # directory -> ids of the beacons that use it
        self.spares: dict[tuple[str, int], Spare] = {}
        self.preparing: dict[Path, tuple[str, int]] = {}  # a file being prepared -> its key
        self.queued: set[tuple[str, int]] = set()
        self.seen: dict[tuple[str, int], float] = {}  # (directory, class) -> when last made
        self.pid = os.getpid()
        self.unsupported = False  # the kernel cannot pre-fault: no spares
        self.worker = Worker(self.tick)

    def held_bytes(self) -> int:
        return sum(spare.capacity for spare in self.spares.values())

    def tick(self) -> float | None:
        """Drop the spares past their idle limit; seconds until the next one expires."""
        now = monotonic_now()
        with self.lock:
            stale = [key for key, spare in self.spares.items() if spare.usable_until <= now]
            gone = [self.spares.pop(key) for key in stale]
            for spare in gone:  # out of the books only with its name: see drop()
                unlink_quietly(spare.path)
            upcoming = [spare.usable_until - now for spare in self.spares.values()]
        for spare in gone:
            _discard(spare)
        pauses = [*upcoming, inflight.check(now), ring.tick(unmap), names.tick(now)]
        due = [pause for pause in pauses if pause is not None]
        return min(due) if due else None

    def prepare(self, directory: str, capacity: int) -> None:
        """On the worker: make the spare of ``capacity`` bytes in ``directory``, unless unwanted by now."""
        owner = process_identity()
        path = Path(directory) / make_name(owner.pid, secrets.token_hex(16))
        total = PAYLOAD_OFFSET + capacity
        room = free_bytes(directory)  # (reads /proc: not under the lock a send may wait for)
        with self.lock:
            self.queued.discard((directory, capacity))
            if not self._admissible(directory, capacity) or room * SHARE < total:
                return
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.debug("no spare segment in %s: %s", directory, exc)
                return
            self.preparing[path] = (directory, capacity)  # from here on, drop() unlinks it
        mapping = None
        payload = -1
        inode = payload_inode = 0
        usable_until = monotonic_now() + IDLE
        header = Header(FLAG_PROBE, owner, secrets.token_bytes(16), capacity, usable_until + MARGIN, 1, 1)
        try:
            os.ftruncate(fd, total)  # sparse: the bytes go in the memfd
            os.pwrite(fd, header.pack(), 0)
            inode = os.fstat(fd).st_ino
            payload = memfd.create(path.name)
            payload_inode = os.fstat(payload).st_ino
            os.posix_fallocate(payload, 0, total)
            mapping = mmap.mmap(payload, total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            failed = populate(mapping, lambda: path in self.preparing)
            if failed == errno.EINVAL:  # before Linux 5.14: a spare would fault as a fresh file does
                log.info("no spare segments: this kernel cannot pre-fault them (MADV_POPULATE_WRITE)")
                self.unsupported = True
            elif failed:
                log.debug("no spare segment in %s: %s", directory, os.strerror(failed))
            spare_ok = not failed
        except OSError as exc:
            log.debug("no spare segment in %s: %s", directory, exc)
            spare_ok = False
        spare = (
            Spare(path, payload, fd, inode, payload_inode, mapping, capacity, usable_until)
            if mapping is not None and spare_ok
            else None
        )
        with self.lock:
            kept = self.preparing.pop(path, None) is not None and spare is not None
            if kept and spare is not None and self._admissible(directory, capacity):
                self.spares[(directory, capacity)] = spare
                return
            unlink_quietly(path)  # under the lock: a drop() that missed it must not return first
        os.close(fd)
        if payload >= 0:
            os.close(payload)
        if mapping is not None:
            unmap(mapping)

    def _admissible(self, directory: str, capacity: int) -> bool:
        """(Under the lock.) May a spare of ``capacity`` bytes be held for ``directory`` now?"""
        return (
            os.getpid() == self.pid
            and not self.unsupported
            and bool(self.users.get(directory))
            and (directory, capacity) not in self.spares
            and self.held_bytes() + capacity <= BUDGET
        )

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's spares are not ours (their names carry its pid)."""
        self.lock = threading.Lock()
        self.users.clear()
        self.spares.clear()
        self.preparing.clear()
        self.queued.clear()
        self.seen.clear()
        self.pid = os.getpid()
        self.worker.reset_after_fork()


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset_after_fork)
ring.in_use = lambda directory: bool(_pool.users.get(directory))  # (a dict read: no lock needed)


def _discard(spare: Spare, *, now: bool = False) -> None:
    """Remove a spare that will not be used: its name at once, its mapping on the worker
    (``now``: here, so that its memory is free when this returns)."""
    unlink_quietly(spare.path)
    os.close(spare.file)
    os.close(spare.fd)
    if now:
        unmap(spare.mapping)
    else:
        _pool.worker.submit(lambda: unmap(spare.mapping))


def directory_key(directory: str | os.PathLike[str] | None) -> str:
    """The segment directory as the spares are filed under it (normalised, no Path built)."""
    return os.path.normpath(folder_name(directory))


def register(user: object, directory: str) -> None:
    """``user`` (a socket's beacons) uses shared memory in ``directory``: spares may be kept there."""
    with _pool.lock:
        _pool.users.setdefault(directory, set()).add(id(user))


def unregister(user: object) -> None:
    """``user`` is done; a directory no user is left in loses its spares at once."""
    emptied = []
    with _pool.lock:
        for directory, ids in _pool.users.items():
            if id(user) in ids:
                ids.discard(id(user))
                if not ids:
                    emptied.append(directory)
        for directory in emptied:
            del _pool.users[directory]
    for directory in emptied:
        drop(directory)


def take(directory: str, size: int) -> Spare | None:
    """The spare for a payload of ``size`` bytes in ``directory``, now the caller's; or None."""
    key = (directory, size_class(size))
    with _pool.lock:
        spare = _pool.spares.pop(key, None) if _pool.spares else None
        late = [path for path, making in _pool.preparing.items() if making == key] if spare is None else []
        for path in late:  # too late for this payload, and it would compete with its copy: given
            del _pool.preparing[path]  # up. The worker stops and closes its memfd (off this path:
            # freeing its pages takes about 1 ms per 8 MiB); the next one is asked for after. Its
            # name goes now (a sparse file holding a header: one cheap unlink), or a socket that
            # closes meanwhile would leave it behind: drop() only sees what is in the books.
            unlink_quietly(path)
    if spare is not None and spare.usable_until <= monotonic_now():
        _discard(spare)
        return None
    return spare


def ready(directory: str, size: int) -> bool:
    """Does a spare for a payload of ``size`` bytes wait in ``directory``?"""
    with _pool.lock:
        return (directory, size_class(size)) in _pool.spares


def wanted(directory: str, size: int, *, delay: float = DEFER) -> None:
    """A segment of ``size`` bytes was made in ``directory``: if one of its size class was
    made there less than :data:`IDLE` seconds ago too, prepare a spare of that class (in
    ``delay`` seconds: by default after the delivery at hand)."""
    key = (directory, size_class(size))
    now = monotonic_now()
    with _pool.lock:
        if len(_pool.seen) >= MAX_SEEN:
            _pool.seen = {k: t for k, t in _pool.seen.items() if now - t < IDLE}
        last = _pool.seen.get(key)
        _pool.seen[key] = now
        if last is None or now - last >= IDLE or key in _pool.queued or not _pool._admissible(*key):
            return
        if key in _pool.preparing.values():
            return  # (a stream asks at every payload: one preparation at a time)
        _pool.queued.add(key)
    _pool.worker.submit(lambda: _pool.prepare(*key), delay=delay)


def fill(spare: Spare, header: Header, source: memoryview | None) -> mmap.mmap:
    """Turn a taken spare into the payload segment ``header`` describes (its token, length,
    receivers, lease, which starts now, and ``spare.fd`` as its memfd): the memfd cut to
    the payload and sealed, stamped with the token (``_shm_ring``), the header rewritten,
    then ``source`` copied in through the pre-faulted mapping; the writable mapping is
    returned (the caller keeps it for the memfd's reuse, or fills it first when there is no
    ``source``). The memfd stays open (the caller's to hold). On a failure the spare is
    removed, its memfd closed, and the error propagates."""
    mapping = spare.mapping
    try:
        try:
            if spare.capacity != header.payload_length:
                os.ftruncate(spare.fd, header.total_size)
                os.ftruncate(spare.file, header.total_size)
            memfd.seal(spare.fd)
            mapping[STAMP_OFFSET : STAMP_OFFSET + STAMP_SIZE] = header.token
            os.pwrite(spare.file, header.pack(), 0)
        finally:
            os.close(spare.file)
        if source is not None:
            memcopy.copy_into(mapping, PAYLOAD_OFFSET, source)  # without the GIL
    except BaseException:
        unlink_quietly(spare.path)
        os.close(spare.fd)
        unmap_later(mapping)
        raise
    return mapping


def drop(directory: str | None = None, *, now: bool = False) -> int:
    """Remove the spares of ``directory`` (None: all), those being prepared included, the
    segments pooled for reuse there (``_shm_ring``) and its names made ahead
    (``_shm_names``); how many.

    Their names go at once; with ``now`` their memory too (else the worker unmaps them).
    Whatever leaves the books elsewhere (taken too late, expired, refused when made) loses
    its name under the same lock, so when this returns no spare name of ``directory`` is
    left, even while the background thread is still busy with one."""
    with _pool.lock:
        keys = [key for key in _pool.spares if directory is None or key[0] == directory]
        gone = [_pool.spares.pop(key) for key in keys]
        preparing = [
            path for path, key in _pool.preparing.items() if directory is None or key[0] == directory
        ]
        for path in preparing:
            del _pool.preparing[path]  # the worker sees it went and closes what it holds
    for path in preparing:
        unlink_quietly(path)
    for spare in gone:
        _discard(spare, now=now)
    pooled = ring.drop(directory, unmap if now else unmap_later)
    return len(gone) + len(preparing) + pooled + names.drop(directory)


def held(directory: str | None = None) -> list[Spare]:
    """The spares waiting now (of ``directory``, or all)."""
    with _pool.lock:
        return [spare for key, spare in _pool.spares.items() if directory is None or key[0] == directory]


def in_background(job: Callable[[], None]) -> None:
    """Run ``job`` on the background thread (soon, in order with the rest)."""
    _pool.worker.submit(job)


def later(job: Callable[[], None]) -> None:
    """Run ``job`` on the background thread after the delivery at hand (:data:`DEFER`)."""
    _pool.worker.submit(job, delay=DEFER)


def unmap_later(mapping: mmap.mmap) -> None:
    """Unmap on the background thread (the page tables torn down without the GIL)."""
    _pool.worker.submit(lambda: unmap(mapping), delay=DEFER)


def check_held_soon() -> None:
    """A payload was handed to ``inflight``: check what is held in a moment (its receiver
    attaches meanwhile, usually), and then as long as something is held (``tick``)."""
    _pool.worker.submit(_check_held, delay=DEFER)


def _check_held() -> None:
    inflight.check()  # (what it returns is for ``tick``)


def settle(timeout: float = 10.0) -> bool:
    """Wait until the background thread has done everything asked of it so far."""
    return _pool.worker.settle(timeout)


@atexit.register
def _at_exit() -> None:
    with _pool.lock:
        if os.getpid() != _pool.pid:
            return
        _pool.users.clear()
    drop(now=True)  # no new thread at exit; the process's end frees the memory anyway
