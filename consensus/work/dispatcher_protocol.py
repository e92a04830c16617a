"""The dispatcher's side of the work conversation, sans IO: :class:`DispatcherProtocol`.

It takes the frames the results socket decoded (with the connection each came from), the
transport's news about connections, and the time, and returns events for the driver
(:class:`consensus.work.dispatcher.Dispatcher`). It owns the worker registry (who said
hello, over which connections, with what capacity), the streams (one
:class:`~consensus.work.ledger.TaskLedger` per distribution), which stream each frame is
for, the credit that decides when and how large the next batch is, and every counter.
It never reads a clock, never touches a socket, never wakes a task.

It also notices a worker gone silent (:meth:`DispatcherProtocol.check_liveness`, the rule
of :mod:`consensus.work.liveness`): what it held goes to others as when it disconnects.

Frames in: ``hello``, ``claim``, ``release``, ``done``, ``beat``, ``bye`` (:meth:`DispatcherProtocol.receive`);
frames out: ``tasks`` batches (:meth:`DispatcherProtocol.grant`, built by
:func:`consensus.work.protocol.tasks_frame`). Its records (:class:`Grant`, :class:`Stream`,
a worker's entry) are :mod:`consensus.work.dispatcher_records`'.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any, Final

from consensus.failure import Failure
from consensus.room.roster import check_name
from consensus.trust.work import DispatcherKeys, TaskPipes, parse_task_pipes
from consensus.work import protocol as W
from consensus.work.dispatcher_events import (
    NOTHING,
    PROGRESS,
    DeadlinesMoved,
    DispatcherEvent,
    DispatcherStatistics,
    LivenessMoved,
    Progress,
    Rejected,
    WorkerJoined,
    WorkerLeft,
    WorkerSilent,
)
from consensus.work.dispatcher_records import WAIT, Grant, Stream, WorkerRecord
from consensus.work.ledger import TaskLedger
from consensus.work.liveness import Liveness
from consensus.work.vetting import hello_problem, vet
from patterns import EncodeError, Envelope, MalformedMessage, MessageError, Unauthenticated, unencodable_part

__all__ = [
    "DeadlinesMoved",
    "DispatcherEvent",
    "DispatcherProtocol",
    "DispatcherStatistics",
    "Grant",
    "LivenessMoved",
    "Progress",
    "Rejected",
    "Stream",
    "WorkerJoined",
    "WorkerLeft",
    "WorkerSilent",
]

CONNECTION_LOSS_GRACE: Final = 0.5  # seconds a live worker has to claim what was pushed before a loss
MAX_CAPACITY: Final = 256  # default cap on the capacity one worker's hello may announce


class DispatcherProtocol:
    """The dispatcher's state of the conversation with its workers, for all its streams."""

    def __init__(self, *, max_batch: int = 256, first_stream: int = 0,
                 loss_grace: float = CONNECTION_LOSS_GRACE, max_capacity: int = MAX_CAPACITY,
                 keys: DispatcherKeys | None = None, task_pipes: TaskPipes | None = None,
                 liveness: float | None = None) -> None:  # fmt: skip
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= W.MAX_BATCH:
            raise ValueError(f"max_batch must be an int in 1..{W.MAX_BATCH}, got {max_batch!r}")
        if (
            isinstance(max_capacity, bool)
            or not isinstance(max_capacity, int)
            or not 1 <= max_capacity <= W.MAX_CAPACITY
        ):
            raise ValueError(f"max_capacity must be an int in 1..{W.MAX_CAPACITY}, got {max_capacity!r}")
        self.max_batch = max_batch
        self.max_capacity = max_capacity
        self.keys = keys
        # With a secret: the task connections and who vouched for them (push must not pick a stranger).
        self.task_pipes = task_pipes if task_pipes is not None or keys is None else TaskPipes()
        self._capped = self._refused = 0
        self.loss_grace = loss_grace
        self._next_stream = first_stream
        self._streams: dict[int, Stream] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._pipe_names: dict[int, str] = {}
        self._task_connections = 0
        self._started = self._joined = self._lost = self._stale = self._malformed = self._silent = 0
        self.liveness = Liveness(liveness)  # who has gone silent (see consensus.work.liveness)
        self._watch_started = False  # a worker's liveness clock started during this frame

    # ------------------------------------------------------------------ streams
    def open_stream(self, ledger: TaskLedger) -> Stream:
        """Register a distribution's ledger; replies quoting the returned stream's id reach it."""
        stream = Stream(self._next_stream, ledger)
        self._next_stream += 1
        self._streams[stream.id] = stream
        self._started += 1
        return stream

    def close_stream(self, stream: Stream) -> None:
        """The distribution ended: later replies for it count as stale. Idempotent."""
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]

    def is_open(self, stream: Stream) -> bool:
        return self._streams.get(stream.id) is stream

    @property
    def streams(self) -> tuple[Stream, ...]:
        return tuple(self._streams.values())

    # ------------------------------------------------------------------ queries
    @property
    def workers(self) -> tuple[str, ...]:
        """Connected workers that announced a capacity, sorted."""
        return tuple(sorted(name for name, info in self._workers.items() if info.capacity))

    @property
    def capacity(self) -> int:
        """Tasks the connected workers will hold at once (0 while no task connection is up)."""
        if not self._task_connections:
            return 0
        return sum(info.capacity for info in self._workers.values())

    @property
    def ready(self) -> bool:
        """A task connection is up (push has somewhere to send)."""
        return self._task_connections > 0

    @property
    def in_flight(self) -> int:
        """Attempts out now, over all streams."""
        return sum(stream.ledger.in_flight for stream in self._streams.values())

    @property
    def pipes(self) -> tuple[int, ...]:
        """The results connections replies came over, still open as far as this object knows."""
        return tuple(self._pipe_names)

    def statistics(self, socket_malformed: int = 0, socket_unauthenticated: int = 0) -> DispatcherStatistics:
        workers = {name: info.capacity for name, info in sorted(self._workers.items()) if info.capacity}
        return DispatcherStatistics(
            workers=MappingProxyType(workers), capacity=self.capacity, in_flight=self.in_flight,
            distributions=len(self._streams), distributions_started=self._started,
            workers_joined=self._joined, workers_lost=self._lost, stale_replies=self._stale,
            malformed=self._malformed + socket_malformed, unauthenticated=self._refused + socket_unauthenticated,
            capped=self._capped, task_connections_closed=self.task_pipes.refused if self.task_pipes else 0,
            workers_silent=self._silent,
        )  # fmt: skip

    # ------------------------------------------------------------------ sending
    def grant(self, stream: Stream, now: float) -> Grant:
        """The next batch for ``stream`` while there is credit. Credit comes back a few
        tasks at a time; sending each trickle at once would shrink batches to single tasks
        (and every reply with them), so a batch waits for room for a good one: half a
        worker's share, at most ``max_batch``; with nothing in flight anywhere it takes
        whatever fits."""
        capacity = self.capacity
        credit = capacity - self.in_flight
        if credit <= 0 or (self.task_pipes is not None and self.task_pipes.held):
            return WAIT  # held: push might hand the batch to a connection no worker vouched for
        serving = [info for info in self._workers.values() if info.capacity]
        workers = len(serving)
        good = min(self.max_batch, max(1, capacity // (2 * max(1, workers))))
        if credit < good and credit != capacity:
            return WAIT
        ledger = stream.ledger
        more_room = ledger.in_flight + credit > ledger.window
        ledger.set_window(ledger.in_flight + credit)
        # Flat (the items end to end) only when whichever worker push picks reads it.
        flat = self.keys is None and all(info.flat for info in serving)
        items = ledger.next_assignments(now, min(self.max_batch, credit), flat=flat)
        if not items:
            return Grant(None, more_room) if more_room else WAIT
        if flat:
            return Grant(W.tasks_frame(stream.id, ledger.lease, items, flat=True), more_room)
        if self.keys is not None:
            frame = W.tasks_frame(stream.id, ledger.lease, items, tickets=self.keys.tickets(stream.id, items),
                                  kx=self.keys.kx)  # fmt: skip
            return Grant(frame, more_room)
        return Grant(W.tasks_frame(stream.id, ledger.lease, items), more_room)

    def unsendable(self, stream: Stream, item: list[Any], exc: MessageError, now: float) -> Failure:
        """A task (``[task_id, attempt, task]`` of a granted batch) with no wire form, or too
        large, ends at once as an error (no retry can mend it); returns that error."""
        task_id, attempt = item[0], item[1]
        why = (
            unencodable_part(item[2]) if isinstance(exc, EncodeError) else None
        ) or exc  # where in the task
        error = Failure(type(exc).__name__, f"task {task_id} cannot be sent: {why}"[: W.MAX_ERROR_TEXT])
        stream.ledger.failure(task_id, attempt, error, worker=None, now=now, final=True)
        return error

    # ------------------------------------------------------------------ connections
    def task_connections(self, count: int, now: float, *, closed: bool) -> tuple[DispatcherEvent, ...]:
        """The tasks socket has ``count`` connections; ``closed``: one closed since last told."""
        self._task_connections = count
        if closed:
            return (*self._hasten(now), *PROGRESS)
        return PROGRESS

    def connections_closed(self, pipes: Iterable[int], now: float) -> tuple[DispatcherEvent, ...]:
        """Results connections closed: a worker with none left is gone, and what was pushed
        but not claimed may have died with them."""
        gone = [pipe for pipe in pipes if pipe in self._pipe_names]
        if not gone:
            return NOTHING
        events = self._hasten(now)
        for pipe in gone:
            name = self._pipe_names.pop(pipe)
            info = self._workers[name]
            info.pipes.discard(pipe)
            if not info.pipes:
                events.extend(self._lose(name, "lost its connection", now))
        return tuple(events)

    def check_liveness(self, now: float) -> tuple[DispatcherEvent, ...]:
        """Workers silent past their liveness limit at ``now`` are gone: what they held goes to
        others at once, and what was pushed unclaimed may have gone to them (a
        :class:`WorkerSilent` each, then as when a worker leaves). Call it by
        :meth:`liveness_deadline`."""
        silent = self.liveness.due(now)
        if not silent:
            return NOTHING
        events = self._hasten(now)
        for name, silence in silent:
            info = self._workers.get(name)
            if info is None or not info.capacity:
                continue
            self._silent += 1
            events.append(WorkerSilent(name, silence, tuple(sorted(info.pipes)), info.task_addresses))
            events.extend(self._lose(name, f"said nothing for {silence:.1f} s (taken as gone)", now))
        return tuple(events)

    def liveness_deadline(self) -> float | None:
        """When :meth:`check_liveness` may next find a worker silent (None: no worker watched)."""
        return self.liveness.deadline()

    def _hasten(self, now: float) -> list[DispatcherEvent]:
        """A live worker claims on receipt, so wait only a moment for claims, not claim_timeout."""
        moved = 0
        for stream in self._streams.values():
            moved += stream.ledger.hasten_unclaimed(now, min(self.loss_grace, stream.ledger.claim_timeout))
        return [DeadlinesMoved()] if moved else []

    def _lose(self, name: str, why: str, now: float) -> list[DispatcherEvent]:
        """The worker is gone (or leaving): what it holds goes to others at once."""
        info = self._workers.get(name)
        if info is None:
            return []
        events: list[DispatcherEvent] = []
        if info.capacity:
            self._lost += 1
            info.capacity = 0
            events.append(WorkerLeft(name, why))
        for stream in self._streams.values():
            stream.ledger.worker_gone(name, now)
        self.liveness.forget(name)
        if not info.pipes:
            del self._workers[name]
            if self.keys is not None and self.task_pipes is not None:  # its session and vouchers go with it
                self.keys.forget(name)
                self.task_pipes.forget(name)
        events.extend(PROGRESS)
        return events

    # ------------------------------------------------------------------ frames
    def receive(self, envelope: Envelope, pipe: int, now: float, *,
                pipe_closed: bool = False) -> tuple[DispatcherEvent, ...]:  # fmt: skip
        """One decoded frame from results connection ``pipe``; ``pipe_closed``: the transport
        already saw that connection close (the frame was read after). Bad input is counted
        and comes back as :class:`Rejected`; it never raises."""
        try:
            events = self._receive(envelope, pipe, now, pipe_closed)
            if self._watch_started:  # rare: a worker's first frame after its hello
                self._watch_started = False
                return (*events, LivenessMoved())
            return events
        except Unauthenticated as exc:
            self._refused += 1
            return (Rejected(exc, worker=envelope.sender if isinstance(envelope.sender, str) else None),)
        except MalformedMessage as exc:
            self._malformed += 1
            return (Rejected(exc, worker=envelope.sender if isinstance(envelope.sender, str) else None),)

    def _receive(
        self, envelope: Envelope, pipe: int, now: float, pipe_closed: bool
    ) -> tuple[DispatcherEvent, ...]:
        name = envelope.sender
        known = self._pipe_names.get(pipe)
        if self.keys is not None and envelope.kind == W.HELLO:  # before the hello's name takes a connection
            info = self._workers.get(name) if isinstance(name, str) else None
            hello_problem(self.keys, envelope, live=info is not None and bool(info.pipes - {pipe}))
        if known is None:
            try:
                check_name(name)
            except ValueError as exc:
                raise W.bad(envelope, f"the sender must name the worker: {exc}") from None
            if not pipe_closed:  # live, or about to be noted by the transport
                self._pipe_names[pipe] = name
                info = self._workers.get(name)
                if info is None:
                    info = self._workers[name] = WorkerRecord()
                info.pipes.add(pipe)
        elif known != name:
            raise W.bad(envelope, f"connection {pipe} already belongs to worker {known!r}")
        kind = envelope.kind
        if kind != W.HELLO and not pipe_closed and self.liveness.heard(name, now):
            self._watch_started = True
        if kind in (W.CLAIM, W.DONE, W.RELEASE):
            stream_id, listed, flat = W.parse_items(envelope)
            stream = self._streams.get(stream_id)
            if stream is None:
                self._stale += 1
                return NOTHING
            if kind == W.CLAIM and pipe_closed:
                return NOTHING  # read after its connection closed: the claimant is gone, the claim is void
            refused: list[Exception] = []
            if self.keys is not None:  # only the worker that received an attempt may claim or answer it
                if flat:  # (a worker with a secret never gets a flat batch to answer in kind)
                    listed, flat = W.nested(listed, W.STRIDE[kind]), False
                listed, refused = vet(self.keys, stream.ledger, stream.id, envelope, name, listed)
                self._refused += len(refused)
            errors = self._apply(stream, envelope, name, listed, flat, now)
            stream.malformed += len(errors)
            self._malformed += len(errors)
            rejected = tuple(Rejected(bad[0], len(bad), stream.id, name) for bad in (refused, errors) if bad)
            return (*rejected, *PROGRESS) if rejected else PROGRESS
        if kind == W.HELLO:
            capacity = W.parse_capacity(envelope)
            heartbeat = W.parse_heartbeat(envelope)
            try:
                addresses = tuple(parse_task_pipes(envelope.body.get("tp", [])))
            except ValueError as exc:
                raise W.bad(envelope, str(exc)) from None
            info = self._workers.get(name)
            if pipe_closed or info is None or not info.pipes:
                return NOTHING  # its connection has already closed: it speaks for no connection
            if capacity > self.max_capacity:  # no one worker holds more, whatever it says
                self._capped += 1
                capacity = self.max_capacity
            if self.keys is not None and self.task_pipes is not None:
                self.keys.bind(name, envelope.body["kx"])
                self.task_pipes.vouch(name, envelope.body["tp"])
            joined = not info.capacity
            info.capacity = capacity
            info.task_addresses = addresses
            info.flat = envelope.body.get("fl") is True
            self.liveness.announce(name, heartbeat)
            if joined:
                self._joined += 1
                return (WorkerJoined(name, capacity), *PROGRESS)
            return PROGRESS
        if kind == W.BEAT:
            return NOTHING  # alive: heard above
        if kind == W.BYE:
            return tuple(self._lose(name, "said bye", now))
        raise W.bad(envelope, "unknown kind (expected hello, claim, release, done, beat or bye)")

    @staticmethod
    def _apply(
        stream: Stream, envelope: Envelope, worker: str, listed: list[Any], flat: bool, now: float
    ) -> list[Exception]:
        """Apply a claim, release or done list (``flat``: the items end to end) to the
        stream's ledger; the errors of bad items."""
        ledger = stream.ledger
        if envelope.kind == W.DONE:
            replies, rejected = W.replies(envelope, listed, flat)
            return [*rejected, *ledger.replies(replies, worker=worker, now=now)]
        claims, bad_claims = W.claims(envelope, listed, flat)
        if envelope.kind == W.CLAIM:
            return [*bad_claims, *ledger.claims(claims, worker=worker, now=now)]
        errors: list[Exception] = list(bad_claims)
        for task_id, attempt in claims:
            try:
                ledger.release(task_id, attempt, worker=worker, now=now)
            except ValueError as exc:  # a task id never issued, an attempt never dispatched
                errors.append(exc)
        return errors
