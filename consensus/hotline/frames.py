"""The hotline's frame kinds, its statistics record, and the handle that answers one ask.

See :mod:`consensus.hotline.line` for the line itself and ``docs/hotline.md`` for the frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from consensus.failure import Failure
from patterns import Envelope

if TYPE_CHECKING:
    from consensus.hotline.serve import ServingLine

__all__ = ["ASK", "CHUNK", "END", "ERROR", "MSG", "PING", "PONG", "REPLY", "HotlineStatistics", "IncomingAsk"]

MSG, ASK, REPLY, CHUNK, END, ERROR, PING, PONG = (
    "msg",
    "ask",
    "reply",
    "chunk",
    "end",
    "error",
    "ping",
    "pong",
)


@dataclass(frozen=True, slots=True)
class HotlineStatistics:
    connected: bool
    connections: int  # connections made since the line opened
    sent: int
    received: int
    asks_open: int
    asks_answered: int
    asks_expired: int
    asks_failed: int  # peer lost, or a reply of the wrong kind
    stale_replies: int  # replies to unknown, expired or finished asks: dropped
    asks_served: int  # asks from the peer this side answered
    malformed: int
    silent_disconnects: int  # the peer missed its heartbeats


class IncomingAsk:
    """An ask from the peer, to answer with :meth:`reply`, or :meth:`chunk` ... :meth:`end`,
    or :meth:`fail`. Obtained from :meth:`Hotline.receive_ask` when there is no ``on_ask``."""

    def __init__(self, line: ServingLine, envelope: Envelope, pipe: int, value: Any, stream: bool) -> None:
        self.value = value
        self.stream = stream
        wall = envelope.deadline  # the wire's wall clock, brought to trio's once (as patterns does)
        self.deadline = None if wall is None else trio.current_time() + (wall - time.time())
        self.id = envelope.id
        self._line = line
        self._pipe = pipe
        self.done = False

    async def reply(self, value: Any) -> None:
        await self._finish(END if self.stream else REPLY, value)

    async def chunk(self, value: Any) -> None:
        if not self.stream:
            raise ValueError(f"ask {self.id} wants one reply, not a stream: use reply()")
        if self.done:
            raise ValueError(f"ask {self.id} is already answered")
        await self._line._answer(self, CHUNK, value)

    async def end(self, value: Any = None) -> None:
        await self._finish(END, value)

    async def fail(self, error: BaseException | Failure) -> None:
        err = error if isinstance(error, Failure) else Failure.from_exception(error)
        await self._finish(ERROR, err.to_wire())

    async def _finish(self, kind: str, value: Any) -> None:
        if self.done:
            raise ValueError(f"ask {self.id} is already answered")
        self.done = True
        await self._line._answer(self, kind, value)
