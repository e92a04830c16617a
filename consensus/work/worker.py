"""The worker side of work sharing: take tasks from a dispatcher, run the handler, send results.

::

    async with consensus.Worker("tcp://127.0.0.1:7100", handler=embed, concurrency=4):
        await trio.sleep_forever()

The worker dials the dispatcher's two endpoints (see :mod:`consensus.work.dispatcher`) and says
hello with its capacity: ``concurrency`` handlers at once plus ``prefetch`` tasks waiting
(default: as many again). It reads every batch at once, claims the tasks that fit in its
capacity and hands the rest back (``release``), renews its claims every ``lease/3``
while it holds them, and sends results as they finish, coalescing what finished
meanwhile into one message. Every ``heartbeat`` seconds in which it sent nothing else it
sends a ``beat``: a dispatcher that hears nothing from it for three of them (its
``liveness``) takes it as gone, as when its connection drops (a host cut off closes none). A handler's exception is that attempt's error (the
dispatcher may retry it elsewhere), never the worker's death. On exit it says bye, so the
dispatcher hands what it held to others at once.

The state of that conversation (what is held, claims, renewals, results waiting, counters)
is a sans-IO :class:`~consensus.work.worker_protocol.WorkerProtocol`; this module only
does the I/O, runs the handlers and keeps the deadlines.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import secrets
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import trio

from consensus.endpoints import resolve_work_endpoints
from consensus.failure import Failure
from consensus.room.roster import check_name
from consensus.runtime.context import set_current_from
from consensus.runtime.handlers import Handler, run_handler
from consensus.runtime.logs import RateLimited
from consensus.runtime.service import Pulse, service_nursery
from consensus.trust.secret import Secret, as_secret
from consensus.trust.work import WorkerKeys
from consensus.work import protocol as W
from consensus.work.worker_protocol import (
    HEARTBEAT,
    LeaseChanged,
    Rejected,
    TasksQueued,
    WorkerProtocol,
    WorkerStatistics,
)
from patterns import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Closed,
    MalformedMessage,
    MessageError,
    Pull,
    Push,
    TLSConfig,
    Unauthenticated,
)

__all__ = ["Worker", "WorkerStatistics"]

log = logging.getLogger("consensus.work")
hostile = RateLimited(log)  # frames refused by the secret: a line every 10 s at most


class Worker:
    """Runs ``handler(task)`` for tasks from a dispatcher; an async context manager.

    ``secret``: the dispatcher's (or the room's) secret, when it has one (``docs/work.md`` 6).
    ``heartbeat``: seconds between beats when nothing else goes out (None: never beat, and
    the dispatcher never takes this worker as silent; ``docs/work.md``, liveness)."""

    def __init__(self, address: str | None = None, *, handler: Handler, tasks: str | None = None,
                 results: str | None = None, name: str | None = None, concurrency: int = 1,
                 prefetch: int | None = None, handler_threads: int | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, tls: TLSConfig | None = None,
                 secret: Secret | bytes | str | None = None, heartbeat: float | None = HEARTBEAT) -> None:  # fmt: skip
        if not callable(handler):
            raise TypeError(f"handler must be callable (plain or async), got {handler!r}")
        for what, value, low in (("concurrency", concurrency, 1), ("prefetch", prefetch, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{what} must be an int >= {low}, got {value!r}")
        self.name = check_name(name if name is not None else f"worker-{os.getpid()}-{secrets.token_hex(3)}")
        self.endpoints = resolve_work_endpoints(address, tasks, results)
        self.concurrency = concurrency
        self.capacity = min(concurrency + (concurrency if prefetch is None else prefetch), W.MAX_CAPACITY)
        secret = as_secret(secret)
        keys = None if secret is None else WorkerKeys(secret, self.name)
        self.protocol = WorkerProtocol(self.name, self.capacity, keys=keys, heartbeat=heartbeat)
        self._handler = handler
        # An async handler runs here with no deadline: awaited directly, without the cancel
        # scope and checks of run_handler (which plain handlers, run in threads, go through).
        self._direct = inspect.iscoroutinefunction(handler)
        self._threads = trio.CapacityLimiter(handler_threads or concurrency)
        opts: dict[str, Any] = {"name": self.name, "max_message_size": max_message_size, "tls": tls}
        self._pull = Pull(dial=self.endpoints.tasks, guard=keys.tasks if keys else None, **opts)
        self._push = Push(dial=self.endpoints.results, guard=keys.results if keys else None, **opts)
        self._work, self._outgoing, self._lease_changed = Pulse(), Pulse(), Pulse()
        self._sending = trio.StrictFIFOLock()  # one task at a time may wait on a socket
        self._flushing = trio.StrictFIFOLock()  # one flush of the outbox at a time
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} of {self.endpoints.tasks}: {self.protocol.held}/{self.capacity} held>"

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._push)
            await stack.enter_async_context(self._pull)
            self._nursery = nursery = await stack.enter_async_context(service_nursery())
            nursery.start_soon(self._hello_loop)
            nursery.start_soon(self._receive_loop)
            nursery.start_soon(self._send_loop)
            nursery.start_soon(self._renew_loop)
            nursery.start_soon(self._beat_loop)
            for _ in range(self.concurrency):
                nursery.start_soon(self._runner)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:  # fmt: skip
        assert self._stack is not None and self._nursery is not None
        self._nursery.cancel_scope.cancel()
        if self._push.peers:  # send what finished, then hand back the rest at once, not at its leases
            with trio.move_on_after(0.5) as scope:
                scope.shield = True
                try:
                    await self._flush()
                    bye = self.protocol.bye()
                    if bye is not None:
                        await self._send(bye)
                except Closed:
                    pass
        return await self._stack.__aexit__(exc_type, exc, tb)

    @property
    def connected(self) -> bool:
        """Both connections to the dispatcher are up."""
        return bool(self._push.peers) and bool(self._pull.peers)

    async def wait_connected(self) -> None:
        while not self._push.peers:
            await self._push.wait_peers_changed()
        while not self._pull.peers:
            await self._pull.wait_peers_changed()

    def statistics(self) -> WorkerStatistics:
        pulled = self._pull.statistics()
        return self.protocol.statistics(
            socket_malformed=pulled.malformed, socket_unauthenticated=pulled.unauthenticated
        )

    # ------------------------------------------------------------------ loops
    async def _send(self, frame: W.Frame) -> None:
        async with self._sending:
            if frame.kind != W.HELLO:  # a new results connection hears our hello before anything else
                hello = self.protocol.connections({peer.id for peer in self._push.peers})
                if hello is not None:
                    await self._push.send(hello.body, kind=hello.kind)
            await self._push.send(frame.body, kind=frame.kind)
            self.protocol.sent(trio.current_time())

    async def _hello_loop(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._vouch_loop)  # the hello names the task connections
            while True:
                hello = self.protocol.connections({peer.id for peer in self._push.peers})
                if hello is not None:
                    await self._send(hello)
                await self._push.wait_peers_changed()

    async def _vouch_loop(self) -> None:
        while True:
            hello = self.protocol.task_connections({peer.local for peer in self._pull.peers})
            if hello is not None:
                await self._send(hello)
            await self._pull.wait_peers_changed()

    async def _receive_loop(self) -> None:
        protocol = self.protocol
        while True:
            try:
                envelope = await self._pull.receive_envelope()
            except Unauthenticated as exc:  # counted by the socket; a stranger may send many
                hostile.warning("sealed", "worker %r dropped a frame: %s", self.name, exc)
                continue
            except MalformedMessage as exc:  # counted by the socket
                hostile.warning("frame", "worker %r dropped a frame: %s", self.name, exc)
                continue
            except Closed:
                return
            step = protocol.receive(envelope, trio.current_time())
            for event in step.events:
                if type(event) is TasksQueued:
                    self._work.poke()
                elif type(event) is LeaseChanged:
                    self._lease_changed.poke()
                elif type(event) is Rejected:
                    log.warning("worker %r ignored a message: %s", self.name, event.error)
            for frame in step.frames:
                await self._send(frame)

    async def _runner(self) -> None:
        protocol, handler, direct = self.protocol, self._handler, self._direct
        while True:
            job = protocol.next_job()
            while job is None:
                await self._work.wait()
                job = protocol.next_job()
            set_current_from(job)  # this task runs only handlers; the job says what it answers, if asked
            try:
                if direct:
                    try:
                        ok, value = True, await handler(job.task)
                    except Exception as exc:  # noqa: BLE001 - that attempt's error, never the worker's death
                        log.info("handler %s failed: %r", getattr(handler, "__qualname__", handler), exc)
                        ok, value = False, Failure.from_exception(exc)
                else:
                    ok, value = await run_handler(handler, job.task, deadline=math.inf, limiter=self._threads)
            except BaseException:
                protocol.abandoned(job)
                raise
            if protocol.finished(job, ok, value):  # the send loop waits only while the outbox is empty
                self._outgoing.poke()

    async def _send_loop(self) -> None:
        while True:
            while not self.protocol.has_results:
                await self._outgoing.wait()
            await self._flush()

    async def _flush(self) -> None:
        """Send the results finished so far, one message per stream (and per MAX_BATCH)."""
        async with self._flushing:  # the send loop's flush and the one at exit never interleave
            for frame in self.protocol.results_due():
                await W.send_halving(frame, self._send, self._unsendable)
                self.protocol.results_sent(frame)

    async def _unsendable(self, stream: int, item: list[Any], exc: MessageError) -> None:
        """A result with no wire form (or too large): report that failure in its place."""
        log.warning("worker %r: the result of task %d cannot be sent: %s", self.name, item[0], exc)
        await self._send(self.protocol.unsendable(stream, item, exc))

    async def _beat_loop(self) -> None:
        """A beat whenever nothing else went out for a heartbeat: this worker is alive."""
        protocol = self.protocol
        while True:
            await trio.sleep(protocol.beat_wait(trio.current_time()))
            beat = protocol.beat(trio.current_time())
            if beat is not None:
                await self._send(beat)

    async def _renew_loop(self) -> None:
        """Claim again what is held, so a long handler keeps its lease."""
        protocol = self.protocol
        while True:
            with trio.move_on_after(protocol.renew_period()):
                await self._lease_changed.wait()
            for frame in protocol.renewals(trio.current_time()):
                await self._send(frame)
