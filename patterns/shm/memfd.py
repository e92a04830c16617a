"""A segment's payload lives in a memfd sealed against shrinking: truncation cannot hurt a receiver.

A process that maps a file and reads a page its owner cut off by truncating the file
is killed by SIGBUS, which Python cannot catch. A file of ``/dev/shm`` cannot be
protected against that (``F_ADD_SEALS`` fails with EPERM on every tmpfs file not made
by ``memfd_create``), so the bytes of a payload segment live in a **memfd**:

- the writer makes it with ``memfd_create(MFD_ALLOW_SEALING)``, mode 0600, sizes it,
  then adds ``F_SEAL_SHRINK | F_SEAL_GROW``: from then on nobody, the writer included,
  can change its size (``ftruncate`` fails with EPERM);
- the writer keeps it open while a receiver may come (``_shm_inflight``); its number is
  in the segment's header, in the file of the segment directory that names it;
- a receiver opens it through ``/proc/<owner pid>/fd/<n>`` (the kernel lets only the
  owner's user, or root, do that) and refuses it unless it is a regular file of its own
  user, mode 0600, whose seals include ``F_SEAL_SHRINK`` and which covers the payload.

Punching a hole (``fallocate(PUNCH_HOLE)``) is still possible for the writer: the
receiver then reads zeros there, it does not fault. Nothing else can make a mapped page
of a sealed memfd vanish.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Final

from patterns.errors import BadReference, SegmentGone

__all__ = ["SEALS", "create", "open_payload", "seal"]

# The Linux values, for a Python built without them (fcntl has them on Linux from 3.8 on).
F_ADD_SEALS: Final[int] = getattr(fcntl, "F_ADD_SEALS", 1033)
F_GET_SEALS: Final[int] = getattr(fcntl, "F_GET_SEALS", 1034)
F_SEAL_SHRINK: Final[int] = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)
F_SEAL_GROW: Final[int] = getattr(fcntl, "F_SEAL_GROW", 0x0004)
MFD_ALLOW_SEALING: Final[int] = getattr(os, "MFD_ALLOW_SEALING", 0x0002)
MFD_CLOEXEC: Final[int] = getattr(os, "MFD_CLOEXEC", 0x0001)

SEALS: Final = F_SEAL_SHRINK | F_SEAL_GROW
"""The seals a writer adds once a payload's size is final."""

_LINK_PREFIX: Final = "/memfd:"  # how /proc shows a memfd's target ("/memfd:<name> (deleted)")


def create(name: str) -> int:
    """A new empty memfd named ``name`` (shown in /proc), sealable, mode 0600; its descriptor."""
    fd = os.memfd_create(name, MFD_ALLOW_SEALING | MFD_CLOEXEC)
    try:
        os.fchmod(fd, 0o600)  # memfds are born 0777; a receiver refuses any group/other bit
    except BaseException:
        os.close(fd)
        raise
    return fd


def seal(fd: int) -> None:
    """Fix the memfd's size for good: it can neither shrink nor grow from now on."""
    fcntl.fcntl(fd, F_ADD_SEALS, SEALS)


def open_payload(name: str, pid: int, number: int, inode: int, size: int) -> int:
    """Open segment ``name``'s payload, descriptor ``number`` of process ``pid``, read-only.

    Returns the new descriptor only if it is a memfd of this process's user, open to
    nobody else, sealed against shrinking, at least ``size`` bytes long, with inode
    number ``inode``; otherwise raises :class:`~patterns.BadReference` (``"unsealed"``,
    ``"owner"``, ``"mode"``, ``"truncated"``, ``"mismatch"``) or :class:`~patterns.SegmentGone` (``"sender-gone"``: the sender
    exited or closed it, so its memory is gone)."""
    link = f"/proc/{pid}/fd/{number}"
    try:
        # Read the link first: it does not open the target, so a descriptor of the
        # sender's that is a device, a FIFO or a file elsewhere is refused untouched.
        target = os.readlink(link)
    except FileNotFoundError:
        raise SegmentGone(
            f"segment {name!r}: its sender (pid {pid}) "
            + ("has exited" if not os.path.exists(f"/proc/{pid}") else "no longer holds its payload")
            + " (a sender must run until its receivers attached)",
            name=name,
            reason="sender-gone",
        ) from None
    except PermissionError:
        raise BadReference(
            f"segment {name!r}: the payload of process {pid} cannot be reached (another user's process?)",
            name=name,
            reason="owner",
        ) from None
    if not target.startswith(_LINK_PREFIX):
        raise BadReference(
            f"segment {name!r}: its payload is not a sealed memory file but {target!r}",
            name=name,
            reason="unsealed",
        )
    try:
        fd = os.open(link, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SegmentGone(
            f"segment {name!r}: its sender (pid {pid}) closed its payload meanwhile",
            name=name,
            reason="sender-gone",
        ) from None
    except OSError as exc:
        raise BadReference(
            f"segment {name!r}: its payload cannot be opened: {exc.strerror}", name=name, reason="unsealed"
        ) from exc
    try:
        _check(fd, name, inode, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check(fd: int, name: str, inode: int, size: int) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise BadReference(
            f"segment {name!r}: its payload is not a memory file", name=name, reason="unsealed"
        )
    if info.st_uid != os.geteuid():
        raise BadReference(
            f"segment {name!r}: its payload belongs to user id {info.st_uid}, not to this process's "
            f"user ({os.geteuid()})",
            name=name,
            reason="owner",
        )
    if info.st_mode & 0o077:
        raise BadReference(
            f"segment {name!r}: its payload has mode {stat.S_IMODE(info.st_mode):04o}: other users may "
            "read or write it (payloads are made 0600)",
            name=name,
            reason="mode",
        )
    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        seals = 0  # not a memfd at all
    if not seals & F_SEAL_SHRINK:
        raise BadReference(
            f"segment {name!r}: its payload is not sealed against shrinking (seals {seals:#x}): its "
            "sender could truncate it under this receiver, which would then crash",
            name=name,
            reason="unsealed",
        )
    if info.st_ino != inode:  # the sender's descriptor number now names another file
        raise BadReference(
            f"segment {name!r}: the payload its header names belongs to another segment",
            name=name,
            reason="mismatch",
        )
    if info.st_size < size:
        raise BadReference(
            f"segment {name!r}: its payload holds {info.st_size} bytes, its header needs {size}",
            name=name,
            reason="truncated",
        )
