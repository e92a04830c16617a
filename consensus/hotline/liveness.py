"""The two background loops of a hotline besides reading: connections and heartbeats.

Both only report to the :class:`~consensus.hotline.protocol.LineProtocol` (a connection
opened or closed; a heartbeat passed; a hello sent) and carry out what it says: send a
hello or a ping, fail the asks a lost connection ended, close a connection whose peer
went silent.
"""

from __future__ import annotations

import logging

import trio

from consensus.hotline.events import Disconnected
from consensus.hotline.link import Link
from consensus.hotline.protocol import LineProtocol
from consensus.hotline.reader import Reader

__all__ = ["heartbeats", "watch_connections"]

log = logging.getLogger("consensus.hotline")


async def watch_connections(link: Link, protocol: LineProtocol, reader: Reader) -> None:
    """Tell the protocol of every connection that opens and closes. NNG's notices may come
    faster than this task looks: a connection that came and went between two looks (a
    listener that refuses a second peer closes it at once) is reported without its id."""
    peers_state = link.pair.peers_state
    seen_total = peers_state.connected_total
    seen: int | None = None  # the connection this task saw last
    while True:
        peers = link.pair.peers
        current = next(iter(peers)).id if peers else None
        now = trio.current_time()
        new = peers_state.connected_total - seen_total
        seen_total = peers_state.connected_total
        changed = False
        for gone in {seen, protocol.pipe} - {None, current}:
            # (a hello may come before NNG's notice of its connection: not gone, only early)
            if gone is not None and peers_state.was_removed(gone):
                _report(reader, protocol.pipe_down(gone, now))
                changed = True  # even unreported, the protocol forgot it (reader.notify tells the server)
        if current is not None and current != seen:
            new -= 1
        if new > 0:  # connections opened and closed unseen
            changed |= _report(reader, protocol.pipe_down(None, now))
        if current is not None:
            hello = protocol.pipe_up(current, now)
            if hello is not None:
                changed = True
                if await link.send_within(hello, protocol.heartbeat):
                    protocol.hello_sent(hello)  # (it may connect the line: notified below)
        seen = current
        if changed:
            reader.notify()
        if peers_state.connected_total == seen_total and link.pair.peers == peers:  # nothing since the look
            await link.pair.wait_peers_changed()


def _report(reader: Reader, event: Disconnected | None) -> bool:
    if event is None:
        return False
    reader.disconnected(event)
    return True


async def heartbeats(link: Link, protocol: LineProtocol, reader: Reader) -> None:
    """Tick the protocol every heartbeat: it pings, or drops a peer silent for too long."""
    while True:
        await trio.sleep(protocol.heartbeat)
        out = protocol.tick(trio.current_time())
        if isinstance(out, Disconnected):
            log.warning("hotline %s: %s; disconnecting", protocol.name, out.reason)
            reader.disconnected(out)
            link.pair.disconnect(out.pipe)
        elif out is not None:
            await link.send_within(out, protocol.heartbeat)
