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
still unfinished, so each task has exactly one outcome.

Credit: each worker says in its hello how many tasks it will hold (its capacity). The
dispatcher keeps at most the sum of the capacities of connected workers in flight, across
all its distributions, and batches up to ``max_batch`` tasks per message. Push picks the
worker for each batch (round-robin among ready connections), so a batch may reach a
worker that is full while another has room: the full one hands the excess back at once
(``release``), and those tasks go out again first, their attempt not counted.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import AsyncIterable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, Self

import trio

from consensus.endpoints import resolve_work_endpoints
from consensus.room.roster import check_name
from consensus.runtime.service import Pulse, service_nursery
from consensus.work import protocol as W
from consensus.work.distribution import Distribution
from patterns import DEFAULT_MAX_MESSAGE_SIZE, Closed, Envelope, MalformedMessage, Pull, Push, TLSConfig

__all__ = ["Dispatcher", "DispatcherStatistics"]

log = logging.getLogger("consensus")


@dataclass(frozen=True, slots=True)
class DispatcherStatistics:
    """Counters of one dispatcher since it opened (``dispatcher.statistics()``)."""

    workers: Mapping[str, int]  # connected workers and the capacity each announced
    capacity: int  # tasks the connected workers will hold at once (0 without a task connection)
    in_flight: int  # attempts out now, over all distributions
    distributions: int  # running now
    distributions_started: int
    workers_joined: int
    workers_lost: int  # connection dropped, or said bye
    stale_replies: int  # claim or done messages for a distribution that has ended
    malformed: int  # messages or reply items rejected (see the log)


@dataclass(slots=True)
class _WorkerInfo:
    capacity: int = 0
    pipes: set[int] = field(default_factory=set)


