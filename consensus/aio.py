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

Trio stays the engine: each opened object runs its own trio loop in a thread, stopped and
joined when its ``async with`` ends (docs/asyncio.md: why, and what it costs).
"""

from __future__ import annotations

from typing import Any, Self

import consensus as _c
from consensus.bridge.opening import AioOpening, aio_opener
from consensus.bridge.proxy import (
    AioIterator,
    AioProxy,
    aio_iterator,
    attribute,
    awaitable,
    awaitable_to,
    plain,
)
from consensus.bridge.proxy import plain_to as _plain_to
from consensus.work.task import Outcome

__all__ = [
    "AioIterator", "AioOpening", "Dispatcher", "Distribution", "Hotline", "IncomingAsk", "Member", "OpenDispatcher",
    "OpenWorker", "Room", "Worker", "host", "hotline", "join",
]  # fmt: skip


class IncomingAsk(AioProxy):
    """An ask to answer by hand (:meth:`Hotline.receive_ask`); ``value``, ``stream``, ``id``."""

    __slots__ = ()
    reply = awaitable(_c.IncomingAsk.reply)
    chunk = awaitable(_c.IncomingAsk.chunk)
    end = awaitable(_c.IncomingAsk.end)
    fail = awaitable(_c.IncomingAsk.fail)
    value = attribute[Any]()
    stream = attribute[bool]()


class Hotline(AioProxy):
    """A :class:`consensus.Hotline` for asyncio: ``await line.ask(...)``, ``async for value in line``."""

    __slots__ = ()
    state = attribute[_c.LineState]()
    connected = attribute[bool]()
    bound_address = attribute[str]()
    wait_connected = awaitable(_c.Hotline.wait_connected)
    wait_disconnected = awaitable(_c.Hotline.wait_disconnected)
    send = awaitable(_c.Hotline.send)
    receive = awaitable(_c.Hotline.receive)
    receive_ask = awaitable_to(_c.Hotline.receive_ask, IncomingAsk)
    ask = awaitable(_c.Hotline.ask)
    ask_stream = aio_iterator(_c.Hotline.ask_stream)
    statistics = plain(_c.Hotline.statistics)

    def __aiter__(self) -> AioIterator[Any]:
        """``async for value in line``: the values the peer sends, until the line closes."""
        return self.iterate(self._target)


class Distribution(AioProxy):
    """``async with room.distribute(tasks) as outcomes: async for outcome in outcomes``."""

    __slots__ = ()
    aclose = awaitable(_c.Distribution.aclose)
    statistics = plain(_c.Distribution.statistics)
    cancelled = attribute["_c.CancelReport | None"]()

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


class OpenWorker(AioProxy):
    """What ``async with aio.Worker(...)`` yields (and ``member.worker``)."""

    __slots__ = ()
    connected = attribute[bool]()
    wait_connected = awaitable(_c.Worker.wait_connected)
    statistics = plain(_c.Worker.statistics)


class OpenDispatcher(AioProxy):
    """What ``async with aio.Dispatcher(...)`` yields."""

    __slots__ = ()
    distribute = _plain_to(_c.Dispatcher.distribute, Distribution)
    workers = attribute[tuple[str, ...]]()
    capacity = attribute[int]()
    wait_for_workers = awaitable(_c.Dispatcher.wait_for_workers)
    wait_workers_changed = awaitable(_c.Dispatcher.wait_workers_changed)
    statistics = plain(_c.Dispatcher.statistics)


class Room(AioProxy):
    """A :class:`consensus.Room` for asyncio: ``await room.poll(...)``, ``async for ... in room.messages()``."""

    __slots__ = ()
    members = attribute[tuple[str, ...]]()
    observers = attribute[tuple[str, ...]]()
    workers = attribute[tuple[str, ...]]()
    wait_for_members = awaitable(_c.Room.wait_for_members)
    wait_members_changed = awaitable(_c.Room.wait_members_changed)
    wait_for_mesh = awaitable(_c.Room.wait_for_mesh)
    wait_for_workers = awaitable(_c.Room.wait_for_workers)
    wait_workers_changed = awaitable(_c.Room.wait_workers_changed)
    broadcast = awaitable(_c.Room.broadcast)
    messages = aio_iterator(_c.Room.messages)
    distribute = _plain_to(_c.Room.distribute, Distribution)
    poll = awaitable(_c.Room.poll)
    vote = awaitable(_c.Room.vote)
    deliberate = awaitable(_c.Room.deliberate)
    close = awaitable(_c.Room.close)
    statistics = plain(_c.Room.statistics)
    work_statistics = plain(_c.Room.work_statistics)


class Member(AioProxy):
    """A :class:`consensus.Member` for asyncio: ``await me.poll(...)``, ``await me.hotline(peer)``."""

    __slots__ = ()
    members = attribute[tuple[str, ...]]()
    observers = attribute[tuple[str, ...]]()
    observer = attribute[bool]()
    host_connected = attribute[bool]()
    worker = attribute["OpenWorker | None"]()
    wait_host_changed = awaitable(_c.Member.wait_host_changed)
    wait_members_changed = awaitable(_c.Member.wait_members_changed)
    wait_for_mesh = awaitable(_c.Member.wait_for_mesh)
    poll = awaitable(_c.Member.poll)
    vote = awaitable(_c.Member.vote)
    broadcast = awaitable(_c.Member.broadcast)
    hotline = awaitable_to(_c.Member.hotline, Hotline)
    hotlines = aio_iterator(_c.Member.hotlines)
    messages = aio_iterator(_c.Member.messages)
    decisions = aio_iterator(_c.Member.decisions)
    statistics = plain(_c.Member.statistics)


AioProxy.PROXIES.update({
    _c.Room: Room, _c.Member: Member, _c.Hotline: Hotline, _c.IncomingAsk: IncomingAsk,
    _c.Distribution: Distribution, _c.Dispatcher: OpenDispatcher, _c.Worker: OpenWorker,
})  # fmt: skip

host = aio_opener(_c.host, Room)
join = aio_opener(_c.join, Member)
hotline = aio_opener(_c.hotline, Hotline)
Dispatcher = aio_opener(_c.Dispatcher, OpenDispatcher)
Worker = aio_opener(_c.Worker, OpenWorker)


def __getattr__(name: str) -> Any:
    """The rest of :mod:`consensus` (values, rules, exceptions) under the same names."""
    if name in _c.__all__:
        return getattr(_c, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
