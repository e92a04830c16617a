"""How one of a member's handlers runs (:class:`Plan`): worked out once, not per answer.

The :class:`~consensus.room.answering.Answerer` keeps one per handler: whether it is async,
its name, where it runs, and its :class:`~consensus.runtime.context.HandlerContext` per asker.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from consensus.room.events import HandlerKind
from consensus.runtime.context import HandlerContext, Kind
from consensus.runtime.handlers import Elsewhere, Handler, elsewhere

__all__ = ["MAX_ASKERS", "Plan"]

_KINDS: dict[HandlerKind, Kind] = {
    HandlerKind.POLL: "poll",
    HandlerKind.VOTE: "vote",
    HandlerKind.DELIBERATE: "deliberate",
}

MAX_ASKERS = 8  # contexts kept per handler (the askers are the room's hosts: one, or a few over restarts)


@dataclass(frozen=True, slots=True)
class Plan:
    """How one of the member's handlers runs: worked out once, not per answer."""

    handler: Handler
    kind: Kind
    awaits: bool  # an async function: runs in the receiving task until it first waits
    name: str
    runner: Elsewhere | None  # an asyncio handler of the bridge: runs on its loop, whose thread replies
    away: bool  # runs in another thread (plain, or on another loop): that thread may send the reply
    contexts: dict[str, HandlerContext] = field(default_factory=dict)  # by asker: one object each

    @classmethod
    def of(cls, kind: HandlerKind, handler: Handler) -> Plan:
        name = getattr(handler, "__qualname__", None) or repr(handler)
        awaits, runner = inspect.iscoroutinefunction(handler), elsewhere(handler)
        return cls(handler, _KINDS[kind], awaits, name, runner, not awaits or runner is not None)

    def context(self, asker: str) -> HandlerContext:
        """What :func:`consensus.handler_context` says while this handler answers ``asker``."""
        context = self.contexts.get(asker)
        if context is None:
            if len(self.contexts) >= MAX_ASKERS:
                self.contexts.clear()
            context = self.contexts[asker] = HandlerContext(self.kind, asker)
        return context
