"""The room-wide bus as seen by one participant: a bounded inbox of broadcasts.

A pump task reads the participant's mesh bus and queues ``(sender, value)`` pairs;
``messages()`` iterates them. The queue is bounded twice: in messages (``capacity``)
and in bytes (``max_bytes``: the :attr:`~patterns.Envelope.weight` of what it holds,
the decoder's estimate of a value's memory, from its frame's length and its CBOR
items; a frame's length alone would undercount a body of small maps 30-fold). When
nobody reads and either bound is reached, new messages are dropped, counted in
``dropped`` (``dropped_for_bytes`` for the byte budget) and logged, on the 1st, 2nd,
4th, 8th... drop so that a flood cannot flood the log too: never lost silently.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import trio

from consensus.room.protocol import SAY
from patterns import Bus, Envelope

__all__ = ["DEFAULT_INBOX_BYTES", "Inbox"]

log = logging.getLogger("consensus.room")

DEFAULT_INBOX_BYTES: Final = 64 * 1024 * 1024


class Inbox:
    def __init__(self, capacity: int = 1024, max_bytes: int = DEFAULT_INBOX_BYTES) -> None:
        if type(max_bytes) is not int or max_bytes < 1:
            raise ValueError(f"the inbox byte budget must be a positive integer, got {max_bytes!r}")
        self._send, self._receive = trio.open_memory_channel[tuple[str, Any, int]](capacity)
        self.max_bytes = max_bytes
        self.held_bytes = 0  # weight of the messages queued and not yet taken
        self.dropped = 0
        self.dropped_for_bytes = 0
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

    def offer(self, envelope: Envelope) -> bool:
        """Queue one broadcast if both budgets allow; False (counted, logged) if dropped.

        Raises ``trio.ClosedResourceError`` once the inbox is closed."""
        size = max(envelope.weight, envelope.size, 1)
        if self.held_bytes + size > self.max_bytes:
            self.dropped_for_bytes += 1
            self._drop(envelope, f"it holds {self.held_bytes} bytes of {self.max_bytes}")
            return False
        try:
            self._send.send_nowait((envelope.sender, envelope.body, size))
        except trio.WouldBlock:
            self._drop(envelope, "every slot is taken")
            return False
        self.held_bytes += size
        return True

    def _drop(self, envelope: Envelope, why: str) -> None:
        self.dropped += 1
        if self.dropped & (self.dropped - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood stays a few lines
            log.warning(
                "inbox full (%s): dropped a broadcast of %d bytes from %r (%d dropped so far)",
                why,
                max(envelope.weight, envelope.size),
                envelope.sender,
                self.dropped,
            )

    async def pump(self, bus: Bus, on_other: Callable[[Envelope], None] | None = None, *, own: str | None = None,
                   on_each: Callable[[Envelope], None] | None = None) -> None:  # fmt: skip
        """Queue the broadcasts (``say``); hand any other kind to ``on_other`` (which must not block).

        ``own``: this participant's name; what comes back from it (a relayed room sends a
        member's broadcast on to everyone, itself included) is dropped. ``on_each`` sees every
        frame first (the host relays from there; it must not block either)."""
        async for envelope in bus.envelopes():
            if own is not None and envelope.sender == own:
                continue
            if on_each is not None:
                on_each(envelope)
            if envelope.kind != SAY:
                if on_other is not None:
                    on_other(envelope)
                continue
            if self._seen((envelope.sender, envelope.id)):
                continue
            try:
                self.offer(envelope)
            except trio.ClosedResourceError:
                return

    async def messages(self) -> AsyncIterator[tuple[str, Any]]:
        async for sender, value, size in self._receive:
            self.held_bytes -= size
            yield sender, value

    def close(self) -> None:
        self._send.close()
