"""The receiver side of a shared-memory segment: check everything, then map read-only.

:func:`attach` turns a :class:`~patterns.shm.ref.ShmRef` into a read-only memoryview
of exactly the referenced bytes, with no copy. In order, before any payload byte is
touched: the name matched the strict pattern when the reference was built (no path can
be smuggled in); the file exists (else ``SegmentGone("missing")``) and is a regular
file, not a symlink (``"not-a-file"``), owned by this process's effective user
(``"owner"``: another user could rewrite it under us) and open to nobody else, no
group or other permission bits (``"mode"``: others could read it or forge it); its size covers the header (``"truncated"``),
the header has the magic (``"magic"``), version and layout (``"version"``) and sane
fields (``"header"``), its owner pid is the one in the name and it is not a probe
(``"mismatch"``), its token equals the reference's (``"token"``), the file covers the
payload the header announces (``"truncated"``), and the range lies inside that payload
(``"range"``): each a :class:`~patterns.BadReference`. Then the segment must still be
waiting for a receiver (``SegmentGone("released")``) within its lease
(``SegmentGone("expired")``, and the name is removed). Then its payload, the memfd the
header names, is opened through the owner's ``/proc/<pid>/fd/<n>`` and checked
(``_shm_memfd``: sealed against shrinking, ``"unsealed"``; ours, ``"owner"``; 0600,
``"mode"``; long enough, ``"truncated"``; the inode the header names,
``"mismatch"``; ``SegmentGone("sender-gone")`` if the sender no longer holds it), and
with it open, its stamp must be the header's token (``SegmentGone("reused")``: the
sender recycled it, ``_shm_ring``). Only then is it counted and its payload mapped (nothing else is ever mapped: a sender cannot
shrink it under us):

- A segment made for **one receiver** (the usual case) is claimed by removing its name:
  of several attaches of the same reference exactly one ``unlink`` succeeds, the others
  fail with ``SegmentGone("released")``. No lock and no write are needed.
- A segment for **several receivers** (bus, survey) keeps a ``pending`` count: each
  attach re-reads and re-checks the header under an exclusive ``flock``, maps, decrements
  ``pending``, and the one that reaches 0 removes the name.

The view alone owns its mapping (see ``_shm_segment`` for what *released* means), so it
stays valid after the name is unlinked and is unmapped when its last borrower goes.
"""

from __future__ import annotations

import fcntl
import hmac
import mmap
import os
import stat
import time
from collections.abc import Sequence
from typing import Final

from patterns.errors import BadReference, SegmentGone, SharedMemoryError
from patterns.shm import memfd
from patterns.shm.header import (
    FLAG_PROBE,
    HEADER,
    MMAP_OPTIONS,
    PAYLOAD_OFFSET,
    PENDING,
    PENDING_OFFSET,
    STAMP_OFFSET,
    STAMP_SIZE,
    Header,
    folder_name,
    monotonic_now,
    unlink_quietly,
)
from patterns.shm.ref import ShmRef

__all__ = ["LOCK_PATIENCE", "attach", "attach_all"]

LOCK_PATIENCE: Final = 5.0
"""Seconds an attach waits for another process's lock on a segment before giving up."""


def attach(ref: ShmRef, *, directory: str | os.PathLike[str] | None = None) -> memoryview:
    """Map the referenced range read-only and count this receiver as attached.

    Returns a read-only memoryview of exactly ``ref.length`` bytes that stays valid
    after the segment is unlinked. Raises :class:`~patterns.SegmentGone` or
    :class:`~patterns.BadReference` (see the module docstring for every check).
    """
    return _attach(ref.name, ref.token, [ref], directory)[0]


def attach_all(
    refs: Sequence[ShmRef], *, directory: str | os.PathLike[str] | None = None
) -> list[memoryview]:
    """Attach several references at once, each segment once: views in the order of ``refs``.

    References naming the same segment share one mapping and count as one receiver.
    Segments are attached in order of first appearance; if one fails, those before it
    are already counted as attached (their views are dropped).
    """
    groups: dict[str, list[int]] = {}
    for index, ref in enumerate(refs):
        groups.setdefault(ref.name, []).append(index)
    views: list[memoryview | None] = [None] * len(refs)
    for name, indexes in groups.items():
        token = refs[indexes[0]].token
        if any(refs[i].token != token for i in indexes):
            raise BadReference(f"references to {name!r} carry different tokens", name=name, reason="token")
        for index, view in zip(indexes, _attach(name, token, [refs[i] for i in indexes], directory)):
            views[index] = view
    return [view for view in views if view is not None]


def _attach(
    name: str, token: bytes, ranges: list[ShmRef], directory: str | os.PathLike[str] | None
) -> list[memoryview]:
    folder = folder_name(directory)
    path = f"{folder}/{name}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SegmentGone(
            f"segment {name!r} does not exist in {folder}", name=name, reason="missing"
        ) from None
    except OSError as exc:
        raise BadReference(
            f"segment {name!r} in {folder} cannot be opened as a file: {exc.strerror}",
            name=name,
            reason="not-a-file",
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BadReference(f"segment {name!r} is not a regular file", name=name, reason="not-a-file")
        _check_private(info, name)
        header = _validated_header(fd, name, info.st_size, token, ranges)
        if header.receivers == 1:
            return _claim(path, name, header, ranges)
        _lock(fd, name)
        try:
            return _attach_locked(fd, path, name, info.st_size, token, ranges)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)  # the mapping holds a dup of fd: unlock explicitly
    finally:
        os.close(fd)


