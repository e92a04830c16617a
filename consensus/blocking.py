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

Trio stays the engine, in one thread shared by the objects this process opened through
``consensus.blocking``: started by the first ``with``, stopped and joined when the last one
ends (docs/asyncio.md). The names are declared once for both fronts in
:mod:`consensus.bridge.surface`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import consensus as _c
from consensus.bridge import surface
from consensus.bridge.declare import attribute, method, method_to, plain_to
from consensus.bridge.lines import blocking_line_opener
from consensus.bridge.opening import BlockingOpening, blocking_opener
from consensus.bridge.proxy import BlockingIterator, BlockingProxy
from consensus.bridge.surveys import blocking_join_opener
from consensus.hotline.foreign import NOT_HERE
from consensus.hotline.opening import open_line
from consensus.hotline.thread_asks import attached
from consensus.work.task import Outcome

__all__ = [
    "BlockingIterator", "BlockingOpening", "Dispatcher", "Distribution", "Hotline", "IncomingAsk", "Member",
    "OpenDispatcher", "OpenWorker", "Room", "Worker", "host", "hotline", "join",
]  # fmt: skip


class IncomingAsk(surface.IncomingAskSurface, BlockingProxy):
    """An ask to answer by hand (:meth:`Hotline.receive_ask`); ``value``, ``stream``, ``id``."""

    __slots__ = ()


class Hotline(surface.HotlineSurface, BlockingProxy):
    """A :class:`consensus.Hotline` for plain code: ``line.ask(...)``, ``for value in line``.
    One opened by :func:`hotline` sends its asks from the caller's thread (docs/asyncio.md §4.4)."""

    __slots__ = ()
    receive_ask = method_to(_c.Hotline.receive_ask, IncomingAsk)
    _trio_ask = method(_c.Hotline.ask)

    def ask(self, value: Any, *, timeout: float) -> Any:
        """:meth:`consensus.Hotline.ask`: the peer's reply to ``value`` (the same errors)."""
        asks = attached(self._target)
        if asks is not None:
            answer = asks.ask(value, timeout)
            if answer is not NOT_HERE:
                return answer
        return self._trio_ask(value, timeout=timeout)

    def __iter__(self) -> BlockingIterator[Any]:
        """``for value in line``: the values the peer sends, until the line closes."""
        return self.iterate(self._target)


class Distribution(surface.DistributionSurface, BlockingProxy):
    """``with room.distribute(tasks) as outcomes: for outcome in outcomes``."""

    __slots__ = ()
    close = method(_c.Distribution.aclose)

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


class OpenWorker(surface.WorkerSurface, BlockingProxy):
    """What ``with blocking.Worker(...)`` yields (and ``member.worker``)."""

    __slots__ = ()


class OpenDispatcher(surface.DispatcherSurface, BlockingProxy):
    """What ``with blocking.Dispatcher(...)`` yields."""

    __slots__ = ()
    distribute = plain_to(_c.Dispatcher.distribute, Distribution)


class Room(surface.RoomSurface, BlockingProxy):
    """A :class:`consensus.Room` for plain code: ``room.poll(...)``, ``for ... in room.messages()``."""

    __slots__ = ()
    distribute = plain_to(_c.Room.distribute, Distribution)


class Member(surface.MemberSurface, BlockingProxy):
    """A :class:`consensus.Member` for plain code: ``me.poll(...)``, ``me.hotline(peer)``."""

    __slots__ = ()
    worker = attribute["OpenWorker | None"]()
    hotline = method_to(_c.Member.hotline, Hotline)


host = blocking_opener(_c.host, Room)
join = blocking_join_opener(_c.join, Member)  # its surveys read on a thread (docs/asyncio.md §4.7)
hotline = blocking_line_opener(_c.hotline, Hotline, opens=open_line)
Dispatcher = blocking_opener(_c.Dispatcher, OpenDispatcher)
Worker = blocking_opener(_c.Worker, OpenWorker)
__getattr__ = surface.rest_of_consensus(__name__)  # values, rules, exceptions: the same names