class Dispatcher:
    """Hands out tasks; an async context manager that owns its sockets and nursery.

    ``address`` is one tcp/ipc/inproc address from which both endpoints are derived
    (:func:`consensus.work_endpoints`), or give ``tasks=`` and ``results=`` explicitly.
    """

    def __init__(self, address: str | None = None, *, tasks: str | None = None, results: str | None = None,
                 name: str = "dispatcher", max_batch: int = 256,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, tls: TLSConfig | None = None) -> None:  # fmt: skip
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= W.MAX_BATCH:
            raise ValueError(f"max_batch must be an int in 1..{W.MAX_BATCH}, got {max_batch!r}")
        self.endpoints = resolve_work_endpoints(address, tasks, results)
        self.name = name
        self.max_batch = max_batch
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size, "tls": tls}
        self._push = Push(listen=self.endpoints.tasks, **opts)
        self._pull = Pull(listen=self.endpoints.results, **opts)
        self._pulse = Pulse()
        self._workers_changed = Pulse()
        self._sending = trio.StrictFIFOLock()  # distributions take turns on the push socket
        self._workers: dict[str, _WorkerInfo] = {}
        self._pipe_names: dict[int, str] = {}
        self._streams: dict[int, Distribution] = {}
        self._stream_ids = itertools.count(secrets.randbits(40))
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._counts = dict.fromkeys(
            ("distributions_started", "workers_joined", "workers_lost", "stale_replies", "malformed"), 0
        )

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
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:  # fmt: skip
        assert self._stack is not None and self._nursery is not None
        for distribution in list(self._streams.values()):
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
        stream = next(self._stream_ids)
        distribution = Distribution(self, tasks, stream=stream, lease=lease, claim_timeout=claim_timeout,
                                    max_attempts=max_attempts, ordered=ordered, buffer=buffer)  # fmt: skip
        self._streams[stream] = distribution
        self._counts["distributions_started"] += 1
        return distribution

    @property
    def workers(self) -> tuple[str, ...]:
        """Connected workers that announced a capacity, sorted."""
        return tuple(sorted(name for name, info in self._workers.items() if info.capacity))

    @property
    def capacity(self) -> int:
        """Tasks the connected workers will hold at once (0 while no task connection is up)."""
        if not self._push.peers:
            return 0
        return sum(info.capacity for info in self._workers.values())

    async def wait_for_workers(self, count: int = 1) -> tuple[str, ...]:
        """Wait until at least ``count`` workers are connected and ready for tasks."""
        while len(self.workers) < count or not self._push.peers:
            await self._pulse.wait()
        return self.workers

    async def wait_workers_changed(self) -> tuple[str, ...]:
        """Wait for the next worker to become ready or go away; returns the workers then."""
        await self._workers_changed.wait()
        return self.workers

    def statistics(self) -> DispatcherStatistics:
        workers = {name: info.capacity for name, info in sorted(self._workers.items()) if info.capacity}
        malformed = self._counts["malformed"] + self._pull.statistics().malformed
        return DispatcherStatistics(
            workers=MappingProxyType(workers), capacity=self.capacity,
            in_flight=self._in_flight(),
            distributions=len(self._streams), **(self._counts | {"malformed": malformed}),
        )  # fmt: skip

    # ------------------------------------------------------------------ for distributions
    def _nursery_for(self, distribution: Distribution) -> trio.Nursery:
        if self._nursery is None or distribution.stream not in self._streams:
            raise RuntimeError(f"{self!r} is closed: {distribution!r} cannot start")
        return self._nursery

    def _stream_ended(self, distribution: Distribution) -> None:
        self._streams.pop(distribution.stream, None)

    def _worker_count(self) -> int:
        return sum(1 for info in self._workers.values() if info.capacity)

    def _in_flight(self) -> int:
        """Attempts out now, over all distributions."""
        return sum(d._ledger.in_flight for d in self._streams.values())

    # ------------------------------------------------------------------ background
    async def _receive_loop(self) -> None:
        while True:
            try:
                envelope, pipe = await self._pull.receive_from()
            except MalformedMessage as exc:  # counted by the socket
                log.warning("dispatcher %r dropped a frame: %s", self.name, exc)
                continue
            except Closed:
                return
            try:
                self._on_message(envelope, pipe)
            except MalformedMessage as exc:
                self._counts["malformed"] += 1
                log.warning("dispatcher %r ignored a message: %s", self.name, exc)

    def _on_message(self, envelope: Envelope, pipe: int) -> None:
        name = envelope.sender
        try:
            check_name(name)
        except ValueError as exc:
            raise W.bad(envelope, f"the sender must name the worker: {exc}") from None
        known = self._pipe_names.get(pipe)
        if known is not None and known != name:
            raise W.bad(envelope, f"connection {pipe} already belongs to worker {known!r}")
        if known is None and not self._pull.peers_state.was_removed(pipe):  # live, or about to be noted
            self._pipe_names[pipe] = name
            info = self._workers.get(name)
            if info is None:
                info = self._workers[name] = _WorkerInfo()
            info.pipes.add(pipe)
        kind = envelope.kind
        if kind in (W.CLAIM, W.RELEASE, W.DONE):
            stream, listed = W.parse_stream(envelope)
            distribution = self._streams.get(stream)
            if distribution is None:
                self._counts["stale_replies"] += 1
                return
            if kind == W.CLAIM and self._pull.peers_state.was_removed(pipe):
                return  # read after its connection closed: the claimant is gone, the claim is void
            self._counts["malformed"] += distribution._on_items(envelope, name, listed)
            self._pulse.poke()
        elif kind == W.HELLO:
            capacity = W.parse_capacity(envelope)
            info = self._workers.get(name)
            if info is None or not info.pipes:
                return  # its connection has already closed
            joined = not info.capacity
            info.capacity = capacity
            if joined:
                self._counts["workers_joined"] += 1
                log.info("dispatcher %r: worker %r ready for %d tasks", self.name, name, capacity)
                self._workers_changed.poke()
            self._pulse.poke()
        elif kind == W.BYE:
            self._lose(name, "said bye")
        else:
            raise W.bad(envelope, "unknown kind (expected hello, claim, release, done or bye)")

    def _lose(self, name: str, why: str) -> None:
        """The worker is gone (or leaving): what it holds goes to others at once."""
        info = self._workers.get(name)
        if info is None:
            return
        if info.capacity:
            self._counts["workers_lost"] += 1
            log.info("dispatcher %r: worker %r %s", self.name, name, why)
            info.capacity = 0
            self._workers_changed.poke()
        for distribution in list(self._streams.values()):
            distribution._worker_gone(name)
        if not info.pipes:
            del self._workers[name]
        self._pulse.poke()

    async def _watch_connections(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_task_connections)
            while True:
                await self._pull.wait_peers_changed()
                closed = self._pull.peers_state.was_removed
                gone = [pipe for pipe in self._pipe_names if closed(pipe)]
                if gone:
                    self._connection_lost()
                for pipe in gone:
                    name = self._pipe_names.pop(pipe)
                    info = self._workers[name]
                    info.pipes.discard(pipe)
                    if not info.pipes:
                        self._lose(name, "lost its connection")

    async def _watch_task_connections(self) -> None:
        peers = self._push.peers_state
        closed = peers.disconnected_total
        while True:  # capacity counts only while a task connection is up
            await self._push.wait_peers_changed()
            if peers.disconnected_total != closed:
                closed = peers.disconnected_total
                self._connection_lost()
            self._pulse.poke()

    def _connection_lost(self) -> None:
        for distribution in list(self._streams.values()):
            distribution._connection_lost()
