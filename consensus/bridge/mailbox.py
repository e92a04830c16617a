"""Calls posted from one thread and run in another, many for one wake-up.

Waking a sleeping thread is the dear part of a crossing (about 50 µs on a 2-core VM, more
under load). When the trio thread has several things for an asyncio loop at once (eight
members' ``on_poll`` handlers to start, say), :class:`Mailbox` sends the first with one
``call_soon_threadsafe`` and lets the others ride along: whatever is posted before that
call has run is run by it. One post alone costs what a direct call would.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["Mailbox", "for_loop", "for_trio_run"]


class Mailbox:
    """Posts run, in order, by ``send(drain)``: the receiving thread's thread-safe entry."""

    __slots__ = ("__weakref__", "_armed", "_items", "_send")

    def __init__(self, send: Callable[[Callable[[], None]], object]) -> None:
        self._send = send
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._armed = False  # a drain is on its way: later posts ride with it

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the receiving thread soon; raises what ``send`` raises
        (the loop closed, the trio run finished)."""
        self._items.append((fn, args))
        if not self._armed:  # appended first, checked after: a drain running now sees it or re-arms
            self._armed = True
            try:
                self._send(self._drain)
            except BaseException:
                self._armed = False
                self._items.pop()
                raise

    def _drain(self) -> None:
        self._armed = False  # before emptying: a post from now on sends a drain of its own
        items = self._items
        while items:
            fn, args = items.popleft()
            fn(*args)


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Mailbox] = weakref.WeakKeyDictionary()
_trio_runs: trio.lowlevel.RunVar[Mailbox] = trio.lowlevel.RunVar("consensus.bridge mailbox")


def for_loop(loop: asyncio.AbstractEventLoop) -> Mailbox:
    """The mailbox into ``loop`` (from any thread); it goes with the loop."""
    box = _loops.get(loop)
    if box is None:
        box = _loops.setdefault(loop, Mailbox(functools.partial(_send_to, weakref.ref(loop))))
    return box


def _send_to(ref: weakref.ref[asyncio.AbstractEventLoop], fn: Callable[[], None]) -> None:
    loop = ref()  # weak: a mailbox holding its loop would keep the loop, its key, alive for ever
    if loop is None:
        raise RuntimeError("the asyncio loop is gone")
    loop.call_soon_threadsafe(fn)


def for_trio_run() -> Mailbox:
    """The mailbox into the running trio loop (called in it; posted to from any thread)."""
    try:
        return _trio_runs.get()
    except LookupError:
        box = Mailbox(trio.lowlevel.current_trio_token().run_sync_soon)
        _trio_runs.set(box)
        return box
