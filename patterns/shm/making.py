"""How a segment's parts are made and checked: its name file, its header, its arguments,
its errors; and two questions about a writer's mapping. The plumbing of ``creation`` and ``segment``
(kept apart so that the buffer's lifecycle reads on its own); nothing here holds state
but the short-lived reading of a directory's free space.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
from pathlib import Path
from typing import Final

from patterns.errors import SharedMemoryError, SharedMemoryFull
from patterns.shm.header import PAYLOAD_OFFSET, Header, monotonic_now, process_identity, unlink_quietly
from patterns.shm.ref import MAX_SEGMENT_SIZE

__all__ = [
    "ROOM_FRESH",
    "check_arguments",
    "check_room",
    "close_held",
    "close_quietly",
    "creation_error",
    "new_header",
    "unborrowed",
    "write_all",
    "write_name",
]

_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.ENOMEM})
_MAX_RECEIVERS: Final = 2**32 - 1

_WRITE_CHUNK: Final = 8 * 1024 * 1024


def close_quietly(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:
        pass  # a borrower appeared: it unmaps when it goes


def unborrowed(mapping: mmap.mmap) -> bool | None:
    """Does nothing borrow ``mapping`` (a slice of a released view still does)? None: cannot
    tell. (A resize to its own size is refused while a buffer is exported, and else changes
    nothing: a sealed memfd may be "truncated" to its size; ~15 us.)"""
    try:
        mapping.resize(len(mapping))
    except BufferError:
        return False
    except (OSError, ValueError, TypeError, SystemError):
        return None
    return True


def close_held(box: list[int]) -> None:
    fd, box[0] = box[0], -1
    if fd >= 0:
        os.close(fd)


def write_name(path: str | Path, header: Header, source: memoryview | None) -> int:
    """Create the segment's file (mode 0600): its header, as long as the segment (sparse: the
    payload lives in the memfd, except a probe's ``source``); its inode. Removed on failure."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, header.total_size)
        os.pwrite(fd, header.pack(), 0)
        if source is not None:
            write_all(fd, source, PAYLOAD_OFFSET)
        return os.fstat(fd).st_ino
    except BaseException:
        unlink_quietly(path)
        raise
    finally:
        os.close(fd)


def write_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):
        written = os.pwrite(fd, data[done : done + _WRITE_CHUNK], offset + done)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += written


def new_header(
    flags: int,
    size: int,
    lease: float,
    receivers: int,
    payload: int = -1,
    inode: int = 0,
    token: bytes | None = None,
) -> Header:
    """A new segment's header: this process, a fresh token (``token``: one made ahead,
    never used), the lease starting now, the payload memfd ``payload`` (-1: none, a probe)
    whose inode is ``inode``."""
    if token is None:
        token = secrets.token_bytes(16)
    deadline = monotonic_now() + lease
    return Header(flags, process_identity(), token, size, deadline, receivers, receivers, payload, inode)


ROOM_FRESH: Final = 1.0
"""Seconds a directory's free space, as :func:`check_room` read it, is used again."""
_room: dict[Path, tuple[float, int]] = {}  # directory -> (when read, free bytes)


def check_room(path: Path, total: int) -> None:
    """Fail early, before creating anything, when the directory's filesystem is too small.

    The payload lives in a memfd, so segments no longer use the directory's space: its
    free space is a bound set by whoever sized it (a 64 MB /dev/shm in a container), which
    segments do not change. So it is read at most every :data:`ROOM_FRESH` seconds (a
    ``statvfs`` took ~15 us on a cold path here) unless a segment would not fit."""
    folder = path.parent
    now = monotonic_now()
    known = _room.get(folder)
    if known is not None and now - known[0] < ROOM_FRESH and total <= known[1]:
        return
    info = os.statvfs(folder)
    free = info.f_bavail * info.f_frsize
    if len(_room) > 64:
        _room.clear()
    _room[folder] = (now, free)
    if total > free:
        raise OSError(errno.ENOSPC, f"{free} bytes free")


def check_arguments(size: int, lease: float, receivers: int) -> None:
    if type(size) is not int or not 0 <= size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size {size!r} must be an integer in 0..{MAX_SEGMENT_SIZE}")
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0 < lease < float("inf"):
        raise ValueError(f"lease {lease!r} must be a finite number of seconds > 0")
    if type(receivers) is not int or not 1 <= receivers <= _MAX_RECEIVERS:
        raise ValueError(f"receivers {receivers!r} must be an integer in 1..{_MAX_RECEIVERS}")


def creation_error(exc: OSError, path: str | Path, size: int) -> SharedMemoryError:
    path = Path(path)  # (only on a failure)
    if exc.errno in _FULL_ERRNOS:
        return SharedMemoryFull(
            f"no room for a segment of {size} bytes in {path.parent} ({exc.strerror})",
            name=path.name,
            size=size,
            directory=str(path.parent),
        )
    return SharedMemoryError(
        f"cannot create segment {path.name!r} of {size} bytes in {path.parent}: {exc.strerror}",
        name=path.name,
        reason="create",
    )
