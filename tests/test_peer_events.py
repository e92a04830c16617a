"""Pipe events out of order: NNG reports a connection's arrival and its removal on its own
threads, and a connection that closes at once (a dialer undialled as it connected, say)
can report its removal first. The peer set must not then count a ghost for ever (a relayed
room's member waited for its mesh to shrink to the host's one link, and never saw it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

import patterns
from patterns import Peer, PeerSet


def test_a_connection_reported_after_its_removal_is_not_counted() -> None:
    peers = PeerSet()
    peers.remove(7)
    assert peers.add(Peer(7, "?")) is False
    assert len(peers) == 0 and peers.connected_total == 0 and peers.was_removed(7)
    assert peers.add(Peer(8, "127.0.0.1:9")) is True and peers.add(Peer(8, "127.0.0.1:9")) is False
    assert len(peers) == 1 and peers.connected_total == 1


@dataclass
class _Pipe:
    """What the socket's NNG callbacks read of a pipe."""

    id: int
    remote_address: str = "?"
    local_address: str = "?"


async def test_a_socket_whose_pipe_events_come_reversed_keeps_no_ghost(address: Callable[[str], str]) -> None:
    async with patterns.Bus(listen=address("inproc")) as bus:
        assert bus._sock is not None
        pipe = _Pipe(0x7FFF_0001)
        bus._pipe_removed(pipe)  # (NNG threads: the removal first, then the arrival,
        bus._sock._pipes[pipe.id] = pipe  # for which pynng lists the pipe again)
        bus._pipe_added(pipe)
        with trio.fail_after(5):
            while not bus.peers_state.was_removed(pipe.id) or pipe.id in bus._sock._pipes:
                await trio.sleep(0.01)
        assert bus.peers == frozenset() and bus.statistics().peers_connected_total == 0
