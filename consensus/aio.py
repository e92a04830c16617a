"""nng-consensus for asyncio: the same names as :mod:`consensus`, awaited on your loop.

::

    from consensus import aio

    async def answer(question):             # runs on *this* asyncio loop
        return await llm.complete(question)  # your asyncio client, lock, queue...

    async def main():
        async with aio.join("tcp://127.0.0.1:7000", name="claude", on_poll=answer) as me:
            result = await me.poll("ready?", timeout=5)
            async for sender, value in me.messages():
                ...

    asyncio.run(main())

:func:`host`, :func:`join`, :func:`hotline`, :func:`Dispatcher` and :func:`Worker` take the
parameters of their trio namesakes (every keyword is passed through) and are async context
managers. What they yield forwards every method: ``async def`` ones are coroutines here,
async iterators are async iterators read from this loop, plain methods and properties
stay plain. Handlers that are coroutine functions (or async generators, for a streamed
``on_ask``) run on the loop that opened the object; plain ones run in threads as with trio.
Cancelling the task awaiting a call (``asyncio.timeout`` included) cancels the call; the
exceptions are the ones :mod:`consensus` raises.

Trio stays the engine, in one thread shared by the objects this process opened through
``consensus.aio``: started by the first ``async with``, stopped and joined when the last
one ends (docs/asyncio.md: why, and what it costs). The names are declared once for both
fronts in :mod:`consensus.bridge.surface`.
"""

from __future__ import annotations

from typing import Any, Self

import consensus as _c
from consensus.bridge import surface
from consensus.bridge.declare import attribute, method, method_to, plain_to
from consensus.bridge.lines import aio_line_opener
from consensus.bridge.opening import AioOpening, aio_opener
from consensus.bridge.proxy import AioIterator, AioProxy
from consensus.bridge.surveys import aio_join_opener
from consensus.hotline.foreign import NOT_HERE, lent
from consensus.hotline.opening import open_line
from consensus.work.task import Outcome

__all__ = [
    "AioIterator", "AioOpening", "Dispatcher", "Distribution", "Hotline", "IncomingAsk", "Member", "OpenDispatcher",
    "OpenWorker", "Room", "Worker", "host", "hotline", "join",
]  # fmt: skip


class IncomingAsk(surface.IncomingAskSurface, AioProxy):
    """An ask to answer by hand (:meth:`Hotline.receive_ask`); ``value``, ``stream``, ``id``."""

    __slots__ = ()


class Hotline(surface.HotlineSurface, AioProxy):
    """A :class:`consensus.Hotline` for asyncio: ``await line.ask(...)``, ``async for value in line``.
    One opened by :func:`hotline` is read on the loop that opened it: its asks from that
    loop, and its asyncio ``on_ask``, do not cross into the trio thread (docs/asyncio.md §4.4)."""

    __slots__ = ()
    receive_ask = method_to(_c.Hotline.receive_ask, IncomingAsk)
    _trio_ask = method(_c.Hotline.ask)

    async def ask(self, value: Any, *, timeout: float) -> Any:
        """:meth:`consensus.Hotline.ask`: the peer's reply to ``value`` (the same errors)."""
        foreign = lent(self._target)
        if foreign is not None:
            answer = await foreign.ask(value, timeout)
            if answer is not NOT_HERE:
                return answer
        return await self._trio_ask(value, timeout=timeout)

    def __aiter__(self) -> AioIterator[Any]:
        """``async for value in line``: the values the peer sends, until the line closes."""
        return self.iterate(self._target)


class Distribution(surface.DistributionSurface, AioProxy):
    """``async with room.distribute(tasks) as outcomes: async for outcome in outcomes``."""

    __slots__ = ()
    aclose = method(_c.Distribution.aclose)

    async def __aenter__(self) -> Self:
        await self._thread.acall(self._target.__aenter__)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        outcome: Outcome = await self._thread.acall(self._target.__anext__)
        return outcome


class OpenWorker(surface.WorkerSurface, AioProxy):
    """What ``async with aio.Worker(...)`` yields (and ``member.worker``)."""

    __slots__ = ()


class OpenDispatcher(surface.DispatcherSurface, AioProxy):
    """What ``async with aio.Dispatcher(...)`` yields."""

    __slots__ = ()
    distribute = plain_to(_c.Dispatcher.distribute, Distribution)


class Room(surface.RoomSurface, AioProxy):
    """A :class:`consensus.Room` for asyncio: ``await room.poll(...)``, ``async for ... in room.messages()``."""

    __slots__ = ()
    distribute = plain_to(_c.Room.distribute, Distribution)


class Member(surface.MemberSurface, AioProxy):
    """A :class:`consensus.Member` for asyncio: ``await me.poll(...)``, ``await me.hotline(peer)``."""

    __slots__ = ()
    worker = attribute["OpenWorker | None"]()
    hotline = method_to(_c.Member.hotline, Hotline)


host = aio_opener(_c.host, Room)
join = aio_join_opener(_c.join, Member)
hotline = aio_line_opener(_c.hotline, Hotline, opens=open_line)
Dispatcher = aio_opener(_c.Dispatcher, OpenDispatcher)
Worker = aio_opener(_c.Worker, OpenWorker)
__getattr__ = surface.rest_of_consensus(__name__)  # values, rules, exceptions: the same names
