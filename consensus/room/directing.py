"""The host's directed messages, the driver part: ``room.ask(name, ...)`` and ``room.send(name, ...)``.

:class:`Director` sends the ``direct`` frame the host's protocol object builds, and for an
ask waits for the matching ``direct-reply`` (the protocol object checks it and the room's
driver hands it over with :meth:`Director.answered`), turning a failure, a departure or a
silence into the exception the caller sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from consensus.errors import PeerLost, RemoteError, Timeout
from consensus.failure import Failure
from consensus.room.events import DirectAnswered, DirectLost, Send
from consensus.room.host_protocol import HostProtocol
from consensus.runtime.service import Pulse

__all__ = ["Director"]


class Director:
    """The asks one host has under way, by id."""

    def __init__(self, protocol: HostProtocol, send: Callable[[Send], Awaitable[None]], room: str) -> None:
        self._protocol = protocol
        self._send = send
        self._room = room
        self._answers: dict[int, DirectAnswered | DirectLost | None] = {}  # None until it comes
        self._answered = Pulse()

    def answered(self, event: DirectAnswered | DirectLost) -> None:
        """An answer came, or the member asked left (nobody waiting: dropped)."""
        ident = event.reply.direct_id if isinstance(event, DirectAnswered) else event.direct_id
        if ident in self._answers:
            self._answers[ident] = event
            self._answered.poke()

    async def send(self, name: str, value: Any) -> None:
        _, frame = self._protocol.calls.direct_frame(name, value, reply=False)
        await self._send(frame)

    async def ask(self, name: str, value: Any, *, timeout: float) -> Any:
        ident, frame = self._protocol.calls.direct_frame(name, value, reply=True, timeout=timeout)
        self._answers[ident] = None
        try:
            await self._send(frame)
            with trio.move_on_after(timeout):
                while (event := self._answers[ident]) is None:
                    await self._answered.wait()
        finally:
            self._answers.pop(ident, None)
            self._protocol.calls.forget_direct(ident)
        if event is None:
            raise Timeout(f"{name!r} did not answer the room {self._room!r}'s ask within {timeout} s")
        if isinstance(event, DirectLost):
            raise PeerLost(f"{name!r} left the room {self._room!r} ({event.why}) before answering its ask")
        if not event.reply.ok:
            failure: Failure = event.reply.value
            raise RemoteError(failure.type, failure.message)
        return event.reply.value
