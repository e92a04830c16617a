"""The frozen record returned by every socket's ``statistics()``."""

from __future__ import annotations

from dataclasses import dataclass, field

from patterns.shm.pool import PoolStatistics
from patterns.shm.ring import statistics as pool_statistics

__all__ = ["SocketStatistics"]


@dataclass(frozen=True, slots=True)
class SocketStatistics:
    """Counters of one socket since it was opened.

    ``malformed`` counts frames rejected on receipt, by the strict decoder or because
    the shared memory they refer to could not be attached (each one raised
    :class:`~patterns.MalformedMessage` or was skipped and logged by an iterator);
    ``stray`` counts well-formed frames that answered nothing we were waiting for
    (for example a survey reply whose correlation id matches no open survey).
    ``malformed_reasons`` splits ``malformed`` by :attr:`MalformedMessage.reason`, as
    sorted ``(reason, count)`` pairs: ``"items"``, ``"key"`` and ``"cost"`` are the
    frames refused for what they would cost to decode (``docs/wire-format.md`` 3).
    ``unauthenticated`` counts the frames a socket with a guard (a room secret) refused,
    split by :attr:`~patterns.Unauthenticated.reason` in ``unauthenticated_reasons``;
    they are not in ``malformed``.
    """

    protocol: str
    peers: int
    peers_connected_total: int
    peers_disconnected_total: int
    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    malformed: int
    stray: int
    surveys_open: int
    closed: bool
    malformed_reasons: tuple[tuple[str, int], ...] = ()
    unauthenticated: int = 0
    unauthenticated_reasons: tuple[tuple[str, int], ...] = ()
    shm_pool: PoolStatistics = field(default_factory=pool_statistics)
    """This process's pool of reused shared-memory segments, when the snapshot was taken
    (one pool per process, shared by its sockets: ``patterns.shm.ring``)."""
