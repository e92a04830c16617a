"""Running a member's handler: plain or async, under a deadline, failures captured.

A plain (synchronous) handler runs in a worker thread, so a slow one (an LLM call,
say) never stalls the member's heartbeats; an async one runs in the member's trio
loop. Either way an exception or a missed deadline becomes a :class:`MemberError`,
never a crash of the member.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._poll import MemberError

__all__ = ["Handler", "run_handler", "trio_deadline"]

log = logging.getLogger("consensus")

Handler = Callable[..., Any]

# A reply must reach the host before its deadline: the handler's own deadline is
# this much earlier (or a tenth of the time left, whichever is smaller).
REPLY_MARGIN = 0.05


def trio_deadline(wall_deadline: float | None, *, limit: float | None = None) -> float:
    """Turn a peer's wall-clock deadline into a trio deadline for the handler."""
    now = trio.current_time()
    deadline = math.inf
    if wall_deadline is not None:
        left = wall_deadline - time.time()
        deadline = now + left - min(REPLY_MARGIN, max(left, 0.0) / 10)
    if limit is not None:
        deadline = min(deadline, now + limit)
    return deadline


async def run_handler(
    handler: Handler, *args: Any, deadline: float, limiter: trio.CapacityLimiter
) -> tuple[bool, Any]:
    """Run ``handler(*args)``; returns ``(True, result)`` or ``(False, MemberError)``.

    A plain handler runs in a thread taken from ``limiter``. A thread whose handler
    missed its deadline is abandoned, not killed, and holds its token until the
    handler returns; when every token is held that way, new calls report ``Busy``.
    """
    name = getattr(handler, "__qualname__", repr(handler))
    sync = not inspect.iscoroutinefunction(handler)
    if sync and limiter.available_tokens == 0 and limiter.borrowed_tokens >= limiter.total_tokens:
        return False, MemberError(
            "Busy", f"all {limiter.total_tokens} handler threads are still running earlier calls of {name}"
        )
    with trio.move_on_at(deadline) as scope:
        try:
            if not sync:
                return True, await handler(*args)
            result = await trio.to_thread.run_sync(handler, *args, abandon_on_cancel=True, limiter=limiter)
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                return True, await _await(result)
            return True, result
        except Exception as exc:  # noqa: BLE001 - the handler's failure is reported to the host, never raised here
            log.info("handler %s failed: %r", name, exc)
            return False, MemberError.from_exception(exc)
    assert scope.cancelled_caught
    return False, MemberError("Timeout", f"handler {name} did not finish before the deadline")


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
