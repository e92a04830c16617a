"""A nursery for the background tasks of a public async context manager.

``host()`` and ``join()`` own a nursery and yield while it runs. With trio's strict
exception groups, an exception from the caller's block (or a failed handshake) would
come out wrapped in an ``ExceptionGroup``; a caller who wrote ``except NameTaken``
would miss it. When exactly one exception escapes, it is re-raised as itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

__all__ = ["Pulse", "service_nursery"]


@asynccontextmanager
async def service_nursery() -> AsyncIterator[trio.Nursery]:
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class Pulse:
    """Wakes every task waiting on it; a wake that finds no waiter is not kept.

    Drivers re-check their state after each wake (``while not ready: await pulse.wait()``),
    so a poke between a check and the wait cannot be missed: trio runs no other task
    between them."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def poke(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()
