"""Where a new segment comes from: a released one reused, a warm spare, or a fresh memfd.

:func:`make` makes every :class:`~patterns.shm.segment.SharedBuffer` (``create``,
:func:`~patterns.shm.segment.place`, the beacons) and chooses among the three; :func:`reuse`
and :func:`fresh` are two of them. Each ends by calling ``build`` (the buffer class) with
the parts it made. Kept apart from ``segment`` so that the buffer's lifecycle reads on its
own; the parts themselves (name file, header, arguments, errors) are made in ``making``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import patterns.shm.spare as spares
from patterns.errors import SharedMemoryError, SharedMemoryFull
from patterns.shm import inflight, making, memcopy, memfd, names, ring
from patterns.shm.header import (
    FLAG_PROBE,
    MMAP_OPTIONS,
    PAYLOAD_OFFSET,
    STAMP_OFFSET,
    Header,
    process_identity,
    segment_directory,
)
from patterns.shm.pool import Key
from patterns.shm.ref import make_name
from patterns.shm.worker import address_of

__all__ = ["MAX_WAIT", "POLL", "WAIT_PER_MIB", "Build", "await_return", "fresh", "make", "reuse"]

B = TypeVar("B")
# What takes a made segment's parts (path, header, mapping, payload memfd, inode, slot):
# ``SharedBuffer``, passed in so that this module need not import the class it builds.
Build = Callable[[str | Path, Header, mmap.mmap | None, int, int, ring.Slot | None], B]


def make(
    build: Build[B],
    size: int,
    *,
    lease: float,
    receivers: int,
    directory: str | os.PathLike[str] | None,
    flags: int,
    source: memoryview | None,
    suffix: str | None = None,
) -> B:
    """Create a segment: mapped and reserved (``source`` None), or written from ``source``,
    unmapped. ``suffix`` (32 hex digits) names it instead of a random one (a beacon).

    A payload segment reuses a released one of its size class when one is pooled
    (``_shm_ring``), else takes a warm spare of its class when one waits
    (``_shm_spare``), else waits a moment for one of its class that its receiver is
    about to release (:func:`await_return`); otherwise it is made afresh. After a segment
    is made (or reused with no other released one of its class left), a spare is
    prepared for the next one. If there is no room, the directory's spares and pooled
    segments are given back and the segment is tried once more."""
    making.check_arguments(size, lease, receivers)
    if flags or suffix is not None:
        return fresh(build, segment_directory(directory), size, lease, receivers, flags, source, suffix)
    key = spares.directory_key(directory)
    pool_key = (key, spares.size_class(size))
    slot = ring.take(pool_key, size, spares.unmap_later, final=False)
    if slot is None and inflight.held():
        inflight.check()  # segments whose receivers attached meanwhile retire now, not in 20 ms
        slot = ring.take(pool_key, size, spares.unmap_later, final=False)
    if slot is None and not spares.ready(key, size):
        slot = await_return(pool_key, size, lambda: spares.wanted(key, size, delay=0.0))
    if slot is None:
        slot = ring.take(pool_key, size, spares.unmap_later)  # the last look (a miss if none)
    if slot is not None:
        buf = reuse(build, key, slot, size, lease, receivers, source)
        if not ring.free(pool_key):
            # A stream: the segment just sent comes back only once its receiver let go of it,
            # and the next payload is made at once. A spare behind it keeps a receiver that
            # lags from costing a fresh segment (~50 ms of page allocation per 64 MiB).
            spares.wanted(key, size)
        return buf
    spare = spares.take(key, size)
    if spare is not None:
        header = making.new_header(0, size, lease, receivers, spare.fd, spare.payload_inode)
        slot = ring.Slot(spare.fd, spare.payload_inode, size, pool_key)
        try:
            mapping = spares.fill(spare, header, source)
        except OSError as exc:
            raise making.creation_error(exc, spare.path, size) from exc
        if source is not None:
            if not ring.keep_mapping(slot, mapping):
                spares.unmap_later(mapping)
            buf = build(spare.path, header, None, spare.fd, spare.inode, slot)
        else:
            buf = build(spare.path, header, mapping, spare.fd, spare.inode, slot)
    else:
        folder = Path(key)
        try:
            buf = fresh(build, folder, size, lease, receivers, 0, source, None)
        except SharedMemoryFull:
            if not spares.drop(key, now=True):
                raise
            buf = fresh(build, folder, size, lease, receivers, 0, source, None)
    spares.wanted(key, size)
    return buf


WAIT_PER_MIB: Final = 0.1e-3
"""Seconds :func:`await_return` may wait per MiB of payload: a fresh segment costs 0.6 ms
per MiB here and more under load (its pages allocated and zeroed), so a wait that fails
adds at most a sixth to what follows, and one that succeeds saves all of it."""
MAX_WAIT: Final = 0.01
"""Seconds :func:`await_return` waits at most (reached from 100 MiB on): a receiver that
lost its CPU for a scheduler slice or two under load, not one that holds on."""
POLL: Final = 0.0001
"""Seconds between two looks while it waits."""


def await_return(pool_key: Key, size: int, waiting: Callable[[], None] = lambda: None) -> ring.Slot | None:
    """A segment of ``pool_key`` its receiver releases within a moment, or None.

    A producer that sends back to back makes its next payload as soon as the last one
    left, while its receiver is still letting go of the one before (0.4-4.4 ms after, in
    ``bench.shm_stream``). Waiting that long is far cheaper than a fresh segment, but only
    worth it for one that is on its way back: sent (``inflight``) or retired (``ring``).
    Blocks the caller (as the copy into the segment does) for at most ``WAIT_PER_MIB``
    per MiB, :data:`MAX_WAIT` in all; nothing for payloads under 2 MiB. ``waiting`` is
    called once, before the first look, when there is one to wait for."""
    bound = min(MAX_WAIT, WAIT_PER_MIB * size / (1 << 20))
    if bound < 2 * POLL:
        return None
    limit = time.monotonic() + bound
    if ring.retiring(pool_key) or inflight.holds(pool_key):
        # A stream that one segment serves only by waiting for its receiver at every
        # payload (~0.5 ms per 64 MiB here, an eighth of the copy): its spare, which then
        # circulates as a second segment, is asked for now rather than after this copy.
        waiting()
    while ring.retiring(pool_key) or inflight.holds(pool_key):
        if time.monotonic() >= limit:
            return None
        time.sleep(POLL)
        inflight.check()
        slot = ring.take(pool_key, size, spares.unmap_later, final=False)
        if slot is not None:
            return slot
    return None


def reuse(
    build: Build[B],
    folder: str,
    slot: ring.Slot,
    size: int,
    lease: float,
    receivers: int,
    source: memoryview | None,
) -> B:
    """A released segment's memfd carries this payload under a new name and token: the
    stamp first, then the bytes (``source``, or zeros for a buffer to fill), the name last.
    The name and token come made ahead when the background thread has one ready
    (``_shm_names``; it is asked for the next one here)."""
    mapping = slot.mapping
    assert mapping is not None  # (``ring.take`` maps it)
    ahead, ask = names.take(folder)
    if ask:
        spares.later(lambda: names.make(folder))
    if ahead is not None:
        path = ahead.path
    else:
        path = f"{folder}/{make_name(process_identity().pid, secrets.token_hex(16))}"
    try:  # (from here on a name made ahead is discarded whatever goes wrong)
        header = making.new_header(
            0, size, lease, receivers, slot.fd, slot.inode, None if ahead is None else ahead.token
        )
        ring.write_stamp(slot.fd, mapping, header.token)
        if source is not None:
            memcopy.copy_into(mapping, PAYLOAD_OFFSET, source)  # without the GIL
        else:
            ctypes.memset(address_of(mapping) + PAYLOAD_OFFSET, 0, size)  # as a fresh one: zeros
            slot.mapping = None  # the buffer's own now; back to the slot when it closes
        if ahead is None:
            inode = making.write_name(path, header, None)
        else:
            made, ahead = ahead, None  # (``use`` closes it, whatever happens)
            inode = names.use(made, header)
    except BaseException as exc:
        if ahead is not None:
            names.discard(ahead)
        if source is None:
            slot.mapping = mapping
        ring.close(slot, spares.unmap_later)
        if isinstance(exc, OSError) and not isinstance(exc, SharedMemoryError):
            raise making.creation_error(exc, path, size) from exc
        raise
    return build(path, header, None if source is not None else mapping, slot.fd, inode, slot)


def fresh(
    build: Build[B],
    folder: Path,
    size: int,
    lease: float,
    receivers: int,
    flags: int,
    source: memoryview | None,
    suffix: str | None,
) -> B:
    path = folder / make_name(process_identity().pid, suffix or secrets.token_hex(16))
    try:
        making.check_room(path, PAYLOAD_OFFSET + size)
    except OSError as exc:
        raise making.creation_error(exc, path, size) from exc
    if flags & FLAG_PROBE:  # a probe has no payload memfd: its name is all it is
        header = making.new_header(flags, size, lease, receivers)
        try:
            making.write_name(path, header, source)
        except OSError as exc:
            raise making.creation_error(exc, path, size) from exc
        return build(path, header, None, -1, 0, None)  # no payload memfd: no inode, no slot
    try:
        payload = memfd.create(path.name)
    except OSError as exc:
        raise making.creation_error(exc, path, size) from exc
    mapping = None
    try:
        header = making.new_header(flags, size, lease, receivers, payload, os.fstat(payload).st_ino)
        if source is None:
            os.posix_fallocate(payload, 0, header.total_size)  # reserved: writing never SIGBUS
        else:
            os.ftruncate(payload, header.total_size)
        memfd.seal(payload)
        os.pwrite(payload, header.token, STAMP_OFFSET)  # the use it carries (``_shm_ring``)
        if source is None:
            protection = mmap.PROT_READ | mmap.PROT_WRITE
            mapping = mmap.mmap(payload, header.total_size, mmap.MAP_SHARED, protection, **MMAP_OPTIONS)
        else:
            making.write_all(payload, source, PAYLOAD_OFFSET)
        inode = making.write_name(path, header, None)  # the name last: the segment is whole by then
    except BaseException as exc:
        if mapping is not None:
            mapping.close()
        os.close(payload)
        if isinstance(exc, OSError) and not isinstance(exc, SharedMemoryError):
            raise making.creation_error(exc, path, size) from exc
        raise
    slot = None
    if not flags and suffix is None:  # a payload segment: reusable once released
        slot = ring.Slot(
            payload, header.memfd_inode, size, (os.path.normpath(folder), spares.size_class(size))
        )
    return build(path, header, mapping, payload, inode, slot)
