"""The dispatcher: hands tasks to whichever workers are free, over NNG push/pull, losing none.

::

    async with consensus.Dispatcher("tcp://127.0.0.1:7100") as dispatcher:   # P and P+1
        async with dispatcher.distribute(range(1000), lease=30) as outcomes:
            async for outcome in outcomes:
                print(outcome.task_id, outcome.result if outcome.ok else outcome.error)

Workers (:class:`consensus.Worker`, or room members joined with ``on_task=``) dial both
endpoints: tasks arrive on their pull socket; hello, claims, results and bye go back on
their push socket. NNG's push has no acknowledgement, so the dispatcher keeps a
:class:`~consensus.work.ledger.TaskLedger` per distribution: a worker claims each task on
receipt (an attempt unclaimed after ``claim_timeout`` was lost on the way), then renews
its claim every ``lease/3`` while it works; an attempt whose lease runs out, or whose
worker's connection drops, goes to another worker; a result from a superseded attempt is counted and dropped unless the task is
still unfinished, so each task has exactly one outcome. A worker cut off closes no
connection (no FIN crosses a link that is down): a worker that says nothing for its
``liveness`` limit (three of the heartbeats it announced, by default) is taken as gone
the same way, and its connections are closed.

The state of that conversation (workers, streams, credit, counters) is a sans-IO
:class:`~consensus.work.dispatcher_protocol.DispatcherProtocol`; this module only does
the I/O, the tasks and the deadlines around it.

Credit: each worker says in its hello how many tasks it will hold (its capacity). The
dispatcher keeps at most the sum of the capacities of connected workers in flight, across
all its distributions, and batches up to ``max_batch`` tasks per message. Push picks the
worker for each batch (round-robin among ready connections), so a batch may reach a
worker that is full while another has room: the full one hands the excess back at once
(``release``), and those tasks go out again first, their attempt not counted.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import trio

from consensus.endpoints import resolve_work_endpoints
from consensus.runtime.logs import RateLimited
from consensus.runtime.service import Pulse, service_nursery
from consensus.trust.secret import Secret, as_secret
from consensus.trust.work import DispatcherKeys
from consensus.work import protocol as W
from consensus.work.dispatcher_protocol import (
    MAX_CAPACITY,
    DeadlinesMoved,
    DispatcherEvent,
    DispatcherProtocol,
    DispatcherStatistics,
    LivenessMoved,
    Rejected,
    WorkerJoined,
    WorkerLeft,
    WorkerSilent,
)
from consensus.work.distribution import DispatcherLink, Distribution
from patterns import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Closed,
    MalformedMessage,
    Pull,
    Push,
    TLSConfig,
    Unauthenticated,
)

__all__ = ["Dispatcher", "DispatcherStatistics"]

log = logging.getLogger("consensus.work")
hostile = RateLimited(log)  # frames refused by the secret, strangers' connections: a line per kind every 10 s


class Dispatcher:
    """Hands out tasks; an async context manager that owns its sockets and nursery.

    ``address`` is one tcp/ipc/inproc address from which both endpoints are derived
    (:func:`consensus.work_endpoints`), or give ``tasks=`` and ``results=`` explicitly.
    ``max_capacity`` caps the tasks one worker may hold at once, whatever its hello says.
    With ``secret`` (bytes, str or a :class:`~consensus.Secret`) only workers holding the
    same secret get tasks, and a result counts only from the worker that received its task
    (``docs/work.md`` 6); without one the dispatcher trusts its network.
    ``liveness``: seconds a worker may say nothing before it is taken as gone (default:
    three of the heartbeats it announced; never less than two; ``docs/work.md``, liveness).
    """

    def __init__(self, address: str | None = None, *, tasks: str | None = None, results: str | None = None,
                 name: str = "dispatcher", max_batch: int = 256,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, tls: TLSConfig | None = None,
                 secret: Secret | bytes | str | None = None, max_capacity: int = MAX_CAPACITY,
                 liveness: float | None = None) -> None:  # fmt: skip
        secret = as_secret(secret)
        keys = None if secret is None else DispatcherKeys(secret)
        self.protocol = DispatcherProtocol(max_batch=max_batch, first_stream=secrets.randbits(40),
                                           max_capacity=max_capacity, keys=keys, liveness=liveness)  # fmt: skip
        self.endpoints = resolve_work_endpoints(address, tasks, results)
        self.name = name
        self.max_batch = max_batch
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size, "tls": tls}
        vouching = self.protocol.task_pipes
        self._push = Push(listen=self.endpoints.tasks, guard=keys.tasks if keys else None,
                          admit=vouching.admit if vouching else None, **opts)  # fmt: skip
        self._pull = Pull(listen=self.endpoints.results, guard=keys.results if keys else None, **opts)
        self._pulse = Pulse()
        self._workers_changed = Pulse()
        self._deadlines_moved = Pulse()
        self._liveness_moved = Pulse()
        self._sending = trio.StrictFIFOLock()  # distributions take turns on the push socket
        self._link = DispatcherLink(
            self.protocol, self._pulse, self._deadlines_moved, self._send, self._start
        )
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._distributions: list[Distribution] = []  # to close on exit (those ended are dropped then)

    def __repr__(self) -> str:
        return f"<Dispatcher {self.name!r} at {self.endpoints.tasks}: {len(self.workers)} workers>"

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._push)
            await stack.enter_async_context(self._pull)
            self._nursery = await stack.enter_async_context(service_nursery())
            self._nursery.start_soon(self._receive_loop)
            self._nursery.start_soon(self._watch_connections)
            self._nursery.start_soon(self._watch_liveness)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:  # fmt: skip
        assert self._stack is not None and self._nursery is not None
        for distribution in self._running():
            await distribution.aclose()
        self._nursery.cancel_scope.cancel()
        return await self._stack.__aexit__(exc_type, exc, tb)

    # ------------------------------------------------------------------ public
    def distribute(self, tasks: Iterable[Any] | AsyncIterable[Any], *, lease: float = 60.0,
                   claim_timeout: float = 5.0, max_attempts: int = 3, ordered: bool = False,
                   buffer: int | None = None) -> Distribution:  # fmt: skip
        """Hand out ``tasks`` (any iterable or async iterable, consumed lazily); returns an
        async iterator of outcomes, best used as ``async with ... as outcomes``.

        ``claim_timeout``: seconds a batch may take to reach a worker and be claimed (workers
        claim on receipt); longer, and its tasks are presumed lost in a connection that
        died. ``lease``: seconds a claimed attempt may go without a renewal from its worker
        (workers renew every ``lease/3`` while they hold it) before it goes to another.
        A worker whose connection drops loses what it claimed at once.
        ``max_attempts``: attempts per task, lost ones included; then the task comes out as
        an error carrying the last failure. ``ordered``: yield in submission order.
        ``buffer``: tasks taken from the iterable beyond those in flight (default: as many
        as the workers' capacity)."""
        if self._nursery is None:
            raise RuntimeError(f"{self!r} is not open: use it as `async with Dispatcher(...) as d:`")
        distribution = Distribution(self._link, tasks, lease=lease, claim_timeout=claim_timeout,
                                    max_attempts=max_attempts, ordered=ordered, buffer=buffer)  # fmt: skip
        self._distributions = [*self._running(), distribution]
        return distribution

    def _running(self) -> list[Distribution]:
        """The distributions not yet ended, in the order they started."""
        running = {stream.id for stream in self.protocol.streams}
        return [d for d in self._distributions if d.stream in running]

    @property
    def workers(self) -> tuple[str, ...]:
        """Connected workers that announced a capacity, sorted."""
        return self.protocol.workers

    @property
    def capacity(self) -> int:
        """Tasks the connected workers will hold at once (0 while no task connection is up)."""
        return self.protocol.capacity

    async def wait_for_workers(self, count: int = 1) -> tuple[str, ...]:
        """Wait until at least ``count`` workers are connected and ready for tasks."""
        while len(self.workers) < count or not self.protocol.ready:
            await self._pulse.wait()
        return self.workers

    async def wait_workers_changed(self) -> tuple[str, ...]:
        """Wait for the next worker to become ready or go away; returns the workers then."""
        await self._workers_changed.wait()
        return self.workers

    def statistics(self) -> DispatcherStatistics:
        pulled = self._pull.statistics()
        return self.protocol.statistics(socket_malformed=pulled.malformed,
                                        socket_unauthenticated=pulled.unauthenticated)  # fmt: skip

    # ------------------------------------------------------------------ for distributions (its link)
    async def _send(self, frame: W.Frame) -> None:
        async with self._sending:
            await self._push.send(frame.body, kind=frame.kind)

    def _start(self, run: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is None:
            raise RuntimeError(f"{self!r} is not open")
        self._nursery.start_soon(run)

    # ------------------------------------------------------------------ background
    def _react(self, events: tuple[DispatcherEvent, ...]) -> None:
        for event in events:
            if type(event) is Rejected:
                if isinstance(event.error, Unauthenticated):
                    hostile.warning("refused", "dispatcher %r refused %d items from %r: %s",
                                    self.name, event.count, event.worker, event.error)  # fmt: skip
                elif event.stream is None:
                    log.warning("dispatcher %r ignored a message: %s", self.name, event.error)
                else:  # one line per message is enough
                    log.warning("distribution %d ignored %d items from %r: %s",
                                event.stream, event.count, event.worker, event.error)  # fmt: skip
            elif type(event) is WorkerJoined:
                log.info("dispatcher %r: worker %r ready for %d tasks", self.name, event.name, event.capacity)
                self._workers_changed.poke()
            elif type(event) is WorkerLeft:
                log.info("dispatcher %r: worker %r %s", self.name, event.name, event.reason)
                self._workers_changed.poke()
            elif type(event) is WorkerSilent:
                log.warning("dispatcher %r: worker %r said nothing for %.1f s: taken as gone, its tasks "
                            "go to others", self.name, event.name, event.silence)  # fmt: skip
                for pipe in event.pipes:  # it comes back, if ever, on new connections with a hello
                    self._pull.disconnect(pipe)
                for peer in self._push.peers:
                    if peer.address in event.task_addresses:
                        self._push.disconnect(peer.id)
            elif type(event) is LivenessMoved:
                self._liveness_moved.poke()
            elif type(event) is DeadlinesMoved:
                self._deadlines_moved.poke()
            else:
                self._pulse.poke()

    async def _receive_loop(self) -> None:
        receive, closed = self.protocol.receive, self._pull.peers_state.was_removed
        while True:
            try:
                envelope, pipe = await self._pull.receive_from()
            except Unauthenticated as exc:  # counted by the socket; a stranger may send many
                hostile.warning("sealed", "dispatcher %r dropped a frame: %s", self.name, exc)
                continue
            except MalformedMessage as exc:  # counted by the socket
                hostile.warning("frame", "dispatcher %r dropped a frame: %s", self.name, exc)
                continue
            except Closed:
                return
            self._react(receive(envelope, pipe, trio.current_time(), pipe_closed=closed(pipe)))

    async def _watch_connections(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_task_connections)
            closed = self._pull.peers_state.was_removed
            while True:
                await self._pull.wait_peers_changed()
                gone = [pipe for pipe in self.protocol.pipes if closed(pipe)]
                self._react(self.protocol.connections_closed(gone, trio.current_time()))

    async def _watch_liveness(self) -> None:
        """Check for silent workers when the first could be, looking again whenever a worker
        starts being watched (its deadline may be the earliest)."""
        protocol = self.protocol
        while True:
            deadline = protocol.liveness_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._liveness_moved.wait()
            self._react(protocol.check_liveness(trio.current_time()))

    async def _watch_task_connections(self) -> None:
        peers = self._push.peers_state
        closed = peers.disconnected_total
        vouching = self.protocol.task_pipes
        while True:  # capacity counts only while a task connection is up
            now = trio.current_time()
            wake = None
            if vouching is not None:  # with a secret: close what no worker vouched for in time
                vouching.connections({peer.id: peer.address for peer in self._push.peers}, now)
                strangers, wake = vouching.due(now)
                for pipe in strangers:
                    hostile.warning("stranger", "dispatcher %r closed a task connection no worker vouched for "
                                    "(does the worker have the secret?)", self.name)  # fmt: skip
                    self._push.disconnect(pipe)
            self._react(self.protocol.task_connections(len(self._push.peers), now,
                                                       closed=peers.disconnected_total != closed))  # fmt: skip
            closed = peers.disconnected_total
            with trio.move_on_at(math.inf if wake is None else wake):  # a stranger's grace may end first
                await self._push.wait_peers_changed()
