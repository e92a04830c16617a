"""asyncio code called from the trio thread: handlers and task sources on the caller's loop.

An ``on_poll`` written for asyncio must run on the loop that passed it, where its clients,
locks and queues live. :func:`for_trio` turns it into a trio function of the same kind
(coroutine function, async generator function) that runs each call there with
``asyncio.run_coroutine_threadsafe`` and waits for it on a :class:`trio.Event` set from
the future's done-callback: the drivers see an ordinary async handler and keep their
deadlines; a trio cancellation (a missed deadline, the room closing) cancels the asyncio
task. Plain functions are left alone: the drivers run them in threads as today.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import trio

__all__ = ["adapt_arguments", "for_trio", "run_on_loop"]

T = TypeVar("T")


async def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread's asyncio loop) and wait for it in trio."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    token = trio.lowlevel.current_trio_token()
    finished = trio.Event()

    def wake(_: concurrent.futures.Future[T]) -> None:
        try:
            token.run_sync_soon(finished.set)
        except trio.RunFinishedError:  # the trio side is gone: nobody waits any more
            pass

    future.add_done_callback(wake)
    try:
        await finished.wait()
    except BaseException:  # trio cancelled the wait (a deadline, the room closing): stop the task too
        future.cancel()
        raise
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise RuntimeError("the asyncio task running the handler was cancelled") from None


def for_trio(fn: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """``fn`` if it is plain; else a trio function of the same kind running it on ``loop``."""
    if inspect.isasyncgenfunction(fn):
        return _stream_for_trio(fn, loop)
    if not inspect.iscoroutinefunction(fn):
        return fn

    @functools.wraps(fn)
    async def on_loop(*args: Any) -> Any:
        return await run_on_loop(loop, fn(*args))

    return on_loop


def _stream_for_trio(fn: Callable[..., AsyncIterator[Any]], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def on_loop(*args: Any) -> AsyncIterator[Any]:
        async for item in iterate_on_loop(loop, fn(*args)):
            yield item

    return on_loop


_END = object()


async def _next(iterator: AsyncIterator[Any]) -> Any:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _END


async def iterate_on_loop(loop: asyncio.AbstractEventLoop, source: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """``source`` (an asyncio async iterable) read item by item on ``loop``, from trio."""
    iterator = aiter(source)
    try:
        while (item := await run_on_loop(loop, _next(iterator))) is not _END:
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:  # finish the generator where it lives; not waited for
            asyncio.run_coroutine_threadsafe(close(), loop)


def adapt_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any],
                    loop: asyncio.AbstractEventLoop) -> tuple[tuple[Any, ...], dict[str, Any]]:  # fmt: skip
    """The arguments of a call from asyncio, ready for trio: coroutine and async generator
    functions (handlers) run on ``loop``, async iterables (tasks to distribute) are read
    there; everything else passes as it is, whatever its keyword (``secret=`` included)."""
    return tuple(_adapt(a, loop) for a in args), {k: _adapt(v, loop) for k, v in kwargs.items()}


def _adapt(value: Any, loop: asyncio.AbstractEventLoop) -> Any:
    if callable(value) and not isinstance(value, type):
        return for_trio(value, loop)
    if isinstance(value, AsyncIterable):
        return iterate_on_loop(loop, value)
    return value
