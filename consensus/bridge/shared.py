"""One trio thread per front and process, shared by the objects opened from it.

Every opened object (``aio.join(...)``, ``blocking.host(...)``...) takes a :class:`Lease`
on its front's :class:`~consensus.bridge.thread.TrioThread`: the first lease starts the
thread, the last one to be given back stops and joins it, so nothing runs once the last
block has ended. Sharing matters when a program opens several objects: eight members
polled at once wake one trio thread, not eight (docs/asyncio.md has the figures).

Each object runs in its own task of the shared nursery, so one that fails (its trio
context manager raising, a call raising ``SystemExit``) ends alone; a lease given back
refuses further calls with :class:`~patterns.Closed`, as a thread of its own would have.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from consensus.bridge.thread import Done, TrioThread
from patterns import Closed

__all__ = ["Lease", "lease"]

T = TypeVar("T")

_lock = threading.Lock()  # the registry and the users of each thread
_threads: dict[str, TrioThread] = {}  # front -> its running thread
_users: dict[TrioThread, int] = {}


def lease(front: str, name: str) -> Lease:
    """A lease on ``front``'s trio thread (started if none runs), for the object ``name``."""
    with _lock:
        thread = _threads.get(front)
        if thread is None or not thread.running:  # none yet, or the last one crashed: a fresh one
            thread = TrioThread(front)
            thread.start()  # about a millisecond, under the lock so that two openers share it
            _threads[front] = thread
        _users[thread] = _users.get(thread, 0) + 1
    return Lease(thread, front, name)


class Lease:
    """One object's use of a shared :class:`TrioThread`: the thread's calls, refused once
    given back (:meth:`release` / :meth:`arelease`)."""

    __slots__ = ("_front", "_released", "_thread", "name")

    def __init__(self, thread: TrioThread, front: str, name: str) -> None:
        self._thread = thread
        self._front = front
        self._released = False
        self.name = name

    def __repr__(self) -> str:
        return f"<Lease {self.name!r} on {self._thread!r}{' released' if self._released else ''}>"

    @property
    def running(self) -> bool:
        return not self._released and self._thread.running

    def _check(self) -> TrioThread:
        if self._released or not self._thread.running:
            raise Closed(f"{self.name} is closed")
        return self._thread

    # ------------------------------------------------------------------ calls (TrioThread's, checked)
    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self._check().soon(fn, *args)

    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any,
               done: Callable[[Done[T]], None]) -> Callable[[], None]:  # fmt: skip
        return self._check().submit(fn, *args, done=done)

    def acall(self, fn: Callable[..., Awaitable[T]], *args: Any) -> Coroutine[Any, Any, T]:
        return self._check().acall(fn, *args)  # the thread's coroutine itself: no frame in between

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self._check().call(fn, *args)

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """In the trio thread while it runs (other objects may share it, even after this
        lease), else in this thread."""
        return self._thread.call_sync(fn, *args)

    # ------------------------------------------------------------------ giving it back
    def _give_back(self) -> TrioThread | None:
        """Mark the lease given back; the thread if this was its last user (to stop)."""
        with _lock:
            if self._released:
                return None
            self._released = True
            users = _users[self._thread] - 1
            if users:
                _users[self._thread] = users
                return None
            del _users[self._thread]
            if _threads.get(self._front) is self._thread:
                del _threads[self._front]
            return self._thread

    def release(self) -> None:
        """Give the lease back; the last one stops and joins the thread. Idempotent."""
        last = self._give_back()
        if last is not None:
            last.stop()

    async def arelease(self) -> None:
        """:meth:`release` from asyncio: the loop runs on while the thread winds down."""
        last = self._give_back()
        if last is not None:
            await last.astop()
