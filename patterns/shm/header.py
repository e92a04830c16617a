"""The fixed header at the start of every shared-memory segment, and who owns a segment.

Layout (little-endian, 96 bytes at offset 0; the payload starts at :data:`PAYLOAD_OFFSET`)::

    offset size field
     0      8   magic            b"NNGCSHM1"
     8      2   version          1
    10      2   flags            bit 0: a same-host probe or beacon (see ``_shm_beacon``): never attachable; others 0
    12      4   payload offset   4096 (page aligned, so any dtype is aligned)
    16      8   owner pid
    24      8   owner start time /proc/<pid>/stat field 22 (clock ticks since boot):
                                 with the pid, survives pid reuse
    32      8   owner pid ns     inode of /proc/<pid>/ns/pid; a pid is only judged
                                 in its own pid namespace
    40     16   token            random; must equal the token of every reference
    56      8   payload length   bytes
    64      8   lease deadline   float64 seconds on CLOCK_MONOTONIC (system-wide on Linux,
                                 unless a peer runs in its own time namespace)
    72      4   receivers        how many receivers the segment was made for
    76      4   pending          receivers that still have to attach; changed only under
                                 an exclusive ``flock`` on the file
    80      4   payload fd       the owner's descriptor of the memfd holding the payload
                                 (``_shm_memfd``), or -1 (a probe, which has none)
    84      4   (zero)
    88      8   payload inode    that memfd's inode number: what binds the descriptor
                                 a receiver opens to this segment (0 for a probe)

The file in the segment directory carries the header (and is as long as the segment,
sparse: it holds no payload bytes); the memfd carries the payload from
:data:`PAYLOAD_OFFSET`. Its first page is zeros but for the *stamp*: the token of the
use it carries now, at :data:`STAMP_OFFSET` (a memfd is reused for later payloads,
``_shm_ring``; a receiver refuses a memfd whose stamp is not its header's token).

Everything here is pure except the few ``/proc`` readers at the bottom (who owns a
segment, how much room a new one may take).
"""

from __future__ import annotations

import math
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from patterns.shm.ref import MAX_SEGMENT_SIZE, TOKEN_SIZE

__all__ = [
    "DEFAULT_DIRECTORY",
    "DIRECTORY_ENV",
    "FLAG_PROBE",
    "HEADER",
    "MAGIC",
    "MMAP_OPTIONS",
    "PAYLOAD_OFFSET",
    "PENDING",
    "PENDING_OFFSET",
    "STAMP_OFFSET",
    "STAMP_SIZE",
    "VERSION",
    "Header",
    "OwnerIdentity",
    "folder_name",
    "free_bytes",
    "monotonic_now",
    "owner_alive",
    "process_identity",
    "segment_directory",
    "start_time",
    "unlink_quietly",
]

MAGIC: Final = b"NNGCSHM1"
VERSION: Final = 2  # 2: the payload moved to a sealed memfd (the payload fd field)
FLAG_PROBE: Final = 1
PAYLOAD_OFFSET: Final = 4096
HEADER: Final = struct.Struct("<8sHHIQQQ16sQdIIi4xQ")
PENDING: Final = struct.Struct("<I")
PENDING_OFFSET: Final = 76
STAMP_OFFSET: Final = 0  # in the payload memfd: the token of the use it carries
STAMP_SIZE: Final = TOKEN_SIZE
_MAX_RECEIVERS: Final = 2**32 - 1

MMAP_OPTIONS: Final[dict[str, Any]] = {"trackfd": False} if sys.version_info >= (3, 13) else {}
"""From Python 3.13 on, a mapping need not keep a duplicate of its file descriptor."""

DEFAULT_DIRECTORY: Final = "/dev/shm"
DIRECTORY_ENV: Final = "NNG_CONSENSUS_SHM_DIR"

assert HEADER.size == 96 and struct.calcsize("<8sHHIQQQ16sQdI") == PENDING_OFFSET


