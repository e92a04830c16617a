"""Opening a public object from outside trio: the context managers of both fronts.

``aio.host(...)`` returns an :class:`AioOpening`, ``blocking.host(...)`` a
:class:`BlockingOpening`. Entering takes a :class:`Lease` on the front's shared trio thread
(starting it if none runs) and starts, in it, one task that
enters the trio context manager (``consensus.host(...)``), hands the object out as a proxy
and holds the block open until the caller's block ends. Trio needs a nursery or a cancel
scope to be left by the task that entered it, hence one holding task rather than separate
``__aenter__`` and ``__aexit__`` calls. Leaving releases that task, waits for the trio
context manager to finish, then gives the lease back: the last one stops and joins the thread.

When the trio block ends by itself (the host closed the room, ``on_host_lost="exit"``),
the asyncio block is cancelled, as trio cancels its own, and ends with the trio block's
exception (``RoomClosed``); a blocking block cannot be interrupted: its next call fails
and its ``with`` ends with that exception.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

import trio

from consensus.bridge.handlers import adapt_arguments
from consensus.bridge.proxy import Proxy
from consensus.bridge.shared import Lease, lease
from consensus.bridge.thread import Done
from patterns import Closed

__all__ = ["AioOpening", "BlockingOpening", "aio_opener", "blocking_opener"]

P = ParamSpec("P")
X = TypeVar("X", bound=Proxy)
Factory = Callable[[], AbstractAsyncContextManager[Any]]


class _Holder:
    """The trio task that keeps the trio context manager open (runs in the trio thread)."""

    def __init__(self, factory: Factory, entered: Callable[[Any], None]) -> None:
        self._factory = factory
        self._entered = entered
        self._release = trio.Event()  # may be set before hold() starts: the block then ends at once

    async def hold(self) -> None:
        async with self._factory() as obj:
            self._entered(obj)
            await self._release.wait()

    def release(self) -> None:  # in the trio thread
        self._release.set()


class _Opening(Generic[X]):
    FRONT = ""  # the shared trio thread this front's objects use

    def __init__(self, factory: Callable[..., AbstractAsyncContextManager[Any]], proxy: type[X],
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:  # fmt: skip
        self._factory = factory
        self._proxy = proxy
        self._args = args
        self._kwargs = kwargs
        self.name = f"{getattr(factory, '__name__', 'consensus')} {args[0] if args else ''}".strip()
        self._holder: _Holder | None = None
        self._cancel_holder: Callable[[], None] = _nothing

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _open(self, holder: _Holder, done: Callable[[Done[None]], None]) -> Lease:
        self._holder = holder
        self._thread = lease(self.FRONT, self.name)
        self._cancel_holder = self._thread.submit(holder.hold, done=done)
        return self._thread

    def _release(self) -> None:
        if self._holder is not None:
            try:
                self._thread.soon(self._holder.release)
            except Closed:
                pass


class AioOpening(_Opening[X]):
    """``async with aio.host(...) as room``: the trio object in its thread, as a proxy."""

    FRONT = "aio"

    async def __aenter__(self) -> X:
        loop = asyncio.get_running_loop()
        args, kwargs = adapt_arguments(self._args, self._kwargs, loop)
        entered: asyncio.Future[Any] = loop.create_future()
        self._finished: asyncio.Future[Done[None]] = loop.create_future()
        self._early: BaseException | None = None  # the trio block ended by itself with this
        self._cancelled_body = False
        self._exiting = False
        self._abandoned = False  # cancelled while opening or closing: its end concerns nobody
        task = asyncio.current_task()

        def on_entered(obj: Any) -> None:  # trio thread
            _soon(loop, _set, entered, Done(obj))

        def on_finished(done: Done[None]) -> None:  # trio thread
            _soon(loop, self._on_finished, done, entered, task)

        self._open(_Holder(functools.partial(self._factory, *args, **kwargs), on_entered), on_finished)
        try:
            obj = (await entered).unwrap()
        except BaseException:  # cancelled while opening (or it failed): stop opening, wait for its end
            self._abandoned = True
            self._cancel_holder()
            await asyncio.shield(self._finished)  # the trio side closed what it had opened
            await self._thread.arelease()
            raise
        return self._proxy(obj, self._thread)

    def _on_finished(self, done: Done[None], entered: asyncio.Future[Any], task: asyncio.Task[Any] | None) -> None:
        _set(self._finished, done)  # a wait cancelled in __aexit__ cancelled the future: then a no-op
        if self._abandoned:
            return
        if not entered.done():  # the trio context manager failed to enter (NameTaken ...)
            entered.set_result(Done(error=done.error or Closed(f"{self.name} ended before it opened")))
        elif not self._exiting and task is not None:  # the trio block ended by itself: end ours
            self._early = done.error or Closed(f"{self.name} ended")
            self._cancelled_body = True
            task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:  # fmt: skip
        self._exiting = True
        self._release()
        try:
            done = await self._finished
        except asyncio.CancelledError:  # cancelled while closing: close at once, cancel the rest
            self._abandoned = True
            self._cancel_holder()
            self._thread.release()
            raise
        await self._thread.arelease()
        if self._early is not None:
            task = asyncio.current_task()
            if self._cancelled_body and task is not None:
                task.uncancel()
            if exc_type is None or issubclass(exc_type, asyncio.CancelledError):
                raise self._early
            return None
        if done.error is not None and exc_type is None:
            raise done.error
        return None


class BlockingOpening(_Opening[X]):
    """``with blocking.host(...) as room``: the trio object in its thread, as a proxy."""

    FRONT = "blocking"

    def __enter__(self) -> X:
        entered = threading.Event()
        box: list[Any] = []
        self._done: list[Done[None]] = []
        self._ended = threading.Event()

        def on_entered(obj: Any) -> None:
            box.append(obj)
            entered.set()

        def on_finished(done: Done[None]) -> None:
            self._done.append(done)
            self._ended.set()
            entered.set()

        self._open(_Holder(functools.partial(self._factory, *self._args, **self._kwargs), on_entered), on_finished)
        try:
            entered.wait()
        except BaseException:  # Ctrl-C while opening: stop opening
            self._cancel_holder()
            self._ended.wait()
            self._thread.release()
            raise
        if not box:
            self._thread.release()
            error = self._done[0].error
            raise error if error is not None else Closed(f"{self.name} ended before it opened")
        return self._proxy(box[0], self._thread)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:  # fmt: skip
        self._release()
        try:
            self._ended.wait()
        finally:
            self._thread.release()
        error = self._done[0].error
        if error is not None and exc_type is None:
            raise error
        return None


def aio_opener(factory: Callable[P, AbstractAsyncContextManager[Any]],
               proxy: type[X]) -> Callable[P, AioOpening[X]]:  # fmt: skip
    """``factory`` (``consensus.host``, ``consensus.Dispatcher``...) for asyncio callers:
    same parameters, every keyword passed through."""

    @functools.wraps(factory)
    def open_(*args: P.args, **kwargs: P.kwargs) -> AioOpening[X]:
        return AioOpening(factory, proxy, args, kwargs)

    _returns(open_, factory, f"AioOpening[{proxy.__module__}.{proxy.__name__}]")
    return open_


def blocking_opener(factory: Callable[P, AbstractAsyncContextManager[Any]],
                    proxy: type[X]) -> Callable[P, BlockingOpening[X]]:  # fmt: skip
    """``factory`` for plain code: same parameters, every keyword passed through."""

    @functools.wraps(factory)
    def open_(*args: P.args, **kwargs: P.kwargs) -> BlockingOpening[X]:
        for key, value in kwargs.items():
            if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
                raise TypeError(f"{key}={value!r}: consensus.blocking takes plain functions as handlers "
                                "(they run in threads); for async ones use consensus.aio")
        return BlockingOpening(factory, proxy, args, kwargs)

    _returns(open_, factory, f"BlockingOpening[{proxy.__module__}.{proxy.__name__}]")
    return open_


def _returns(opener: Callable[..., Any], factory: Callable[..., Any], returns: str) -> None:
    """``help(aio.join)``: the trio parameters, and what the opener really returns."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to show: help() shows the docstring alone
        return
    setattr(opener, "__signature__", signature.replace(return_annotation=returns))  # noqa: B010 - mypy: no such attribute on functions


def _nothing() -> None:
    pass


def _soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the caller's loop closed: nobody waits any more
        pass


def _set(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
