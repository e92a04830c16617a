"""A trio loop in a thread of its own, reached from asyncio or from plain code.

:class:`TrioThread` is the one crossing both front ends use (docs/asyncio.md says why this
one, with the figures). The objects opened through one front share one
(:mod:`consensus.bridge.shared`): it runs ``trio.run`` in a thread until the last of their
context managers exits, then the thread ends and is joined: nothing stays behind.

A call goes in through ``TrioToken.run_sync_soon`` (trio's own thread-safe entry, a write
to its wake-up socket, no polling) whose callback starts a task in the thread's nursery;
the task runs the call inside a cancel scope the caller can cancel, and hands back a
:class:`Done` through a callback: ``loop.call_soon_threadsafe`` for an asyncio caller, a
lock released for a blocking one. Whatever a call raises goes to its caller alone. No
thread per call, no thread per message.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from patterns import Closed

__all__ = ["Done", "TrioThread"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """How a call in the trio thread ended: its value, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # no error: the call returned this


class TrioThread:
    """One ``trio.run`` in a thread of its own (not a daemon: it is joined): :meth:`start`, calls, :meth:`stop`.

    Plain methods (:meth:`call`, :meth:`call_sync`) block the calling thread; :meth:`acall`
    awaits on the caller's asyncio loop. Once the thread has ended, :meth:`call_sync` runs
    the function in the calling thread (nothing else touches the objects any more, so a
    ``statistics()`` after the ``with`` block still answers) and the others raise
    :class:`~patterns.Closed`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._thread: threading.Thread | None = None
        self._finished = threading.Event()
        self._lock = threading.Lock()  # between astop() adding a waiter and the thread's end
        self._waiters: list[Callable[[], object]] = []
        self._crash: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<TrioThread {self.name!r} {state}>"

    @property
    def running(self) -> bool:
        return self._token is not None and not self._finished.is_set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the thread and return once its trio loop takes calls (about a millisecond)."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=f"consensus-bridge {self.name}")
        self._thread.start()
        ready.wait()
        if self._crash is not None:
            raise self._crash

    def _main(self, ready: threading.Event) -> None:
        async def serve() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()

        try:
            trio.run(serve)
        except BaseException as exc:  # noqa: BLE001 - kept for start() and the log; the thread must end
            self._crash = exc
        finally:
            with self._lock:
                self._finished.set()
                waiters, self._waiters = self._waiters, []
            ready.set()
            for wake in waiters:
                wake()

    def stop(self) -> None:
        """End the loop (tasks still running are cancelled) and join the thread. Idempotent."""
        if self._thread is None:
            return
        if self.running:
            assert self._token is not None and self._stop is not None
            try:
                self._token.run_sync_soon(self._stop.set)
            except trio.RunFinishedError:
                pass
        self._thread.join()

    async def astop(self) -> None:
        """:meth:`stop` from asyncio: the loop keeps running while the thread winds down."""
        if self._thread is None:
            return
        if self.running:
            assert self._token is not None and self._stop is not None
            try:
                self._token.run_sync_soon(self._stop.set)
            except trio.RunFinishedError:
                pass
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._finished.is_set():
                self._waiters.append(functools.partial(loop.call_soon_threadsafe, _settle, ended, None))
            else:
                ended.set_result(None)
        await ended
        self._thread.join()  # at most the few instructions left after the wake-up

    # ------------------------------------------------------------------ calls
    def submit(self, fn: Callable[..., Awaitable[T]], *args: Any,
               done: Callable[[Done[T]], None]) -> Callable[[], None]:  # fmt: skip
        """Start ``await fn(*args)`` in the thread; ``done`` gets its :class:`Done` there.
        Returns ``cancel()``: callable from any thread, it cancels the call, which then
        reports an ``asyncio.CancelledError`` (unless it finished first)."""
        scope = trio.CancelScope()

        async def run() -> None:
            result: Done[T] = Done(error=asyncio.CancelledError("cancelled by its caller"))
            try:
                with scope:
                    try:
                        result = Done(await fn(*args))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller, raised there
                        result = Done(error=exc)
            except BaseException as exc:  # the thread stopping, or a SystemExit... raised by this call
                if _is_cancelled(exc):
                    result = Done(error=Closed(f"{self.name} stopped"))
                    raise
                result = Done(error=exc)  # for its caller alone: the thread is shared, the others go on
            finally:
                try:
                    done(result)
                except Exception:  # noqa: BLE001, S110 - nobody left to tell; the thread's other calls go on
                    pass

        self.soon(self._nursery_start, run)  # one hop: the callback starts the task itself

        def cancel() -> None:
            try:
                self.soon(scope.cancel)
            except Closed:
                pass

        return cancel

    def _nursery_start(self, run: Callable[[], Awaitable[None]]) -> None:
        self._nursery.start_soon(run)  # type: ignore[union-attr]  # set before the token is

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run the plain ``fn(*args)`` in the thread soon; :class:`~patterns.Closed` once it ended."""
        if self._token is None or self._finished.is_set():
            raise Closed(f"{self.name} is closed")
        try:
            self._token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            raise Closed(f"{self.name} is closed") from None

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` in the thread, awaited on the running asyncio loop.
        Cancelling the awaiting task cancels the call: trio stops it at its next checkpoint
        (not waited for: the task's cancellation is not delayed by a thread hop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Done[T]] = loop.create_future()

        def done(result: Done[T]) -> None:
            try:
                loop.call_soon_threadsafe(_settle, future, result)
            except RuntimeError:  # the caller's loop closed meanwhile: nobody waits any more
                pass

        cancel = self.submit(fn, *args, done=done)
        try:
            return (await future).unwrap()
        except asyncio.CancelledError:
            cancel()
            raise

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` in the thread, blocking this one. Ctrl-C cancels the call."""
        finished = threading.Lock()  # held until the call is done: cheaper than an Event
        finished.acquire()
        box: list[Done[T]] = []

        def done(result: Done[T]) -> None:
            box.append(result)
            finished.release()

        cancel = self.submit(fn, *args, done=done)
        try:
            finished.acquire()
        except BaseException:  # Ctrl-C: cancel the call and wait for it to end
            cancel()
            if not box:
                finished.acquire()
            raise
        return box[0].unwrap()

    def call_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (plain: a property, ``statistics()``) in the thread; in this one once
        the thread has ended."""
        if not self.running:
            return fn(*args)
        try:
            return trio.from_thread.run_sync(fn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            return fn(*args)


def _is_cancelled(exc: BaseException) -> bool:
    """``exc`` is trio cancelling the task (the thread stopping), alone or in a group."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


def _settle(future: asyncio.Future[T], result: T) -> None:
    if not future.done():
        future.set_result(result)