def _claim(path: str, name: str, header: Header, ranges: list[ShmRef]) -> list[memoryview]:
    """A segment for one receiver: removing its name is the claim (exactly one unlink succeeds)."""
    _check_waiting(header, path, name)
    payload = _open_payload(name, header)  # before the claim: a refused payload claims nothing
    try:
        _check_stamp(payload, name, header)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise SegmentGone(
                f"segment {name!r} was attached by its receiver meanwhile", name=name, reason="released"
            ) from None
        return _map(payload, name, header, ranges)
    finally:
        os.close(payload)


def _attach_locked(
    fd: int, path: str, name: str, file_size: int, token: bytes, ranges: list[ShmRef]
) -> list[memoryview]:
    header = _validated_header(fd, name, file_size, token, ranges)  # again: pending may have moved
    _check_waiting(header, path, name)
    payload = _open_payload(name, header)
    try:
        _check_stamp(payload, name, header)
        views = _map(payload, name, header, ranges)
    finally:
        os.close(payload)
    pending = header.pending - 1
    os.pwrite(fd, PENDING.pack(pending), PENDING_OFFSET)
    if pending == 0:
        unlink_quietly(path)
    return views


def _check_private(info: os.stat_result, name: str) -> None:
    """Ours alone: owned by our effective user, no permission for group or others (we make 0600)."""
    if info.st_uid != os.geteuid():
        raise BadReference(
            f"segment {name!r} belongs to user id {info.st_uid}, not to this process's user ({os.geteuid()})",
            name=name,
            reason="owner",
        )
    if info.st_mode & 0o077:
        raise BadReference(
            f"segment {name!r} has mode {stat.S_IMODE(info.st_mode):04o}: other users may read "
            "or write it (segments are made 0600)",
            name=name,
            reason="mode",
        )


def _check_waiting(header: Header, path: str, name: str) -> None:
    """The segment still waits for a receiver, within its lease (an expired one is removed)."""
    if header.pending == 0:
        raise SegmentGone(
            f"segment {name!r} was already attached by all its {header.receivers} receivers",
            name=name,
            reason="released",
        )
    now = monotonic_now()
    if header.lease_deadline <= now:
        unlink_quietly(path)
        raise SegmentGone(
            f"segment {name!r}: its lease ended {now - header.lease_deadline:.3f}s ago, "
            f"with {header.pending} of {header.receivers} receivers not attached",
            name=name,
            reason="expired",
        )


def _open_payload(name: str, header: Header) -> int:
    """The segment's payload memfd, opened through its owner's /proc and checked
    (``_shm_memfd``: sealed against shrinking, ours alone, long enough, and the inode the
    header names, so a descriptor number reused for another file is refused)."""
    if header.memfd < 0:
        raise BadReference(
            f"segment {name!r} names no sealed payload (an old or forged segment)",
            name=name,
            reason="unsealed",
        )
    return memfd.open_payload(name, header.owner.pid, header.memfd, header.memfd_inode, header.total_size)


def _check_stamp(fd: int, name: str, header: Header) -> None:
    """The memfd carries the use this header names (its stamp is the header's token).

    Read with the memfd open and before the claim: the sender overwrites the stamp only
    once the name is gone, and reuses the memfd only once no receiver has it open
    (``_shm_ring``), so a receiver that passes this check reads this use's bytes."""
    if not hmac.compare_digest(os.pread(fd, STAMP_SIZE, STAMP_OFFSET), header.token):
        raise SegmentGone(
            f"segment {name!r}: its sender reused its memory for a later payload (this reference "
            "came too late)",
            name=name,
            reason="reused",
        )


def _map(fd: int, name: str, header: Header, ranges: list[ShmRef]) -> list[memoryview]:
    try:
        mapping = mmap.mmap(fd, header.total_size, mmap.MAP_SHARED, mmap.PROT_READ, **MMAP_OPTIONS)
    except OSError as exc:
        raise SharedMemoryError(f"segment {name!r} cannot be mapped: {exc}", name=name, reason="map") from exc
    whole = memoryview(mapping)
    views = [whole[PAYLOAD_OFFSET + ref.offset : PAYLOAD_OFFSET + ref.end] for ref in ranges]
    whole.release()  # the slices keep the mapping; nothing else refers to it
    return views


def _validated_header(fd: int, name: str, file_size: int, token: bytes, ranges: list[ShmRef]) -> Header:
    if file_size < HEADER.size:
        raise BadReference(
            f"segment {name!r} holds {file_size} bytes, less than a header", name=name, reason="truncated"
        )
    header = Header.unpack(os.pread(fd, HEADER.size, 0))
    if isinstance(header, str):
        raise BadReference(f"segment {name!r} has no valid header ({header})", name=name, reason=header)
    if header.owner.pid != int(name.split(".")[1]) or header.flags & FLAG_PROBE:
        raise BadReference(
            f"segment {name!r}: its header (owner pid {header.owner.pid}, flags {header.flags}) "
            "does not match its name",
            name=name,
            reason="mismatch",
        )
    if not hmac.compare_digest(header.token, token):
        raise BadReference(
            f"segment {name!r}: the reference's token does not match the segment's", name=name, reason="token"
        )
    if file_size < header.total_size:
        raise BadReference(
            f"segment {name!r} holds {file_size} bytes, its header needs {header.total_size}",
            name=name,
            reason="truncated",
        )
    for ref in ranges:
        if ref.end > header.payload_length:
            raise BadReference(
                f"reference to {name!r}: range {ref.offset}+{ref.length} ends past its payload of "
                f"{header.payload_length} bytes",
                name=name,
                reason="range",
            )
    return header


def _lock(fd: int, name: str) -> None:
    """Take the exclusive flock without blocking forever (a stopped process might hold it)."""
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SharedMemoryError(
                    f"segment {name!r} stayed locked by another process for {LOCK_PATIENCE}s",
                    name=name,
                    reason="locked",
                ) from None
            time.sleep(0.001)
