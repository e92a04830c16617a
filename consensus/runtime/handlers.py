"""Running a member's handler: plain or async, under a deadline, failures captured.

A plain (synchronous) handler runs in a worker thread, so a slow one (an LLM call,
say) never stalls the member's heartbeats; an async one runs in the member's trio
loop. Either way an exception or a missed deadline becomes a :class:`Failure`,
never a crash of the member.

The thread comes from trio's thread cache (``trio.lowlevel.start_thread_soon``: idle
threads are kept for the next call) and the result comes back with one
``run_sync_soon``: measured here, that costs about two thirds of what
``trio.to_thread.run_sync`` costs per call (its message loop, which lets the thread call
``trio.from_thread``, and a checkpoint of its own). Plain handlers never call into trio,
so they do not need that loop.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import math
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Protocol

import trio

from consensus.failure import Failure

__all__ = ["ELSEWHERE", "Elsewhere", "Handler", "busy", "elsewhere", "failed", "resume", "run_handler", "run_inline",
           "run_unbounded", "trio_deadline"]

log = logging.getLogger("consensus")

Handler = Callable[..., Any]

ELSEWHERE = "__consensus_elsewhere__"  # the attribute of a trio wrapper whose handler runs in another loop


class Elsewhere(Protocol):
    """A handler that runs on another thread's event loop (an asyncio handler of the bridge),
    found as the ``__consensus_elsewhere__`` attribute of the trio function wrapping it.
    A driver that can finish the work in that thread (send the answer from there) calls
    :meth:`submit` instead of awaiting the wrapper."""

    def submit(self, args: tuple[Any, ...], context: contextvars.Context, done: Callable[[bool, Any], None],
               *, batched: bool = False) -> Callable[[], None]:  # fmt: skip
        """Start ``handler(*args)`` there, in ``context``; ``done(True, result)`` or
        ``done(False, exception)`` is called in that thread when it ends. Returns a function
        (for trio's thread) that cancels it. Raises :class:`RuntimeError` when that loop is closed.
        ``batched``: start it at the end of trio's scheduler batch, with the others handed over
        in the same batch (:func:`consensus.runtime.batch.at_batch_end`)."""
        ...


def elsewhere(handler: Handler) -> Elsewhere | None:
    """How ``handler`` runs on another loop, if it does (see :class:`Elsewhere`)."""
    found = getattr(handler, ELSEWHERE, None)
    return found if found is not None and hasattr(found, "submit") else None

# A reply must reach the host before its deadline: the handler's own deadline is
# this much earlier (or a tenth of the time left, whichever is smaller).
REPLY_MARGIN = 0.05


def trio_deadline(survey_deadline: float | None, *, limit: float | None = None, now: float | None = None) -> float:
    """The handler's deadline on trio's clock: a little before ``survey_deadline`` (also on
    trio's clock, as :attr:`patterns.IncomingSurvey.deadline` is), and at most ``limit``
    seconds from ``now`` (trio's clock; default: the current time)."""
    if now is None:
        now = trio.current_time()
    deadline = math.inf
    if survey_deadline is not None:
        left = survey_deadline - now
        deadline = survey_deadline - min(REPLY_MARGIN, max(left, 0.0) / 10)
    if limit is not None:
        deadline = min(deadline, now + limit)
    return deadline


async def run_handler(
    handler: Handler, *args: Any, deadline: float, limiter: trio.CapacityLimiter, sync: bool | None = None
) -> tuple[bool, Any]:
    """Run ``handler(*args)``; returns ``(True, result)`` or ``(False, Failure)``.

    A plain handler runs in a thread taken from ``limiter``. A thread whose handler
    missed its deadline is abandoned, not killed, and holds its token until the
    handler returns; when every token is held that way, new calls report ``Busy``.
    ``sync``: whether ``handler`` is plain, if the caller worked it out once already.
    """
    name = _name(handler)
    if sync is None:
        sync = not inspect.iscoroutinefunction(handler)
    if sync and limiter.available_tokens == 0 and limiter.borrowed_tokens >= limiter.total_tokens:
        return False, busy(handler, int(limiter.total_tokens))
    with trio.move_on_at(deadline) as scope:
        try:
            if not sync:
                return True, await handler(*args)
            result = await _in_thread(handler, args, limiter)
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                return True, await _await(result)
            return True, result
        except Exception as exc:  # noqa: BLE001 - the handler's failure is reported to the host, never raised here
            log.info("handler %s failed: %r", name, exc)
            return False, Failure.from_exception(exc)
    assert scope.cancelled_caught
    return False, Failure("Timeout", f"handler {name} did not finish before the deadline")


def run_inline(
    handler: Handler, *args: Any, deadline: float, on_suspend: Callable[[], None]
) -> Coroutine[Any, Any, tuple[bool, Any]]:
    """Run the async ``handler(*args)`` in this task, like :func:`run_handler`, but
    without a task of its own: a handler that answers without waiting costs no task
    switch. ``on_suspend()`` is called once, when the handler first waits, so the
    caller can hand what this task was doing (receiving, say) to another task. With no
    deadline (``math.inf``) no cancel scope is entered (one costs about as much as the
    rest of a quick answer). Await what it returns (a plain function: no coroutine of
    its own around the handler's)."""
    if deadline == math.inf:
        return run_unbounded(handler, args, on_suspend)
    return _inline_until(handler, args, deadline, on_suspend)


async def _inline_until(
    handler: Handler, args: tuple[Any, ...], deadline: float, on_suspend: Callable[[], None]
) -> tuple[bool, Any]:
    with trio.move_on_at(deadline):
        return await run_unbounded(handler, args, on_suspend)
    return False, Failure("Timeout", f"handler {_name(handler)} did not finish before the deadline")


async def run_unbounded(
    handler: Handler, args: tuple[Any, ...], on_suspend: Callable[[], None]
) -> tuple[bool, Any]:
    """:func:`run_inline` with no deadline (a call less: for a caller that answers many)."""
    try:
        coro = handler(*args)
        try:
            trap = coro.send(None)
        except StopIteration as done:
            return True, done.value
        on_suspend()
        return True, await resume(coro, trap)
    except Exception as exc:  # noqa: BLE001 - the handler's failure is reported to its asker, never raised here
        return False, failed(handler, exc)


def failed(handler: Handler, exc: Exception) -> Failure:
    """What an inline handler's failure ``exc`` tells its asker (logged, as :func:`run_unbounded` does)."""
    log.info("handler %s failed: %r", _name(handler), exc)
    return Failure.from_exception(exc)


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], trap: Any) -> Generator[Any, Any, Any]:
    """Run ``coro`` to its end in the current task, after its first step (run by the caller,
    in this same task) yielded ``trap`` to trio. Returns what the coroutine returns."""
    while True:
        try:
            sent = yield trap
        except BaseException as exc:  # noqa: BLE001 - trio throws cancellation (or an error) in: pass it on
            try:
                trap = coro.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                trap = coro.send(sent)
            except StopIteration as done:
                return done.value


async def _in_thread(handler: Handler, args: tuple[Any, ...], limiter: trio.CapacityLimiter) -> Any:
    """``handler(*args)`` in a cached thread holding a token of ``limiter``; abandoned (the
    token kept until it returns) when this task is cancelled."""
    holder = object()  # a token per call: the thread, not this task, gives it back
    try:  # a free token costs no scheduler pass (the wait for the thread is the cancel point)
        limiter.acquire_on_behalf_of_nowait(holder)
    except trio.WouldBlock:
        await limiter.acquire_on_behalf_of(holder)
    token, task = trio.lowlevel.current_trio_token(), trio.lowlevel.current_task()
    context = contextvars.copy_context()  # as trio.to_thread does: the handler sees this task's contextvars
    abandoned = False

    def back(result: Any) -> None:  # in trio's thread; result: an outcome.Outcome
        limiter.release_on_behalf_of(holder)
        if not abandoned:
            trio.lowlevel.reschedule(task, result)

    def deliver(result: Any) -> None:  # in the worker thread
        try:
            token.run_sync_soon(back, result)
        except trio.RunFinishedError:  # the loop ended while an abandoned handler ran: nobody waits
            pass

    def abort(_: Any) -> trio.lowlevel.Abort:
        nonlocal abandoned
        abandoned = True
        return trio.lowlevel.Abort.SUCCEEDED

    trio.lowlevel.start_thread_soon(lambda: context.run(handler, *args), deliver, name=f"handler {_name(handler)}")
    return await trio.lowlevel.wait_task_rescheduled(abort)


def busy(handler: Handler, threads: int) -> Failure:
    """The answer to a call of a plain ``handler`` while all its ``threads`` are taken."""
    return Failure("Busy", f"all {threads} handler threads are still running earlier calls of {_name(handler)}")


def _name(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
