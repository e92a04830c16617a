"""Do two peers share this host's shared memory? A cheap hint and a proof.

:func:`host_identity` is the hint: the kernel's boot id and the device and inode of the
segment directory. Peers whose identities differ cannot share segments (another
machine, or a container with its own /dev/shm mount). Equal identities are only a
hint: a peer can claim anything, so prove it.

:class:`HostProbe` is the proof, three messages over any transport (tcp included)::

    A: probe = HostProbe.create()            -> sends probe.name, probe.nonce
    B: answer = answer_probe(name, nonce)    -> sends answer (None: cannot read it here)
    A: probe.verify(answer); probe.close()

A writes a fresh random secret into a small probe segment; only a process that can
read A's segment directory can answer ``blake2b(nonce, key=secret)``. The probe
segment has a lease (the sweep removes it if A dies) and is never counted as attached.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from ._errors import BadReference
from ._shm_header import FLAG_PROBE, HEADER, PAYLOAD_OFFSET, Header, segment_directory
from ._shm_ref import check_name
from ._shm_segment import SharedBuffer

__all__ = ["NONCE_SIZE", "HostIdentity", "HostProbe", "answer_probe", "host_identity"]

SECRET_SIZE: Final = 32
NONCE_SIZE: Final = 16
DEFAULT_PROBE_LEASE: Final = 60.0
_PERSON: Final = b"nngc-host-probe"
_BOOT_ID: Final = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class HostIdentity:
    """The kernel boot id and the segment directory's (device, inode): equal on one host."""

    boot_id: str
    shm_dev: int
    shm_ino: int

    def to_wire(self) -> list[str | int]:
        return [self.boot_id, self.shm_dev, self.shm_ino]


def host_identity(directory: str | os.PathLike[str] | None = None) -> HostIdentity:
    """This host's identity as seen through the segment directory (must exist)."""
    with open(_BOOT_ID, encoding="ascii") as f:
        boot_id = f.read().strip()
    info = os.stat(segment_directory(directory))
    return HostIdentity(boot_id, info.st_dev, info.st_ino)


def _answer(secret: bytes, nonce: bytes) -> bytes:
    return hashlib.blake2b(nonce, key=secret, digest_size=32, person=_PERSON).digest()


class HostProbe:
    """Side A of the same-host proof: a probe segment holding a secret, and a nonce."""

    def __init__(self, buffer: SharedBuffer, secret: bytes, nonce: bytes) -> None:
        self._buffer = buffer
        self._secret = secret
        self._nonce = nonce

    @classmethod
    def create(
        cls, *, lease: float = DEFAULT_PROBE_LEASE, directory: str | os.PathLike[str] | None = None
    ) -> HostProbe:
        """Write a fresh secret into a new probe segment; send ``name`` and ``nonce`` to the peer."""
        secret = secrets.token_bytes(SECRET_SIZE)
        buffer = SharedBuffer._make(
            SECRET_SIZE,
            lease=lease,
            receivers=1,
            directory=directory,
            flags=FLAG_PROBE,
            source=memoryview(secret),
        )
        return cls(buffer, secret, secrets.token_bytes(NONCE_SIZE))

    @property
    def name(self) -> str:
        """The probe segment's name: send it to the peer."""
        return self._buffer.name

    @property
    def nonce(self) -> bytes:
        """Send it to the peer with ``name``."""
        return self._nonce

    def verify(self, answer: object) -> bool:
        """Whether ``answer`` (the peer's reply, any value) proves it read the probe."""
        return isinstance(answer, bytes) and hmac.compare_digest(answer, _answer(self._secret, self._nonce))

    def close(self) -> None:
        """Remove the probe segment. Idempotent."""
        self._buffer.discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HostProbe {self.name}>"


def answer_probe(
    name: object, nonce: object, *, directory: str | os.PathLike[str] | None = None
) -> bytes | None:
    """Side B: the answer to A's probe, or None when the probe cannot be read here.

    None means another host, another segment directory, or no such probe (gone,
    expired, or not a probe). A malformed ``name`` or ``nonce`` (they come from the
    peer) raises :class:`~patterns.BadReference`. Reads with ``pread``, maps nothing.
    """
    pid = check_name(name)
    assert isinstance(name, str)
    if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
        raise BadReference(f"probe {name!r}: the nonce must be {NONCE_SIZE} bytes", name=name, reason="shape")
    try:
        fd = os.open(
            segment_directory(directory) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        )
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        header = Header.unpack(os.pread(fd, HEADER.size, 0))
        secret = os.pread(fd, SECRET_SIZE, PAYLOAD_OFFSET)
    finally:
        os.close(fd)
    if (
        isinstance(header, str)
        or not header.flags & FLAG_PROBE
        or header.owner.pid != pid
        or header.payload_length != SECRET_SIZE
        or len(secret) != SECRET_SIZE
    ):
        return None
    return _answer(secret, nonce)
