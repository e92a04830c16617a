"""The same-host proof for tcp peers: each end leaves a beacon for the connection.

Shared memory is only for a peer that reads the same ``/dev/shm``. Over ``ipc://`` and
``inproc://`` that is certain; over tcp (and ws, tls) it must be proven. When a tcp
connection opens, each end with shared memory enabled writes a tiny segment (a probe:
it can never be attached as a payload) named after the connection *as that end sees
it*: ``nngc.<pid>.<hash(local address | remote address)>``. An end that finds, in its
own segment directory, the beacon named for the other direction (``hash(its remote |
its local)``), written by a live process of its own pid namespace, knows its peer wrote
into the same ``/dev/shm`` and can reach its ``/proc``: the peer shares the host and
can attach what this end places there (payloads are opened through ``/proc/<pid>/fd``).

The proof needs no message, so it works for every pattern, one-way ones (push/pull)
included, and both ends learn it independently. A peer elsewhere never has a beacon
here, so its buffers go inline. A beacon lives as long as its connection (removed when
the connection closes or the socket does); one left by a killed process goes with the
sweep (its owner is dead), or at its lease.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Final

import patterns.shm.spare as spares
from patterns._peers import Peer
from patterns.errors import SharedMemoryError
from patterns.shm import creation
from patterns.shm.header import FLAG_PROBE, HEADER, Header, owner_alive, segment_directory
from patterns.shm.ref import NAME_PREFIX
from patterns.shm.segment import SharedBuffer

__all__ = ["Beacons", "beacon_suffix"]

log = logging.getLogger("patterns")

BEACON_LEASE: Final = 7 * 24 * 3600.0  # a connection's lifetime; a dead owner's beacon is swept sooner


def beacon_suffix(local: str, remote: str) -> str:
    """The 32 hex digits naming the beacon of a connection seen from ``local`` to ``remote``."""
    return hashlib.blake2b(f"{local}|{remote}".encode(), digest_size=16, person=b"nngc-beacon").hexdigest()


def _is_network(peer: Peer) -> bool:
    return peer.address != "?" and ":" in peer.address and ":" in peer.local


def _reachable(path: Path) -> bool:
    """Is the beacon's owner a live process of our pid namespace? A receiver opens a payload
    through its sender's ``/proc/<pid>/fd`` (``_shm_memfd``): a peer that shares /dev/shm
    but not our pid namespace could not reach ours, nor we its, so it gets bytes inline."""
    try:
        with open(path, "rb", buffering=0) as beacon:
            header = Header.unpack(beacon.read(HEADER.size))
    except OSError:
        return False
    return isinstance(header, Header) and owner_alive(header.owner) is True


class Beacons:
    """The beacons of one socket's tcp connections, and which peers proved they share the host."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self._directory = directory
        self._mine: dict[int, SharedBuffer] = {}
        self._proven: set[int] = set()
        self._in_use = False

    def connected(self, peer: Peer) -> None:
        """A connection opened: leave this end's beacon for it (over tcp, ws, tls).

        The first connection also marks the segment directory as in use by this socket
        (until :meth:`close`): spare segments may be kept there meanwhile (``_shm_spare``)."""
        if not self._in_use:
            self._in_use = True
            spares.register(self, spares.directory_key(self._directory))
        if not _is_network(peer) or peer.id in self._mine:
            return
        try:
            self._mine[peer.id] = creation.make(
                SharedBuffer, 1, lease=BEACON_LEASE, receivers=1, directory=self._directory, flags=FLAG_PROBE,
                source=memoryview(b"\0"), suffix=beacon_suffix(peer.local, peer.address),
            )  # fmt: skip
        except (SharedMemoryError, OSError) as exc:  # no proof then: buffers for this peer go inline
            log.info("no same-host beacon for %s -> %s: %s", peer.local, peer.address, exc)

    def disconnected(self, pipe_id: int) -> None:
        self._proven.discard(pipe_id)
        beacon = self._mine.pop(pipe_id, None)
        if beacon is not None:
            beacon.discard()

    def shares_host(self, peer: Peer) -> bool:
        """Has ``peer`` left its beacon for this connection in our segment directory?"""
        if peer.id in self._proven:
            return True
        if not _is_network(peer):
            return False
        pattern = f"{NAME_PREFIX}*.{beacon_suffix(peer.address, peer.local)}"
        try:
            found = any(_reachable(path) for path in Path(segment_directory(self._directory)).glob(pattern))
        except OSError:
            return False
        if found:
            self._proven.add(peer.id)
        return found

    def close(self) -> None:
        """The socket closes: its beacons go, and the spares of a directory no socket uses now."""
        for pipe_id in list(self._mine):
            self.disconnected(pipe_id)
        if self._in_use:
            self._in_use = False
            spares.unregister(self)
