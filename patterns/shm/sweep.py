"""The sweep: remove this toolkit's shared-memory segments that nobody can still need.

A segment's name is removed when one of these holds (checked in this order):

- ``RELEASED``: its ``pending`` count is 0 (every receiver attached; the last one died
  between counting itself and unlinking);
- ``EXPIRED``: its lease deadline has passed (``now`` on CLOCK_MONOTONIC);
- ``OWNER_DEAD``: its owner process is gone, was reused (another start time) or is a
  zombie; judged only for owners in this process's pid namespace;
- ``GARBAGE``: no valid header (or a file shorter than its header says) and last
  modified more than ``grace`` seconds ago (a segment being created is briefly headerless).

Anything else is kept: a live owner's unexpired segment is never removed. Each removal
verdict, once true, stays true (a lease does not come back, a dead pid does not revive,
a name is never reused), so several processes may sweep the same directory at once: a
file that vanished under one sweeper is counted as ``vanished``, nothing more. Entries
named ``nngc.*`` that do not match the strict name pattern, or are not regular files,
are not ours and are left alone. Removing the name never breaks a mapping: receivers
that attached keep their views.

Only names are swept: a segment's payload is a memfd (``_shm_memfd``), which the kernel
frees by itself once no process holds or maps it, however its owner ended.

:func:`judge` is the pure decision; :func:`sweep` does the IO around it.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from patterns.errors import BadReference
from patterns.shm.header import HEADER, Header, OwnerIdentity, monotonic_now, owner_alive, segment_directory
from patterns.shm.ref import NAME_PREFIX, check_name

__all__ = ["DEFAULT_GRACE", "SweepReport", "Verdict", "judge", "sweep"]

DEFAULT_GRACE: Final = 60.0
"""Seconds a headerless ``nngc.*`` file is left alone (it may be a segment being made)."""


class Verdict(Enum):
    """What the sweep does with one segment, and why."""

    KEEP = "keep"
    RELEASED = "released"
    EXPIRED = "expired"
    OWNER_DEAD = "owner-dead"
    GARBAGE = "garbage"


def judge(
    header: Header | None,
    *,
    name_pid: int,
    now: float,
    age: float,
    grace: float,
    is_alive: Callable[[OwnerIdentity], bool | None],
) -> Verdict:
    """Decide one segment's fate from its header (None: unreadable), ``now`` and its file's age.

    ``is_alive(owner)`` says whether the owner runs (None: cannot tell); it is only
    called when the other facts leave the question open.
    """
    if header is None or header.owner.pid != name_pid:
        return Verdict.GARBAGE if age > grace else Verdict.KEEP
    if header.pending == 0:
        return Verdict.RELEASED
    if header.lease_deadline <= now:
        return Verdict.EXPIRED
    if is_alive(header.owner) is False:
        return Verdict.OWNER_DEAD
    return Verdict.KEEP


@dataclass(frozen=True, slots=True)
class SweepReport:
    """Counts of one sweep: segments examined, removed (by verdict), kept, and vanished under us."""

    examined: int = 0
    kept: int = 0
    released: int = 0
    expired: int = 0
    owner_dead: int = 0
    garbage: int = 0
    vanished: int = 0

    @property
    def removed(self) -> int:
        return self.released + self.expired + self.owner_dead + self.garbage


def sweep(
    now: float | None = None,
    *,
    directory: str | os.PathLike[str] | None = None,
    grace: float = DEFAULT_GRACE,
) -> SweepReport:
    """Remove every segment in the directory that :func:`judge` condemns at ``now``.

    ``now`` is CLOCK_MONOTONIC seconds (default: the current time); passing a later
    time sweeps as if that moment had come. A missing directory is an empty sweep.
    """
    moment = monotonic_now() if now is None else now
    counts = {verdict: 0 for verdict in Verdict}
    examined = vanished = 0
    folder = segment_directory(directory)
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return SweepReport()
    for entry in entries:
        if not entry.name.startswith(NAME_PREFIX):
            continue
        try:
            name_pid = check_name(entry.name)
        except BadReference:
            continue
        try:
            found = _observe(entry.path)
        except FileNotFoundError:
            vanished += 1
            continue
        if found is None:
            continue
        header, age = found
        examined += 1
        verdict = judge(header, name_pid=name_pid, now=moment, age=age, grace=grace, is_alive=owner_alive)
        if verdict is not Verdict.KEEP:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                vanished += 1
                continue
        counts[verdict] += 1
    return SweepReport(
        examined=examined,
        kept=counts[Verdict.KEEP],
        released=counts[Verdict.RELEASED],
        expired=counts[Verdict.EXPIRED],
        owner_dead=counts[Verdict.OWNER_DEAD],
        garbage=counts[Verdict.GARBAGE],
        vanished=vanished,
    )


def _observe(path: str) -> tuple[Header | None, float] | None:
    """(the header or None if invalid, the file's age in seconds); None if not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError:
        return None  # a symlink, a directory, unreadable: not a segment of ours
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        age = time.time() - info.st_mtime
        header = Header.unpack(os.pread(fd, HEADER.size, 0))
    finally:
        os.close(fd)
    if isinstance(header, str) or info.st_size < header.total_size:
        return None, age
    return header, age
