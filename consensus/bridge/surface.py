"""What both fronts forward, declared once: the names of each public trio object.

``consensus.aio`` and ``consensus.blocking`` build their classes from these and their
proxy base (``class Room(RoomSurface, AioProxy)``); :mod:`consensus.bridge.declare` gives
each name the signature of its front. A front adds only what differs: the names whose
result is one of its own classes (``member.hotline()`` returns *its* ``Hotline``) and the
iteration and context-manager protocols (``async for`` / ``for``). ``TRIO`` names the
trio class each shows: a front's class registers itself in its ``PROXIES`` by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import consensus as _c
from consensus.bridge.declare import attribute, iterator, method, plain
from consensus.bridge.proxy import Proxy

__all__ = [
    "DispatcherSurface", "DistributionSurface", "HotlineSurface", "IncomingAskSurface", "MemberSurface",
    "RoomSurface", "WorkerSurface", "rest_of_consensus",
]  # fmt: skip


class IncomingAskSurface(Proxy):
    __slots__ = ()
    TRIO = _c.IncomingAsk
    reply = method(_c.IncomingAsk.reply)
    chunk = method(_c.IncomingAsk.chunk)
    end = method(_c.IncomingAsk.end)
    fail = method(_c.IncomingAsk.fail)
    value = attribute[Any]()
    stream = attribute[bool]()


class HotlineSurface(Proxy):
    __slots__ = ()
    TRIO = _c.Hotline
    state = attribute[_c.LineState]()
    connected = attribute[bool]()
    bound_address = attribute[str]()
    wait_connected = method(_c.Hotline.wait_connected)
    wait_disconnected = method(_c.Hotline.wait_disconnected)
    send = method(_c.Hotline.send)
    receive = method(_c.Hotline.receive)
    ask = method(_c.Hotline.ask)
    ask_stream = iterator(_c.Hotline.ask_stream)
    statistics = plain(_c.Hotline.statistics)


class DistributionSurface(Proxy):
    __slots__ = ()
    TRIO = _c.Distribution
    statistics = plain(_c.Distribution.statistics)
    cancelled = attribute["_c.CancelReport | None"]()


class WorkerSurface(Proxy):
    __slots__ = ()
    TRIO = _c.Worker
    connected = attribute[bool]()
    wait_connected = method(_c.Worker.wait_connected)
    statistics = plain(_c.Worker.statistics)


class DispatcherSurface(Proxy):
    __slots__ = ()
    TRIO = _c.Dispatcher
    workers = attribute[tuple[str, ...]]()
    capacity = attribute[int]()
    wait_for_workers = method(_c.Dispatcher.wait_for_workers)
    wait_workers_changed = method(_c.Dispatcher.wait_workers_changed)
    statistics = plain(_c.Dispatcher.statistics)


class RoomSurface(Proxy):
    __slots__ = ()
    TRIO = _c.Room
    members = attribute[tuple[str, ...]]()
    observers = attribute[tuple[str, ...]]()
    workers = attribute[tuple[str, ...]]()
    wait_for_members = method(_c.Room.wait_for_members)
    wait_members_changed = method(_c.Room.wait_members_changed)
    wait_for_mesh = method(_c.Room.wait_for_mesh)
    wait_for_workers = method(_c.Room.wait_for_workers)
    wait_workers_changed = method(_c.Room.wait_workers_changed)
    broadcast = method(_c.Room.broadcast)
    messages = iterator(_c.Room.messages)
    poll = method(_c.Room.poll)
    vote = method(_c.Room.vote)
    deliberate = method(_c.Room.deliberate)
    close = method(_c.Room.close)
    statistics = plain(_c.Room.statistics)
    work_statistics = plain(_c.Room.work_statistics)


class MemberSurface(Proxy):
    __slots__ = ()
    TRIO = _c.Member
    members = attribute[tuple[str, ...]]()
    observers = attribute[tuple[str, ...]]()
    observer = attribute[bool]()
    host_connected = attribute[bool]()
    wait_host_changed = method(_c.Member.wait_host_changed)
    wait_members_changed = method(_c.Member.wait_members_changed)
    wait_for_mesh = method(_c.Member.wait_for_mesh)
    poll = method(_c.Member.poll)
    vote = method(_c.Member.vote)
    broadcast = method(_c.Member.broadcast)
    hotlines = iterator(_c.Member.hotlines)
    messages = iterator(_c.Member.messages)
    decisions = iterator(_c.Member.decisions)
    statistics = plain(_c.Member.statistics)


def rest_of_consensus(module: str) -> Callable[[str], Any]:
    """A front module's ``__getattr__``: the rest of :mod:`consensus` (values, rules,
    exceptions) under the same names, so ``aio.RoomClosed`` is ``consensus.RoomClosed``."""

    def __getattr__(name: str) -> Any:
        if name in _c.__all__:
            return getattr(_c, name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
