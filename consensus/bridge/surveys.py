"""``aio.join(...)``: a member whose surveys the caller's loop reads itself (docs/asyncio.md §4.6).

The member opens in the trio thread as any object of the front does; while it opens,
:data:`~consensus.room.loop_surveys.READ_ON` names the caller's loop, so that the member's
respondent is lent to it before trio ever reads (:meth:`Answerer.lend
<consensus.room.answering.Answerer.lend>`); the loop starts watching at once and stops
when the ``async with`` ends, before the socket closes in trio.

``blocking.join(...)`` likewise (§4.7): while it opens,
:data:`~consensus.room.thread_surveys.READ_IN_THREAD` says so, and the member's respondent
is lent to the process's survey reader thread (:meth:`Answerer.lend_thread
<consensus.room.answering.Answerer.lend_thread>`), which lets go of it as the member closes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from consensus.bridge.opening import AioOpening, BlockingOpening, _returns, blocking_opener
from consensus.bridge.proxy import Proxy
from consensus.room.loop_surveys import READ_ON
from consensus.room.member import Member
from consensus.room.thread_surveys import READ_IN_THREAD

__all__ = ["AioJoinOpening", "aio_join_opener", "blocking_join_opener"]

P = ParamSpec("P")
X = TypeVar("X", bound=Proxy)


V = TypeVar("V")


@asynccontextmanager
async def _opened_with(var: ContextVar[V], value: V, factory: Callable[..., AbstractAsyncContextManager[Member]],
                       *args: Any, **kwargs: Any) -> AsyncIterator[Member]:  # fmt: skip
    """(trio) ``factory(...)``'s member, opened while ``var`` is ``value``: where its surveys
    are read (:data:`READ_ON`, :data:`READ_IN_THREAD`); the rest of its life runs without."""
    async with AsyncExitStack() as stack:
        token = var.set(value)
        try:
            member = await stack.enter_async_context(factory(*args, **kwargs))
        finally:
            var.reset(token)
        yield member


class AioJoinOpening(AioOpening[X]):
    """``async with aio.join(...) as me``: the member's surveys read on this loop while the block runs."""

    async def __aenter__(self) -> X:
        self._factory = functools.partial(_opened_with, READ_ON, asyncio.get_running_loop(), self._factory)
        member = await super().__aenter__()
        self._member: Member = member._target
        return member

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:  # fmt: skip
        target: Member | None = getattr(self, "_member", None)
        if target is not None and target._answerer.lent is not None:  # before the socket closes in trio
            target._answerer.lent.stop()
        return await super().__aexit__(exc_type, exc, tb)


def aio_join_opener(factory: Callable[P, AbstractAsyncContextManager[Any]],
                    proxy: type[X]) -> Callable[P, AioJoinOpening[X]]:  # fmt: skip
    """``consensus.join`` for asyncio callers, its surveys read on their loop."""

    @functools.wraps(factory)
    def open_(*args: P.args, **kwargs: P.kwargs) -> AioJoinOpening[X]:
        return AioJoinOpening(factory, proxy, args, kwargs)

    _returns(open_, factory, f"AioJoinOpening[{proxy.__module__}.{proxy.__name__}]")
    return open_


def blocking_join_opener(factory: Callable[P, AbstractAsyncContextManager[Any]],
                         proxy: type[X]) -> Callable[P, BlockingOpening[X]]:  # fmt: skip
    """``consensus.join`` for plain code, its surveys read on the survey reader thread."""

    @functools.wraps(factory)
    def reading(*args: P.args, **kwargs: P.kwargs) -> AbstractAsyncContextManager[Any]:
        return _opened_with(READ_IN_THREAD, True, factory, *args, **kwargs)

    return blocking_opener(reading, proxy)
