"""The set of connected peers (NNG pipes) of one socket, as trio-side state.

NNG reports pipe events on its own threads. The socket hops each event into the trio
thread with ``TrioToken.run_sync_soon``; this class is only ever touched from trio,
so it needs no lock, and waiters are woken with a fresh :class:`trio.Event`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import trio

__all__ = ["Peer", "PeerSet"]


@dataclass(frozen=True, slots=True)
class Peer:
    """One connected peer: NNG's pipe id and best-effort descriptions of both ends.

    ``address`` is the remote end (``"127.0.0.1:38184"``, ``"?"`` where NNG has none,
    as on inproc); ``local`` is this side's end of the same connection, which tells a
    dialer which of its own addresses the listener can reach.
    """

    id: int
    address: str
    local: str = "?"


class PeerSet:
    """Connected peers, with waits on their count. Trio-thread only."""

    REMEMBER_REMOVED = 4096

    def __init__(self) -> None:
        self._peers: dict[int, Peer] = {}
        self._removed: OrderedDict[int, None] = OrderedDict()  # the latest, for was_removed()
        self._changed = trio.Event()
        self.connected_total = 0
        self.disconnected_total = 0

    def add(self, peer: Peer) -> bool:
        """Note a connection; False if it is known already, or closed already: NNG runs a
        pipe's callbacks on its own threads, and one that closes at once can report its
        removal before its arrival (noting it then would count a ghost peer forever)."""
        if peer.id in self._removed:
            return False
        if peer.id not in self._peers:
            self._peers[peer.id] = peer
            self.connected_total += 1
            self._notify()
            return True
        return False

    def remove(self, pipe_id: int) -> None:
        self._removed[pipe_id] = None
        if len(self._removed) > self.REMEMBER_REMOVED:
            self._removed.popitem(last=False)
        if self._peers.pop(pipe_id, None) is not None:
            self.disconnected_total += 1
            self._notify()

    def was_removed(self, pipe_id: int) -> bool:
        """Has this connection closed (among the last 4096 to close)? A message can be read
        before its connection's arrival is noted here, or after its departure: this tells
        the two apart."""
        return pipe_id in self._removed

    def clear(self) -> None:
        self._peers.clear()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def snapshot(self) -> frozenset[Peer]:
        return frozenset(self._peers.values())

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, pipe_id: object) -> bool:
        return pipe_id in self._peers

    async def wait_until(self, predicate: Callable[[frozenset[Peer]], bool]) -> frozenset[Peer]:
        """Wait until ``predicate(snapshot)`` holds, and return that snapshot."""
        while True:
            peers = self.snapshot()
            if predicate(peers):
                await trio.lowlevel.checkpoint()
                return peers
            await self._changed.wait()

    async def wait_changed(self) -> frozenset[Peer]:
        """Wait for the next connect or disconnect, and return the new snapshot."""
        await self._changed.wait()
        return self.snapshot()
