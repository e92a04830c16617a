"""nng-consensus for plain scripts and notebooks: the same names as :mod:`consensus`, blocking.

::

    from consensus import blocking

    with blocking.host("tcp://127.0.0.1:7000") as room:
        room.wait_for_members(2)
        result = room.poll("ready?", timeout=5)
        for sender, value in room.messages():
            ...

:func:`host`, :func:`join`, :func:`hotline`, :func:`Dispatcher` and :func:`Worker` take the
parameters of their trio namesakes (every keyword is passed through) and are context
managers. What they yield forwards every method: ``async def`` ones block until done,
async iterators are iterators, plain methods and properties stay plain. Handlers are plain
functions and run in threads, as with trio (a coroutine function is refused: use
:mod:`consensus.aio`). Ctrl-C during a call cancels it; the exceptions are the ones
:mod:`consensus` raises. When the trio side ends by itself (the host closed the room), the
next call fails and the ``with`` ends with that exception (``RoomClosed``).

Trio stays the engine: each opened object runs its own trio loop in a thread, stopped and
joined when its ``with`` ends (docs/asyncio.md).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import consensus as _c
from consensus.bridge.opening import BlockingOpening, blocking_opener
from consensus.bridge.proxy import (
    BlockingIterator,
    BlockingProxy,
    attribute,
    blocking,
    blocking_iterator,
    blocking_to,
    plain,
    plain_to,
)
from consensus.work.task import Outcome

__all__ = [
    "BlockingIterator", "BlockingOpening", "Dispatcher", "Distribution", "Hotline", "IncomingAsk", "Member",
    "OpenDispatcher", "OpenWorker", "Room", "Worker", "host", "hotline", "join",
]  # fmt: skip


class IncomingAsk(BlockingProxy):
    """An ask to answer by hand (:meth:`Hotline.receive_ask`); ``value``, ``stream``, ``id``."""

    __slots__ = ()
    reply = blocking(_c.IncomingAsk.reply)
    chunk = blocking(_c.IncomingAsk.chunk)
    end = blocking(_c.IncomingAsk.end)
    fail = blocking(_c.IncomingAsk.fail)
    value = attribute[Any]()
    stream = attribute[bool]()


class Hotline(BlockingProxy):
    """A :class:`consensus.Hotline` for plain code: ``line.ask(...)``, ``for value in line``."""

    __slots__ = ()
    state = attribute[_c.LineState]()
    connected = attribute[bool]()
    bound_address = attribute[str]()
    wait_connected = blocking(_c.Hotline.wait_connected)
    wait_disconnected = blocking(_c.Hotline.wait_disconnected)
    send = blocking(_c.Hotline.send)
    receive = blocking(_c.Hotline.receive)
    receive_ask = blocking_to(_c.Hotline.receive_ask, IncomingAsk)
    ask = blocking(_c.Hotline.ask)
    ask_stream = blocking_iterator(_c.Hotline.ask_stream)
    statistics = plain(_c.Hotline.statistics)

    def __iter__(self) -> BlockingIterator[Any]:
        """``for value in line``: the values the peer sends, until the line closes."""
        return self.iterate(self._target)


class Distribution(BlockingProxy):
    """``with room.distribute(tasks) as outcomes: for outcome in outcomes``."""

    __slots__ = ()
    close = blocking(_c.Distribution.aclose)
    statistics = plain(_c.Distribution.statistics)
    cancelled = attribute["_c.CancelReport | None"]()

    def __enter__(self) -> Self:
        self._thread.call(self._target.__aenter__)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Outcome:
        try:
            outcome: Outcome = self._thread.call(self._target.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None
        return outcome


class OpenWorker(BlockingProxy):
    """What ``with blocking.Worker(...)`` yields (and ``member.worker``)."""

    __slots__ = ()
    connected = attribute[bool]()
    wait_connected = blocking(_c.Worker.wait_connected)
    statistics = plain(_c.Worker.statistics)


class OpenDispatcher(BlockingProxy):
    """What ``with blocking.Dispatcher(...)`` yields."""

    __slots__ = ()
    distribute = plain_to(_c.Dispatcher.distribute, Distribution)
    workers = attribute[tuple[str, ...]]()
    capacity = attribute[int]()
    wait_for_workers = blocking(_c.Dispatcher.wait_for_workers)
    wait_workers_changed = blocking(_c.Dispatcher.wait_workers_changed)
    statistics = plain(_c.Dispatcher.statistics)


class Room(BlockingProxy):
    """A :class:`consensus.Room` for plain code: ``room.poll(...)``, ``for ... in room.messages()``."""

    __slots__ = ()
    members = attribute[tuple[str, ...]]()
    observers = attribute[tuple[str, ...]]()
    workers = attribute[tuple[str, ...]]()
    wait_for_members = blocking(_c.Room.wait_for_members)
    wait_members_changed = blocking(_c.Room.wait_members_changed)
    wait_for_mesh = blocking(_c.Room.wait_for_mesh)
    wait_for_workers = blocking(_c.Room.wait_for_workers)
    wait_workers_changed = blocking(_c.Room.wait_workers_changed)
    broadcast = blocking(_c.Room.broadcast)
    messages = blocking_iterator(_c.Room.messages)
    distribute = plain_to(_c.Room.distribute, Distribution)
    poll = blocking(_c.Room.poll)
    vote = blocking(_c.Room.vote)
    deliberate = blocking(_c.Room.deliberate)
    close = blocking(_c.Room.close)
    statistics = plain(_c.Room.statistics)
    work_statistics = plain(_c.Room.work_statistics)


class Member(BlockingProxy):
    """A :class:`consensus.Member` for plain code: ``me.poll(...)``, ``me.hotline(peer)``."""

    __slots__ = ()
    members = attribute[tuple[str, ...]]()
    observers = attribute[tuple[str, ...]]()
    observer = attribute[bool]()
    host_connected = attribute[bool]()
    worker = attribute["OpenWorker | None"]()
    wait_host_changed = blocking(_c.Member.wait_host_changed)
    wait_members_changed = blocking(_c.Member.wait_members_changed)
    wait_for_mesh = blocking(_c.Member.wait_for_mesh)
    poll = blocking(_c.Member.poll)
    vote = blocking(_c.Member.vote)
    broadcast = blocking(_c.Member.broadcast)
    hotline = blocking_to(_c.Member.hotline, Hotline)
    hotlines = blocking_iterator(_c.Member.hotlines)
    messages = blocking_iterator(_c.Member.messages)
    decisions = blocking_iterator(_c.Member.decisions)
    statistics = plain(_c.Member.statistics)


BlockingProxy.PROXIES.update({
    _c.Room: Room, _c.Member: Member, _c.Hotline: Hotline, _c.IncomingAsk: IncomingAsk,
    _c.Distribution: Distribution, _c.Dispatcher: OpenDispatcher, _c.Worker: OpenWorker,
})  # fmt: skip

host = blocking_opener(_c.host, Room)
join = blocking_opener(_c.join, Member)
hotline = blocking_opener(_c.hotline, Hotline)
Dispatcher = blocking_opener(_c.Dispatcher, OpenDispatcher)
Worker = blocking_opener(_c.Worker, OpenWorker)


def __getattr__(name: str) -> Any:
    """The rest of :mod:`consensus` (values, rules, exceptions) under the same names."""
    if name in _c.__all__:
        return getattr(_c, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
