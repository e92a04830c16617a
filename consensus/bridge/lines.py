"""``aio.hotline(...)``: a line the caller's loop reads itself; ``blocking.hotline(...)``:
a line whose asks leave from the caller's thread (docs/asyncio.md §4.4).

The line opens in the trio thread as any object of the front does; at once after it
opened, before its receive loop ever read, it is lent to the caller's loop
(:func:`consensus.hotline.foreign.lend`), which starts watching it when the ``async with``
resumes and stops before the line closes. Asks from that loop
(:meth:`consensus.aio.Hotline.ask`) then go out and come back without the trio thread; an asyncio
``on_ask`` runs straight from the loop's read. What the loop cannot take (a sealed line,
a line opened from a loop other than the asker's) keeps the trio path. A blocking line gets
a :class:`~consensus.hotline.thread_asks.ThreadAsks` the same way: its asks are sent from
the caller's thread, which reads the line itself while it waits (trio's reader stands aside
while threads keep asking; docs/asyncio.md §4.8); one with a plain ``on_ask`` is read by the
threads that serve it (:mod:`consensus.hotline.thread_serve`, docs/asyncio.md §4.10).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import trio

from consensus.bridge.opening import AioOpening, BlockingOpening, _returns, blocking_opener
from consensus.bridge.proxy import Proxy
from consensus.hotline.foreign import ForeignReader, lend, lent
from consensus.hotline.line import Hotline
from consensus.hotline.thread_asks import attach
from consensus.hotline.thread_serve import ThreadServer, serve

__all__ = ["AioLineOpening", "aio_line_opener", "blocking_line_opener"]

P = ParamSpec("P")
X = TypeVar("X", bound=Proxy)


@asynccontextmanager
async def _lent_to(loop: asyncio.AbstractEventLoop, factory: Callable[..., AbstractAsyncContextManager[Hotline]],
                   *args: Any, **kwargs: Any) -> AsyncIterator[Hotline]:  # fmt: skip
    """(trio) ``factory(...)``'s line, lent to ``loop`` before its receive loop first runs:
    nothing between the line's opening and the yield below is a checkpoint."""
    async with factory(*args, **kwargs) as line:
        lend(line, loop)
        yield line


@asynccontextmanager
async def _asked_from_threads(factory: Callable[..., AbstractAsyncContextManager[Hotline]],
                              *args: Any, **kwargs: Any) -> AsyncIterator[Hotline]:  # fmt: skip
    """(trio) ``factory(...)``'s line, taking asks from plain threads; a plain ``on_ask`` is
    served by the threads that read the line (docs/asyncio.md §4.10), which the block's end
    waits for once the line closed."""
    crew: ThreadServer | None = None
    try:
        async with factory(*args, **kwargs) as line:
            crew = serve(line)
            if crew is None:
                attach(line)
            yield line
    finally:
        if crew is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(crew.join)


class AioLineOpening(AioOpening[X]):
    """``async with aio.hotline(...) as line``: the line read on this loop while the block runs."""

    _foreign: ForeignReader | None = None

    async def __aenter__(self) -> X:
        self._factory = functools.partial(_lent_to, asyncio.get_running_loop(), self._factory)
        line = await super().__aenter__()
        self._foreign = lent(line._target)
        if self._foreign is not None:
            self._foreign.start()
        return line

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:  # fmt: skip
        if self._foreign is not None:  # before the socket closes in trio: the loop lets go of it
            self._foreign.stop()
        return await super().__aexit__(exc_type, exc, tb)


def aio_line_opener(factory: Callable[P, AbstractAsyncContextManager[Any]], proxy: type[X], *,
                    opens: Callable[P, AbstractAsyncContextManager[Any]] | None = None) -> Callable[P, AioLineOpening[X]]:  # fmt: skip
    """``consensus.hotline`` for asyncio callers, read on their loop; ``opens`` (the same
    signature) opens the line when ``factory`` would lend it elsewhere first (``open_line``)."""
    opening = factory if opens is None else opens

    @functools.wraps(factory)
    def open_(*args: P.args, **kwargs: P.kwargs) -> AioLineOpening[X]:
        return AioLineOpening(opening, proxy, args, kwargs)

    _returns(open_, factory, f"AioLineOpening[{proxy.__module__}.{proxy.__name__}]")
    return open_


def blocking_line_opener(factory: Callable[P, AbstractAsyncContextManager[Any]], proxy: type[X], *,
                         opens: Callable[P, AbstractAsyncContextManager[Any]] | None = None) -> Callable[P, BlockingOpening[X]]:  # fmt: skip
    """``consensus.hotline`` for plain code, its asks sent from the caller's thread; ``opens``
    as for :func:`aio_line_opener`."""
    opener = blocking_opener(factory, proxy)
    opening_factory = factory if opens is None else opens

    @functools.wraps(opener)
    def open_(*args: P.args, **kwargs: P.kwargs) -> BlockingOpening[X]:
        opening = opener(*args, **kwargs)
        opening._factory = functools.partial(_asked_from_threads, opening_factory)
        return opening

    return open_
