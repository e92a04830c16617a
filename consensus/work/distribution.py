"""One stream of work handed out by a dispatcher: the driver of a :class:`TaskLedger`.

``async with dispatcher.distribute(tasks, lease=30) as outcomes:`` (or ``room.distribute``)
starts three tasks in the dispatcher's nursery, which share the ledger and one pulse:

- the **feeder** pulls tasks from the caller's iterable (plain or async) only while the
  ledger wants more, so a stream of a million tasks is never held at once;
- the **pump** takes assignments while the workers have credit (the capacity they
  announced, less what is in flight to them from every stream) and pushes them in
  batches;
- the **expirer** wakes at the earliest lease deadline and takes lost attempts back.

Replies reach the ledger through the dispatcher's receive loop and its
:class:`~consensus.work.dispatcher_protocol.DispatcherProtocol`, which also decides each
batch (:meth:`~consensus.work.dispatcher_protocol.DispatcherProtocol.grant`); a
distribution knows its dispatcher only through a :class:`DispatcherLink`.
The caller's ``async for`` pops outcomes from the ledger, which keeps flow control
honest: finished outcomes nobody has consumed count toward the ledger's high water.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType, TracebackType
from typing import Any, Self

import trio

from consensus.runtime.service import Pulse
from consensus.work import protocol as W
from consensus.work.dispatcher_protocol import DispatcherProtocol
from consensus.work.ledger import TaskLedger
from consensus.work.task import Outcome, WorkerShare
from patterns import MessageError

__all__ = ["CancelReport", "DispatcherLink", "Distribution", "DistributionStatistics"]

log = logging.getLogger("consensus.work")


@dataclass(frozen=True, slots=True)
class DistributionStatistics:
    """Where one distribution's tasks are (``distribution.statistics()``).

    ``submitted == queued + in_flight + done + cancelled``; ``done == ok + failed``;
    ``yielded`` of the done outcomes have been consumed. ``waiting_for_workers`` is true
    while work remains but no worker has credit (none connected, or none said hello)."""

    stream: int
    submitted: int
    queued: int
    in_flight: int
    done: int
    yielded: int
    ok: int
    failed: int  # dead letters: tasks that ended as errors
    redelivered: int  # attempts taken back (unclaimed, lease expired, worker lost) and queued again
    returned: int  # attempts handed back unstarted by a worker with no room (they do not count)
    retried: int  # attempts that failed in the handler and were queued again
    stale: int  # replies ignored: superseded attempt, or the task had already finished
    late_accepted: int  # successes of an earlier attempt that arrived in time to count
    cancelled: int
    malformed: int  # reply items that could not come from this distribution
    workers: int
    capacity: int
    waiting_for_workers: bool
    per_worker: Mapping[str, WorkerShare]


@dataclass(frozen=True, slots=True)
class CancelReport:
    """What a distribution closed early left unfinished: never yielded, never retried."""

    in_flight: Mapping[int, Any]  # task id -> task: sent to a worker, no outcome yet
    queued: Mapping[int, Any]  # task id -> task: taken from the iterable, never sent (or to resend)
    unconsumed: int  # outcomes that had finished but were not yielded


@dataclass(frozen=True, slots=True)
class DispatcherLink:
    """All a distribution needs of the dispatcher that made it."""

    protocol: DispatcherProtocol  # streams, credit and batches
    pulse: Pulse  # poked on any change: replies, credit, outcomes consumed, tasks taken
    deadlines_moved: Pulse  # poked when some attempt's deadline came forward
    send: Callable[[W.Frame], Awaitable[None]]  # one frame on the tasks socket, in turn
    start: Callable[[Callable[[], Awaitable[None]]], None]  # a task in the dispatcher's nursery


class Distribution:
    """An async iterator of :class:`Outcome` for one stream of tasks; also an async
    context manager that cancels the rest on exit. Create it with ``distribute()``."""

    def __init__(self, link: DispatcherLink, tasks: Iterable[Any] | AsyncIterable[Any], *,
                 lease: float, claim_timeout: float, max_attempts: int, ordered: bool,
                 buffer: int | None) -> None:  # fmt: skip
        if not isinstance(tasks, (Iterable, AsyncIterable)) or isinstance(tasks, (str, bytes, Mapping)):
            raise TypeError(f"tasks must be an iterable or async iterable of task values, got {tasks!r:.80}")
        self._link = link
        self._tasks = tasks
        self._ledger = TaskLedger(lease=lease, claim_timeout=claim_timeout, max_attempts=max_attempts,
                                  window=0, ordered=ordered, prefetch=buffer)  # fmt: skip
        self._protocol = link.protocol
        self._stream = link.protocol.open_stream(self._ledger)
        self.stream = self._stream.id
        self._pulse = link.pulse
        self._ready: deque[Outcome] = deque()
        self._scope = trio.CancelScope()
        self._started = False
        self._running = False
        self._closed = False
        self._error: BaseException | None = None  # the runner died: raised to the consumer
        self._source_error: BaseException | None = None  # the iterable raised: after the last outcome
        self.cancelled: CancelReport | None = None

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<Distribution stream {self.stream}: {s.submitted} submitted, {s.queued} queued, "
            f"{s.in_flight} in flight, {s.done} done, {s.workers} workers>"
        )

    # ------------------------------------------------------------------ consumer side
    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        await self.aclose()

    def __aiter__(self) -> Distribution:
        return self

    async def __anext__(self) -> Outcome:
        if not self._started:
            self._start()
        ready = self._ready
        while True:
            if ready:
                await trio.lowlevel.checkpoint_if_cancelled()
                return ready.popleft()
            popped = self._ledger.pop_outcomes()
            if popped:
                self._ready.extend(popped)
                self._pulse.poke()  # room under the high water: the feeder may go on
                continue
            if self._ledger.done or self._closed:
                error, self._source_error = self._source_error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            if self._error is not None:
                error, self._error = self._error, None
                self._closed = True
                raise error
            await self._pulse.wait()

    async def aclose(self) -> None:
        """Stop dispatching. What was queued or in flight is reported in :attr:`cancelled`
        (and logged); late replies to it are counted stale. Idempotent."""
        if self._closed and self.cancelled is not None:
            return
        self._closed = True
        in_flight = self._ledger.in_flight_tasks()
        queued = self._ledger.queued_tasks()
        self._ledger.cancel()
        unconsumed = len(self._ready) + len(self._ledger.pop_outcomes())
        self._ready.clear()
        self.cancelled = CancelReport(MappingProxyType(in_flight), MappingProxyType(queued), unconsumed)
        if in_flight or queued:
            log.warning(
                "distribution %d closed early: %d tasks in flight and %d queued will not finish",
                self.stream, len(in_flight), len(queued),
            )  # fmt: skip
        self._scope.cancel()
        self._protocol.close_stream(self._stream)
        self._pulse.poke()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> DistributionStatistics:
        s = self._ledger.statistics()
        capacity = self._protocol.capacity
        working = not (self._ledger.input_closed and s.queued == 0 and s.in_flight == 0)
        return DistributionStatistics(
            stream=self.stream, submitted=s.submitted, queued=s.queued, in_flight=s.in_flight,
            done=s.ready + s.released, yielded=s.released, ok=s.done_ok, failed=s.failed,
            redelivered=s.redelivered, returned=s.returned, retried=s.retried, stale=s.stale, late_accepted=s.late_accepted,
            cancelled=s.cancelled, malformed=self._stream.malformed, workers=len(self._protocol.workers),
            capacity=capacity, waiting_for_workers=working and capacity == 0, per_worker=s.per_worker,
        )  # fmt: skip

    # ------------------------------------------------------------------ background
    def _start(self) -> None:
        if self._started:
            return
        if not self._protocol.is_open(self._stream):
            raise RuntimeError(f"the dispatcher of {self!r} is closed: it cannot start")
        self._started = self._running = True
        self._link.start(self._run)

    async def _run(self) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._feed)
                    nursery.start_soon(self._expire)
                    await self._pump()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # a failure of the sockets, say: give it to the consumer
            self._error = group.exceptions[0] if len(group.exceptions) == 1 else group
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, who sees it at the next step
            self._error = exc
        finally:
            self._running = False
            self._protocol.close_stream(self._stream)
            self._pulse.poke()

    async def _feed(self) -> None:
        ledger, pulse = self._ledger, self._pulse
        try:
            if isinstance(self._tasks, AsyncIterable):
                source = aiter(self._tasks)
                while True:
                    while not ledger.wants_more():
                        await pulse.wait()
                    try:
                        task = await anext(source)
                    except StopAsyncIteration:
                        break
                    ledger.submit(task)
                    pulse.poke()
            else:
                items = iter(self._tasks)
                exhausted = False
                while not exhausted:
                    while not (room := ledger.room()):
                        await pulse.wait()
                    exhausted = ledger.submit_many(islice(items, room)) < room
                    pulse.poke()
                    await trio.lowlevel.checkpoint()
        except Exception as exc:  # noqa: BLE001 - the caller's iterable failed: finish what it gave, then raise
            log.warning(
                "distribution %d: the task iterable raised %r; finishing the tasks taken", self.stream, exc
            )
            self._source_error = exc
        ledger.close_input()
        pulse.poke()

    async def _pump(self) -> None:
        """Send while the dispatcher protocol grants batches (see its ``grant``)."""
        ledger, protocol, stream, pulse = self._ledger, self._protocol, self._stream, self._pulse
        while not (ledger.input_closed and ledger.pending == 0):
            grant = protocol.grant(stream, trio.current_time())
            if grant.more_room:  # the feeder may take more
                pulse.poke()
            if grant.frame is not None:
                await W.send_halving(grant.frame, self._link.send, self._unsendable)
                continue
            await pulse.wait()

    async def _unsendable(self, _stream: int, item: list[Any], exc: MessageError) -> None:
        """A task that cannot be sent (no wire form, too large) ends at once."""
        self._protocol.unsendable(self._stream, item, exc, trio.current_time())
        log.warning("distribution %d: task %d has no wire form: %s", self.stream, item[0], exc)
        self._pulse.poke()

    async def _expire(self) -> None:
        ledger = self._ledger
        while True:  # any deadline set from now on is at least claim_timeout away
            deadline = ledger.next_deadline()
            soonest = trio.current_time() + ledger.claim_timeout
            with trio.move_on_at(soonest if deadline is None else min(deadline, soonest)):
                await self._link.deadlines_moved.wait()
            if ledger.expire(trio.current_time()):
                self._pulse.poke()
