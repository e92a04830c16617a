"""Who is connected: NNG's pipe callbacks, hopped onto trio, and what a socket tells of its peers.

A mixin of :class:`~patterns._socket.BaseSocket`. NNG calls the pipe callbacks on its own
threads; they only hop the news onto the trio thread (``run_sync_soon``), where the peer
set (:class:`~patterns._peers.PeerSet`) and the same-host beacons are updated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pynng
import trio

from patterns._nng import translate
from patterns._peers import Peer, PeerSet
from patterns.shm.beacon import Beacons

__all__ = ["Connections"]


def _describe(pipe: Any, which: str) -> str:
    try:
        return str(getattr(pipe, which))
    except Exception:  # noqa: BLE001 - inproc pipes have no socket address; any failure is harmless here
        return "?"


class Connections:
    """Peers of one socket, from NNG's pipe callbacks (a mixin)."""

    # Set by BaseSocket.__init__ (and open()).
    peers_state: PeerSet
    _admit: Callable[[str], bool] | None
    _token: trio.lowlevel.TrioToken | None
    _closed: bool
    _beacons: Beacons | None
    _sock: Any  # the pynng socket, None once closed
    _require_open: Callable[[str], Any]

    def _pipe_arriving(self, pipe: Any) -> None:  # runs on an NNG thread, before the pipe carries a frame
        assert self._admit is not None
        if not self._admit(_describe(pipe, "remote_address")):
            pipe.close()

    def _pipe_added(self, pipe: Any) -> None:  # runs on an NNG thread
        self._hop(
            self._connected,
            Peer(pipe.id, _describe(pipe, "remote_address"), _describe(pipe, "local_address")),
        )

    def _pipe_removed(self, pipe: Any) -> None:  # runs on an NNG thread
        self._hop(self._disconnected, pipe.id)

    def _connected(self, peer: Peer) -> None:  # trio side
        if not self.peers_state.add(peer):  # it closed before NNG reported its arrival:
            if self._sock is not None and self.peers_state.was_removed(peer.id):
                self._sock._pipes.pop(peer.id, None)  # pynng re-listed it then; unlist the ghost
            return
        if self._beacons is not None and not self._closed:
            self._beacons.connected(peer)  # the same-host proof for a tcp peer (``_shm_beacon``)

    def _disconnected(self, pipe_id: int) -> None:  # trio side
        self.peers_state.remove(pipe_id)
        if self._beacons is not None:
            self._beacons.disconnected(pipe_id)

    def disconnect(self, pipe_id: int) -> bool:
        """Close one connection (a peer that fell silent, say); a dialer on either side
        may connect again. Returns False if that connection is already gone."""
        sock = self._require_open("disconnect()")
        pipe = next((p for p in sock.pipes if p.id == pipe_id), None)
        if pipe is None:
            return False
        try:
            pipe.close()
        except pynng.NNGException as exc:
            if isinstance(exc, (pynng.Closed, pynng.exceptions.NoEntry)):  # it went while we looked
                return False
            raise translate(exc, operation=f"disconnect({pipe_id})", state=repr(self)) from exc
        return True

    def _hop(self, fn: Any, arg: Any) -> None:
        token = self._token
        if token is None or self._closed:
            return
        try:
            token.run_sync_soon(fn, arg)
        except trio.RunFinishedError:
            pass

    @property
    def peers(self) -> frozenset[Peer]:
        """The peers connected now."""
        return self.peers_state.snapshot()

    async def wait_for_peers(self, count: int = 1) -> frozenset[Peer]:
        """Wait until at least ``count`` peers are connected; returns them."""
        self._require_open(f"wait_for_peers({count})")
        return await self.peers_state.wait_until(lambda peers: len(peers) >= count)

    async def wait_peers_changed(self) -> frozenset[Peer]:
        """Wait for the next peer to connect or disconnect; returns the new set."""
        self._require_open("wait_peers_changed()")
        return await self.peers_state.wait_changed()
