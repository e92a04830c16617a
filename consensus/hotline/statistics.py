"""The record :meth:`~consensus.hotline.line.Hotline.statistics` returns, and how it is put together.

A line's counters live in three places: the protocol (connections, asks served, heartbeats),
its ask table (asks open, answered, expired, stale replies) and the socket (frames sent and
received); this record adds them up in the words of ``docs/statistics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.hotline.asks import AskTableStatistics
from consensus.hotline.events import ProtocolStatistics
from patterns import SocketStatistics

__all__ = ["HotlineStatistics", "line_statistics"]


@dataclass(frozen=True, slots=True)
class HotlineStatistics:
    connected: bool
    connections: int  # connections made (greeted) since the line opened
    sent: int
    received: int
    asks_open: int
    asks_answered: int
    asks_expired: int
    asks_failed: int  # peer lost, or a reply of the wrong kind
    stale_replies: int  # replies to unknown, expired or finished asks: dropped
    asks_unsent: int  # failed (the peer lost) while waiting to be sent: dropped, never sent
    asks_served: int  # asks from the peer this side answered
    malformed: int
    silent_disconnects: int  # the peer missed its heartbeats
    refused: int  # connections closed before the peer's hello (a dialer: the line is taken)
    stale_hellos: int  # sealed lines: hellos that did not echo this end's nonce (docs/statistics.md)
    reading_paused: int  # times a reader outside trio stopped reading at a bound (docs/statistics.md)
    recalls: int = 0  # times trio took back a line lent to the threads serving a plain on_ask, for its asks


def line_statistics(connected: bool, t: AskTableStatistics, p: ProtocolStatistics, s: SocketStatistics,
                    foreign_open: int, held_back: int, recalls: int = 0) -> HotlineStatistics:  # fmt: skip
    """One line's record; ``foreign_open`` counts asks open on a reader outside the trio
    thread, ``held_back`` the times such a reader stopped reading at a bound, ``recalls`` the
    times trio took the line back from the threads serving its plain ``on_ask``."""
    return HotlineStatistics(
        connected=connected, connections=p.connections, sent=s.messages_sent,
        received=s.messages_received,
        asks_open=t.open + foreign_open, asks_answered=t.answered, asks_expired=t.expired, asks_failed=t.failed,
        stale_replies=t.stale, asks_unsent=t.unsent, asks_served=p.asks_served,
        malformed=p.malformed + t.malformed + s.malformed, silent_disconnects=p.silent_disconnects,
        refused=p.refused, stale_hellos=p.stale_hellos, reading_paused=held_back, recalls=recalls,
    )  # fmt: skip
