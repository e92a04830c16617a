"""asyncio code called from the trio thread: handlers and task sources on the caller's loop.

An ``on_poll`` written for asyncio must run on the loop that passed it, where its clients,
locks and queues live. :func:`for_trio` turns it into a trio function of the same kind
(coroutine function, async generator function) that runs each call there with
``asyncio.run_coroutine_threadsafe`` and waits for it on a :class:`trio.Event` set from
the future's done-callback: the drivers see an ordinary async handler and keep their
deadlines; a trio cancellation (a missed deadline, the room closing) cancels the asyncio
task. The wrapper also carries an :class:`OnLoop`, through which a hotline starts the
handler on its loop and sends the answer from the loop's thread
(:mod:`consensus.hotline.threaded`): one crossing instead of two. Plain functions are left
alone: the drivers run them in threads as today.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import trio

from consensus.bridge import mailbox
from consensus.runtime.batch import at_batch_end
from consensus.runtime.handlers import ELSEWHERE

__all__ = ["OnLoop", "adapt_arguments", "for_trio", "run_on_loop"]

T = TypeVar("T")


async def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` as a task of ``loop`` (another thread's asyncio loop) and wait for it in trio.

    At most one wake-up each way, shared by the handlers started or finished together
    (:mod:`~consensus.bridge.mailbox`): the loop's mailbox starts the task, its
    done-callback reschedules this trio task through the trio run's mailbox
    (``run_coroutine_threadsafe`` would add a concurrent future and a second callback hop)."""
    into_trio = mailbox.for_trio_run()
    me = trio.lowlevel.current_task()
    box: list[asyncio.Task[T]] = []
    state = {"waiting": True}  # False once this side stopped waiting (cancelled)

    def finished(_: asyncio.Task[T]) -> None:  # on the asyncio loop
        try:
            into_trio.post(wake)
        except trio.RunFinishedError:  # the trio side is gone: nobody waits any more
            pass

    def wake() -> None:  # in trio
        if state["waiting"]:
            state["waiting"] = False
            trio.lowlevel.reschedule(me)

    def start() -> None:  # on the asyncio loop
        task = loop.create_task(coro)
        box.append(task)
        task.add_done_callback(finished)
        if not state["waiting"]:  # cancelled before it started
            task.cancel()

    def abort(_: Any) -> trio.lowlevel.Abort:  # trio cancels the wait: a deadline, the room closing
        state["waiting"] = False
        try:
            loop.call_soon_threadsafe(_cancel, box)
        except RuntimeError:  # the loop is closed: nothing runs there any more
            coro.close()
        return trio.lowlevel.Abort.SUCCEEDED

    try:
        mailbox.for_loop(loop).post(start)
    except RuntimeError:
        coro.close()
        raise RuntimeError("the asyncio loop that gave this handler is closed") from None
    await trio.lowlevel.wait_task_rescheduled(abort)
    task = box[0]
    if task.cancelled():
        raise RuntimeError("the asyncio task running the handler was cancelled")
    return task.result()


def _cancel(box: list[asyncio.Task[Any]]) -> None:
    if box:
        box[0].cancel()


def for_trio(fn: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """``fn`` if it is plain; else a trio function of the same kind running it on ``loop``."""
    if inspect.isasyncgenfunction(fn):
        return _stream_for_trio(fn, loop)
    if not inspect.iscoroutinefunction(fn):
        return fn

    @functools.wraps(fn)
    async def on_loop(*args: Any) -> Any:
        return await run_on_loop(loop, fn(*args))

    setattr(on_loop, ELSEWHERE, OnLoop(loop, fn))  # a driver may let the loop's thread send the answer
    return on_loop


class OnLoop:
    """An asyncio handler as :class:`consensus.runtime.handlers.Elsewhere`: a driver that
    can finish the work on the loop's thread (a hotline sending the answer from there) starts
    it with :meth:`submit` and spares the crossing back into trio."""

    __slots__ = ("_fn", "_loop", "_mailbox")

    def __init__(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        self._loop = loop
        self._fn = fn
        self._mailbox = mailbox.for_loop(loop)

    def submit(self, args: tuple[Any, ...], context: contextvars.Context, done: Callable[[bool, Any], None],
               *, batched: bool = False) -> Callable[[], None]:  # fmt: skip
        if self._loop.is_closed():
            raise RuntimeError("the asyncio loop that gave this handler is closed")
        call = _Call(done)
        # batched: the handlers trio hands over in one scheduler batch (eight members' of one
        # poll) start together, for one wake-up of the loop and no GIL contention meanwhile.
        post = functools.partial(at_batch_end, self._mailbox.post) if batched else self._mailbox.post
        post(self._start, call, args, context)
        return functools.partial(post, _Call.cancel, call)  # in order, same mailbox: finds the task started

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def start_here(self, args: tuple[Any, ...], context: contextvars.Context,
                   done: Callable[[bool, Any], None]) -> asyncio.Task[Any] | None:  # fmt: skip
        """:meth:`submit` from the loop's own thread (a line read there): the task at once, no post."""
        call = _Call(done)
        self._start(call, args, context)
        return call.task

    def _start(self, call: _Call, args: tuple[Any, ...], context: contextvars.Context) -> None:  # on the loop
        call.task = self._loop.create_task(_reporting(self._fn, args, call), context=context)


class _Call:
    """One handler call on the loop (the loop's thread only, once started)."""

    __slots__ = ("done", "reported", "task")

    def __init__(self, done: Callable[[bool, Any], None]) -> None:
        self.done = done
        self.reported = False
        self.task: asyncio.Task[None] | None = None

    def report(self, ok: bool, value: Any) -> None:
        self.reported = True
        self.done(ok, value)

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            self.task.add_done_callback(self._after_cancel)  # a task cancelled before it ran reports nothing

    def _after_cancel(self, _: asyncio.Task[None]) -> None:
        if not self.reported:
            self.report(False, RuntimeError("the asyncio task running the handler was cancelled"))


async def _reporting(fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...], call: _Call) -> None:
    """``fn(*args)`` reporting its outcome from its own task: no done-callback, no extra loop pass."""
    try:
        result = await fn(*args)
    except asyncio.CancelledError:
        call.report(False, RuntimeError("the asyncio task running the handler was cancelled"))
        raise
    except Exception as exc:  # noqa: BLE001 - the handler's failure is its asker's answer
        call.report(False, exc)
        return
    except BaseException as exc:  # SystemExit, say: the asker still hears, the loop still gets it
        call.report(False, exc)
        raise
    call.report(True, result)


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


_PLAIN = frozenset({bytes, str, int, float, bool, type(None), dict, list, tuple})  # nothing to adapt: skip the checks


def _adapt(value: Any, loop: asyncio.AbstractEventLoop) -> Any:
    if type(value) in _PLAIN:
        return value
    if callable(value) and not isinstance(value, type):
        return for_trio(value, loop)
    if isinstance(value, AsyncIterable):
        return iterate_on_loop(loop, value)
    return value
