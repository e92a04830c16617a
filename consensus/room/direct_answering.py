"""How a member answers the host's directed messages (``room.ask`` / ``room.send``): the driver part.

Each ``direct`` frame addressed to this member runs its ``on_ask`` handler in a task of
its own (a plain handler in a thread), under the ask's timeout and the member's
``handler_timeout``; an ask's outcome goes back as the ``direct-reply`` the member's
protocol object builds (an error when there is no handler, the handler failed, or the
answer has no wire form). A send's outcome is dropped (a failure is logged).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio

from consensus.failure import Failure
from consensus.room.direct import Direct
from consensus.room.events import Send
from consensus.room.member_protocol import MemberProtocol
from consensus.runtime.handlers import Handler, run_handler
from patterns import Closed, EncodeError, MessageTooLarge

__all__ = ["DirectAnswerer"]

log = logging.getLogger("consensus.room")


class DirectAnswerer:
    """Runs ``on_ask`` for the directed messages one member receives."""

    def __init__(self, protocol: MemberProtocol, handler: Handler | None, send: Callable[[Send], Awaitable[None]], *,
                 handler_timeout: float | None, threads: trio.CapacityLimiter) -> None:  # fmt: skip
        self._protocol = protocol
        self._handler = handler
        self._send = send
        self._handler_timeout = handler_timeout
        self._threads = threads
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def handle(self, direct: Direct) -> None:
        """Answer ``direct`` in a task of its own."""
        assert self._nursery is not None
        self._nursery.start_soon(self._answer, direct)

    async def _answer(self, direct: Direct) -> None:
        limits = [t for t in (direct.timeout, self._handler_timeout) if t is not None]
        deadline = trio.current_time() + min(limits) if limits else math.inf
        outcome: tuple[bool, object]
        if self._handler is None:
            outcome = (False, Failure("NotSupported", f"{self._protocol.name!r} has no on_ask handler"))
        else:
            outcome = await run_handler(self._handler, direct.value, deadline=deadline, limiter=self._threads)
        if not direct.reply:
            if not outcome[0]:
                log.info(
                    "member %r: on_ask failed on a message from the host: %s", self._protocol.name, outcome[1]
                )
            return
        try:
            try:
                await self._send(self._protocol.direct_reply(direct, outcome))
            except (EncodeError, MessageTooLarge) as exc:  # the answer has no wire form: say so instead
                failure = Failure(type(exc).__name__, str(exc))
                await self._send(self._protocol.direct_reply(direct, (False, failure)))
        except Closed:
            pass