def segment_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """Where segments live: ``directory`` if given, else ``$NNG_CONSENSUS_SHM_DIR``, else /dev/shm."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(DIRECTORY_ENV) or DEFAULT_DIRECTORY)


def folder_name(directory: str | os.PathLike[str] | None = None) -> str:
    """:func:`segment_directory` as a string, without building a Path (a receive's hot path)."""
    if directory is None:
        return os.environ.get(DIRECTORY_ENV) or DEFAULT_DIRECTORY
    return os.fspath(directory) or "."  # as Path("") would


def monotonic_now() -> float:
    """CLOCK_MONOTONIC in seconds: the clock of every lease (one clock for the whole host)."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True, slots=True)
class OwnerIdentity:
    """A process as the header records it: pid, start time and pid namespace."""

    pid: int
    start_time: int
    pid_ns: int


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded segment header (see the module docstring for the layout)."""

    flags: int
    owner: OwnerIdentity
    token: bytes
    payload_length: int
    lease_deadline: float
    receivers: int
    pending: int
    memfd: int = -1
    """The owner's descriptor of the payload memfd; -1 for a probe."""
    memfd_inode: int = 0
    """That memfd's inode number (0 for a probe)."""

    @property
    def total_size(self) -> int:
        """The file size this header needs: header page plus payload."""
        return PAYLOAD_OFFSET + self.payload_length

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            VERSION,
            self.flags,
            PAYLOAD_OFFSET,
            self.owner.pid,
            self.owner.start_time,
            self.owner.pid_ns,
            self.token,
            self.payload_length,
            self.lease_deadline,
            self.receivers,
            self.pending,
            self.memfd,
            self.memfd_inode,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header | str:
        """The header in ``data``, or the reason it is not one: "magic", "version" or "header"."""
        if len(data) < HEADER.size:
            return "header"
        (magic, version, flags, payload_offset, pid, start, pid_ns, token, length, lease, receivers,
         pending, memfd, memfd_inode) = HEADER.unpack_from(data)  # fmt: skip
        if magic != MAGIC:
            return "magic"
        if version != VERSION or payload_offset != PAYLOAD_OFFSET:
            return "version"
        if (
            pid == 0
            or length > MAX_SEGMENT_SIZE
            or not math.isfinite(lease)
            or not 1 <= receivers <= _MAX_RECEIVERS
            or pending > receivers
            or flags & ~FLAG_PROBE
            or memfd < -1
        ):
            return "header"
        assert len(token) == TOKEN_SIZE
        owner = OwnerIdentity(pid, start, pid_ns)
        return cls(flags, owner, token, length, lease, receivers, pending, memfd, memfd_inode)


def unlink_quietly(path: str | os.PathLike[str]) -> None:
    """Remove a segment's name; someone else having removed it first is fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- /proc readers


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the parenthesised command), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command (field 2) may hold spaces and parentheses: split after the last ")".
    return raw[raw.rindex(b")") + 2 :].decode("ascii", "replace").split()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None if ``pid`` is gone: with
    the pid, what names a process, since pids are reused (a segment header's owner)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _pid_namespace(pid: int | str) -> int:
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return 0


_cached: tuple[int, OwnerIdentity] | None = None


def process_identity() -> OwnerIdentity:
    """This process as a segment owner (cached per pid, so a forked child sees itself)."""
    global _cached
    pid = os.getpid()
    if _cached is None or _cached[0] != pid:
        fields = _stat_fields(pid)
        start = int(fields[19]) if fields else 0  # field 22 is index 22 - 3
        _cached = (pid, OwnerIdentity(pid, start, _pid_namespace("self")))
    return _cached[1]


def owner_alive(owner: OwnerIdentity) -> bool | None:
    """Whether the recorded owner still runs; ``None`` when this process cannot tell.

    Dead means: no such pid, a different start time (the pid was reused), or a zombie
    (it runs no code and holds no mapping). ``None`` when the owner lived in another pid
    namespace (its pid means nothing here): only its lease can free the segment then.
    """
    if owner.pid_ns != _pid_namespace("self") or owner.pid_ns == 0:
        return None
    fields = _stat_fields(owner.pid)
    if fields is None or len(fields) < 20:
        return False
    if fields[0] in ("Z", "X", "x"):
        return False
    return fields[19] == str(owner.start_time)


def free_bytes(directory: str) -> int:
    """Bytes a spare may come out of: the free space of ``directory``'s filesystem, and the
    memory available (tmpfs pages are memory: ``MemAvailable``, and the room left under
    this process's cgroup memory limit, v1 or v2); 0 if the space cannot be asked."""
    try:
        info = os.statvfs(directory)
    except OSError:
        return 0
    return min(info.f_bavail * info.f_frsize, _memory_headroom())


def _memory_headroom() -> int:
    room = 1 << 62
    try:
        with open("/proc/meminfo", "rb") as meminfo:
            for entry in meminfo:
                if entry.startswith(b"MemAvailable:"):
                    room = int(entry.split()[1]) * 1024
                    break
        with open("/proc/self/cgroup", "rb") as groups:
            lines = groups.read().decode("ascii", "replace").splitlines()
    except (OSError, ValueError):
        return room
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            files = (f"/sys/fs/cgroup{path}/memory.max", f"/sys/fs/cgroup{path}/memory.current")
        elif "memory" in controllers.split(","):  # v1
            base = f"/sys/fs/cgroup/memory{path}"
            files = (f"{base}/memory.limit_in_bytes", f"{base}/memory.usage_in_bytes")
        else:
            continue
        try:
            with open(files[0], "rb") as limit, open(files[1], "rb") as usage:
                text = limit.read().strip()
                if text != b"max":
                    room = min(room, int(text) - int(usage.read().strip()))
        except (OSError, ValueError):
            continue
    return max(room, 0)
