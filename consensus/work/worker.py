"""The worker side of work sharing: take tasks from a dispatcher, run the handler, send results.

::

    async with consensus.Worker("tcp://127.0.0.1:7100", handler=embed, concurrency=4):
        await trio.sleep_forever()

The worker dials the dispatcher's two endpoints (see :mod:`consensus.work.dispatcher`) and says
hello with its capacity: ``concurrency`` handlers at once plus ``prefetch`` tasks waiting
(default: as many again). It reads every batch at once, claims the tasks that fit in its
capacity and hands the rest back (``release``), renews its claims every ``lease/3``
while it holds them, and sends results as they finish, coalescing what finished
meanwhile into one message. A handler's exception is that attempt's error (the
dispatcher may retry it elsewhere), never the worker's death. On exit it says bye, so the
dispatcher hands what it held to others at once.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import secrets
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Self

import trio

from consensus.endpoints import resolve_work_endpoints
from consensus.failure import Failure
from consensus.room.roster import check_name
from consensus.runtime.handlers import Handler, run_handler
from consensus.runtime.service import Pulse, service_nursery
from consensus.work import protocol as W
from patterns import DEFAULT_MAX_MESSAGE_SIZE, Closed, MalformedMessage, MessageError, Pull, Push, TLSConfig

__all__ = ["Worker", "WorkerStatistics"]

log = logging.getLogger("consensus")


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """Counters of one worker since it opened (``worker.statistics()``)."""

    name: str
    capacity: int
    held: int  # tasks received and not finished (waiting or running)
    running: int
    received: int  # tasks taken (claimed)
    returned: int  # tasks handed back unstarted: no room when they arrived
    succeeded: int
    failed: int  # handler errors (and results that could not be sent)
    malformed: int  # frames or batches rejected (see the log)
    per_stream: Mapping[int, int]  # tasks held, by the dispatcher's stream id


@dataclass(slots=True)
class _Job:
    stream: int
    task_id: int
    attempt: int
    task: Any
    claimed_at: float


class Worker:
    """Runs ``handler(task)`` for tasks from a dispatcher; an async context manager."""

    def __init__(self, address: str | None = None, *, handler: Handler, tasks: str | None = None,
                 results: str | None = None, name: str | None = None, concurrency: int = 1,
                 prefetch: int | None = None, handler_threads: int | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, tls: TLSConfig | None = None) -> None:  # fmt: skip
        if not callable(handler):
            raise TypeError(f"handler must be callable (plain or async), got {handler!r}")
        for what, value, low in (("concurrency", concurrency, 1), ("prefetch", prefetch, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{what} must be an int >= {low}, got {value!r}")
        self.name = check_name(name if name is not None else f"worker-{os.getpid()}-{secrets.token_hex(3)}")
        self.endpoints = resolve_work_endpoints(address, tasks, results)
        self.concurrency = concurrency
        self.capacity = min(concurrency + (concurrency if prefetch is None else prefetch), W.MAX_CAPACITY)
        self._handler = handler
        # An async handler runs here with no deadline: awaited directly, without the cancel
        # scope and checks of run_handler (which plain handlers, run in threads, go through).
        self._direct = inspect.iscoroutinefunction(handler)
        self._threads = trio.CapacityLimiter(handler_threads or concurrency)
        opts: dict[str, Any] = {"name": self.name, "max_message_size": max_message_size, "tls": tls}
        self._pull = Pull(dial=self.endpoints.tasks, **opts)
        self._push = Push(dial=self.endpoints.results, **opts)
        self._queue: deque[_Job] = deque()
        self._holding: dict[tuple[int, int], _Job] = {}
        self._leases: dict[int, float] = {}
        self._outbox: dict[int, list[list[Any]]] = {}  # results to send, by stream (never an empty list)
        self._work, self._outgoing, self._lease_changed = Pulse(), Pulse(), Pulse()
        self._sending = trio.StrictFIFOLock()  # one task at a time may wait on a socket
        self._flushing = trio.StrictFIFOLock()  # one flush of the outbox at a time
        self._running = 0
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._counts = dict.fromkeys(("received", "returned", "succeeded", "failed", "malformed"), 0)

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} of {self.endpoints.tasks}: {len(self._holding)}/{self.capacity} held>"

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
                    await self._send({}, W.BYE)
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
        per_stream: dict[int, int] = {}
        for stream, _ in self._holding:
            per_stream[stream] = per_stream.get(stream, 0) + 1
        malformed = self._counts["malformed"] + self._pull.statistics().malformed
        return WorkerStatistics(
            name=self.name, capacity=self.capacity, held=len(self._holding), running=self._running,
            per_stream=MappingProxyType(per_stream), **(self._counts | {"malformed": malformed}),
        )  # fmt: skip

    # ------------------------------------------------------------------ loops
    async def _send(self, body: Any, kind: str) -> None:
        async with self._sending:
            await self._push.send(body, kind=kind)

    async def _hello_loop(self) -> None:
        greeted: set[int] = set()
        while True:
            live = {peer.id for peer in self._push.peers}
            if live - greeted:  # a new connection to the dispatcher (first, or after a restart)
                await self._send({"cap": self.capacity}, W.HELLO)
            greeted = live
            await self._push.wait_peers_changed()

    async def _receive_loop(self) -> None:
        while True:
            try:
                envelope = await self._pull.receive_envelope()
            except MalformedMessage as exc:  # counted by the socket
                log.warning("worker %r dropped a frame: %s", self.name, exc)
                continue
            except Closed:
                return
            try:
                if envelope.kind != W.TASKS:
                    raise W.bad(envelope, "a worker takes only 'tasks' messages")
                batch = W.parse_batch(envelope)
            except MalformedMessage as exc:
                self._counts["malformed"] += 1
                log.warning("worker %r ignored a message: %s", self.name, exc)
                continue
            await self._take(batch)

    async def _take(self, batch: W.Batch) -> None:
        """Claim what fits in the capacity, hand the rest back at once (push chose this
        worker for the batch, not the dispatcher: another may have room)."""
        now = trio.current_time()
        stream, holding, queue = batch.stream, self._holding, self._queue
        room = self.capacity - len(holding)
        claims: list[list[int]] = []
        returned: list[list[int]] = []
        for task_id, attempt, task in batch.tasks:
            key = (stream, task_id)
            job = holding.get(key)
            if job is not None:  # a redelivery of a task it still has: answer for the newer attempt
                job.attempt = max(job.attempt, attempt)
            elif room > 0:
                room -= 1
                job = holding[key] = _Job(stream, task_id, attempt, task, now)
                queue.append(job)
            else:
                returned.append([task_id, attempt])
                continue
            claims.append([task_id, attempt])
        self._counts["received"] += len(claims)
        self._counts["returned"] += len(returned)
        if self._leases.get(batch.stream) != batch.lease:
            self._leases[batch.stream] = batch.lease
            self._lease_changed.poke()
        if claims:  # claimed before any handler starts: a task that kills this worker counts
            await self._send({"st": batch.stream, "c": claims}, W.CLAIM)
        self._work.poke()
        if returned:
            await self._send({"st": batch.stream, "c": returned}, W.RELEASE)

    async def _runner(self) -> None:
        queue, outbox, holding, counts = self._queue, self._outbox, self._holding, self._counts
        handler, direct = self._handler, self._direct
        while True:
            while not queue:
                await self._work.wait()
            job = queue.popleft()
            self._running += 1
            try:
                if direct:
                    try:
                        ok, value = True, await handler(job.task)
                    except Exception as exc:  # noqa: BLE001 - that attempt's error, never the worker's death
                        log.info("handler %s failed: %r", getattr(handler, "__qualname__", handler), exc)
                        ok, value = False, Failure.from_exception(exc)
                else:
                    ok, value = await run_handler(handler, job.task, deadline=math.inf, limiter=self._threads)
            finally:
                self._running -= 1
            if ok:
                counts["succeeded"] += 1
            else:
                counts["failed"] += 1
                value = value.to_wire()
            item = [job.task_id, job.attempt, ok, value]
            items = outbox.get(job.stream)
            if items is not None:
                items.append(item)
            else:
                outbox[job.stream] = [item]
                if len(outbox) == 1:  # the send loop waits only while the outbox is empty
                    self._outgoing.poke()
            del holding[(job.stream, job.task_id)]

    async def _send_loop(self) -> None:
        while True:
            while not self._outbox:
                await self._outgoing.wait()
            await self._flush()

    async def _flush(self) -> None:
        """Send the results finished so far, one message per stream; an item leaves the
        outbox only once sent, so a flush at exit resends what a cancelled send missed."""
        async with self._flushing:  # the send loop's flush and the one at exit never interleave
            for stream, items in list(self._outbox.items()):
                finished = len(items)  # results that finish meanwhile join the list after these
                for start in range(0, finished, W.MAX_BATCH):
                    await self._send_results(stream, items[start : min(start + W.MAX_BATCH, finished)])
                del items[:finished]
                if not items:
                    del self._outbox[stream]

    async def _send_results(self, stream: int, items: list[list[Any]]) -> None:
        async def send(part: Sequence[list[Any]]) -> None:
            await self._send({"st": stream, "r": list(part)}, W.DONE)

        async def unsendable(item: list[Any], exc: MessageError) -> None:  # report that instead
            task_id, attempt = item[0], item[1]
            error = Failure(
                type(exc).__name__, f"the result of task {task_id} cannot be sent: {exc}"[:2000]
            )
            log.warning("worker %r: %s", self.name, error)
            self._counts["succeeded"] -= 1
            self._counts["failed"] += 1
            await send([[task_id, attempt, False, error.to_wire()]])

        await W.send_halving(items, send, unsendable)

    async def _renew_loop(self) -> None:
        """Claim again what is held, so a long handler keeps its lease."""
        while True:
            leases = {stream: self._leases[stream] for stream, _ in self._holding if stream in self._leases}
            self._leases = leases  # forget streams it holds nothing of
            period = max(0.01, min(leases.values(), default=1.0) / 3)
            with trio.move_on_after(period):
                await self._lease_changed.wait()
            now = trio.current_time()
            due: dict[int, list[list[int]]] = {}
            for job in list(self._holding.values()):
                if now - job.claimed_at >= self._leases.get(job.stream, math.inf) / 3:
                    due.setdefault(job.stream, []).append([job.task_id, job.attempt])
                    job.claimed_at = now
            for stream, claims in due.items():
                for start in range(0, len(claims), W.MAX_BATCH):
                    await self._send({"st": stream, "c": claims[start : start + W.MAX_BATCH]}, W.CLAIM)
