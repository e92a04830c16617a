"""The room-wide bus as seen by one participant: a bounded inbox of broadcasts.

A pump task reads the participant's mesh bus and queues ``(sender, value)`` pairs;
``messages()`` iterates them. When nobody reads and the queue is full, new messages
are dropped, counted in ``statistics().messages_dropped`` and logged: never lost
silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from consensus.room.protocol import SAY
from patterns import Bus, Envelope

__all__ = ["Inbox"]

log = logging.getLogger("consensus.room")


class Inbox:
    def __init__(self, capacity: int = 1024) -> None:
        self._send, self._receive = trio.open_memory_channel[tuple[str, Any]](capacity)
        self.dropped = 0
        self.duplicates = 0
        self._recent: dict[tuple[str, int], None] = {}  # insertion-ordered, bounded

    def _seen(self, key: tuple[str, int]) -> bool:
        """True for a (sender, id) already delivered: a second path during a reconnect."""
        if key in self._recent:
            self.duplicates += 1
            return True
        self._recent[key] = None
        if len(self._recent) > 4096:
            del self._recent[next(iter(self._recent))]
        return False

    async def pump(self, bus: Bus, on_other: Callable[[Envelope], None] | None = None) -> None:
        """Queue the broadcasts (``say``); hand any other kind to ``on_other`` (which must not block)."""
        async for envelope in bus.envelopes():
            if envelope.kind != SAY:
                if on_other is not None:
                    on_other(envelope)
                continue
            if self._seen((envelope.sender, envelope.id)):
                continue
            try:
                self._send.send_nowait((envelope.sender, envelope.body))
            except trio.WouldBlock:
                self.dropped += 1
                log.warning(
                    "inbox full: dropped a broadcast from %r (%d dropped so far)",
                    envelope.sender,
                    self.dropped,
                )
            except trio.ClosedResourceError:
                return

    async def messages(self) -> AsyncIterator[tuple[str, Any]]:
        async for item in self._receive:
            yield item

    def close(self) -> None:
        self._send.close()
