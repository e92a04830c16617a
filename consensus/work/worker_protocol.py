"""The worker's side of the work conversation, sans IO: :class:`WorkerProtocol`.

It takes the frames the tasks socket decoded, the transport's news about connections and
the time, and returns the frames to send and events for the driver
(:class:`consensus.work.worker.Worker`). It owns what the worker holds per stream (waiting
or running), the claims on receipt and their renewals every ``lease/3``, the release of
what does not fit, the results waiting to go out (batched per stream), the hello on each
new connection, the heartbeat (a ``beat`` when nothing else went out for ``heartbeat``
seconds: the dispatcher takes a silent worker as gone, see :mod:`consensus.work.liveness`),
and every counter. It never reads a clock or touches a socket.

The per-task path stays cheap: :meth:`WorkerProtocol.next_job` and
:meth:`WorkerProtocol.finished` make no event objects; results leave in batches
(:meth:`WorkerProtocol.results_due`). Without a secret the hello says the worker reads
flat batches, and it answers a flat batch with flat claims and results (the items end to
end: no list per task to build and encode; :mod:`consensus.work.protocol`). The values it
hands the driver (statistics, jobs, events, steps) are :mod:`consensus.work.worker_events`'.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from types import MappingProxyType
from typing import Any, Final

from consensus.failure import Failure
from consensus.trust.work import WorkerKeys
from consensus.work import protocol as W
from consensus.work.worker_events import (
    Job,
    LeaseChanged,
    Rejected,
    Step,
    TasksQueued,
    WorkerEvent,
    WorkerStatistics,
)
from patterns import EncodeError, Envelope, MalformedMessage, MessageError, unencodable_part

__all__ = ["Job", "LeaseChanged", "Rejected", "Step", "TasksQueued", "WorkerEvent", "WorkerProtocol",
           "WorkerStatistics"]  # fmt: skip

MIN_RENEW_PERIOD: Final = 0.01  # seconds: the renewal check never spins faster
HEARTBEAT: Final = 1.0  # seconds between a worker's beats, by default (silent 3 of them: gone)


class WorkerProtocol:
    """The worker's state of the conversation with one dispatcher."""

    def __init__(self, name: str, capacity: int, *, keys: WorkerKeys | None = None,
                 heartbeat: float | None = HEARTBEAT) -> None:  # fmt: skip
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= W.MAX_CAPACITY:
            raise ValueError(f"capacity must be an int in 1..{W.MAX_CAPACITY}, got {capacity!r}")
        if heartbeat is not None and (
            isinstance(heartbeat, bool)
            or not isinstance(heartbeat, (int, float))
            or not W.MIN_HEARTBEAT <= heartbeat <= W.MAX_HEARTBEAT
        ):
            raise ValueError(
                f"heartbeat must be seconds in {W.MIN_HEARTBEAT}..{W.MAX_HEARTBEAT} (or None), got {heartbeat!r}"
            )
        self.name = name
        self.capacity = capacity
        self.heartbeat = None if heartbeat is None else float(heartbeat)
        self._last_sent = -math.inf  # when a frame last went out
        self._queue: deque[Job] = deque()  # held, waiting for a handler
        self._holding: dict[tuple[int, int], Job] = {}  # (stream, task id) -> job: waiting or running
        self._leases: dict[int, float] = {}  # by stream, as the last batch said
        self._outbox: dict[int, list[list[Any]]] = {}  # results to send, by stream (never an empty list)
        self._flat_outbox: dict[int, list[Any]] = {}  # the same of flat batches, the items end to end
        self._greeted: frozenset[int] = frozenset()
        self.keys = keys  # with a secret: the session with the dispatcher
        self._task_pipes: frozenset[str] = frozenset()  # local addresses of the task connections
        self._running = 0
        self._received = self._returned = self._succeeded = self._failed = self._malformed = 0

    # ------------------------------------------------------------------ queries
    @property
    def held(self) -> int:
        return len(self._holding)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        """Tasks held that no handler has started."""
        return len(self._queue)

    def holds(self, stream: int, task_id: int) -> bool:
        return (stream, task_id) in self._holding

    def statistics(self, socket_malformed: int = 0, socket_unauthenticated: int = 0) -> WorkerStatistics:
        per_stream: dict[int, int] = {}
        for stream, _ in self._holding:
            per_stream[stream] = per_stream.get(stream, 0) + 1
        return WorkerStatistics(
            name=self.name, capacity=self.capacity, held=len(self._holding), running=self._running,
            received=self._received, returned=self._returned, succeeded=self._succeeded, failed=self._failed,
            malformed=self._malformed + socket_malformed, per_stream=MappingProxyType(per_stream),
            unauthenticated=socket_unauthenticated,
        )  # fmt: skip

    # ------------------------------------------------------------------ connections
    def connections(self, live: Collection[int]) -> W.Frame | None:
        """The results connections up now; a hello when one is new (first, or after a restart)."""
        new = not set(live) <= self._greeted
        self._greeted = frozenset(live)
        return self._hello() if new else None

    def task_connections(self, local: Collection[str]) -> W.Frame | None:
        """The local addresses of the task connections up now; a hello when one is new (with
        a secret the dispatcher sends batches only to connections its workers vouch for; and
        it closes a silent worker's task connections, which it knows by these addresses)."""
        new = not set(local) <= self._task_pipes
        self._task_pipes = frozenset(local)
        return self._hello() if new and self._greeted else None

    def _hello(self) -> W.Frame:
        return W.hello_frame(self.capacity, kx=None if self.keys is None else self.keys.kx,
                             task_pipes=self._task_pipes, heartbeat=self.heartbeat,
                             flat=self.keys is None)  # fmt: skip

    def bye(self) -> W.Frame | None:
        """Leaving: the dispatcher hands what is held to others at once (send results first).
        None with a secret before any batch came: there is no session to say it under, and
        nothing held."""
        return None if self.keys is not None and not self.keys.ready else W.bye_frame()

    # ------------------------------------------------------------------ frames in
    def receive(self, envelope: Envelope, now: float) -> Step:
        """A frame from the tasks connection: claim what fits in the capacity, hand the rest
        back at once (push chose this worker for the batch, not the dispatcher: another may
        have room). A bad frame is counted and rejected whole (its claims would be unsendable)."""
        try:
            if envelope.kind != W.TASKS:
                raise W.bad(envelope, "a worker takes only 'tasks' messages")
            batch = W.parse_batch(envelope)
            if self.keys is not None:  # the guard checked the seal; the batch names the session
                if batch.tickets is None:
                    raise W.bad(envelope, "a batch of a dispatcher with a secret carries tickets")
                try:
                    self.keys.dispatcher_key(batch.kx)
                except ValueError as exc:
                    raise W.bad(envelope, str(exc)) from None
        except MalformedMessage as exc:
            self._malformed += 1
            return Step(events=(Rejected(exc),))
        if batch.flat:
            return self._receive_flat(batch, envelope.sender, now)
        stream, holding, queue = batch.stream, self._holding, self._queue
        room = self.capacity - len(holding)
        claims: list[list[int]] = []
        returned: list[list[int]] = []
        tickets = batch.tickets  # with a secret: each item's, quoted back in the claim or release
        claimed: list[bytes] = []
        released: list[bytes] = []
        queued = 0
        for index, (task_id, attempt, task) in enumerate(batch.tasks):
            key = (stream, task_id)
            job = holding.get(key)
            if job is not None:  # a redelivery of a task it still has: answer for the newer attempt
                job.attempt = max(job.attempt, attempt)
            elif room > 0:
                room -= 1
                job = holding[key] = Job(stream, task_id, attempt, task, now, envelope.sender)
                queue.append(job)
                queued += 1
            else:
                returned.append([task_id, attempt])
                if tickets is not None:
                    released.append(tickets[index])
                continue
            claims.append([task_id, attempt])
            if tickets is not None:
                claimed.append(tickets[index])
        self._received += len(claims)
        claim = W.claim_frame(stream, claims, claimed if tickets is not None else None) if claims else None
        return self._step(batch, queued, claim, returned, released if tickets is not None else None)

    def _receive_flat(self, batch: W.Batch, sender: str, now: float) -> Step:
        """:meth:`receive` of a flat batch (never with a secret): claims end to end too."""
        stream, holding, queue = batch.stream, self._holding, self._queue
        room = self.capacity - len(holding)
        claims: list[int] = []
        returned: list[list[int]] = []
        queued = 0
        for task_id, attempt, task in batch.items():
            key = (stream, task_id)
            job = holding.get(key)
            if job is not None:  # a redelivery of a task it still has: answer for the newer attempt
                job.attempt = max(job.attempt, attempt)
            elif room > 0:
                room -= 1
                job = holding[key] = Job(stream, task_id, attempt, task, now, sender, True)
                queue.append(job)
                queued += 1
            else:
                returned.append([task_id, attempt])
                continue
            claims += (task_id, attempt)
        self._received += len(claims) // 2
        claim = W.claim_frame(stream, claims, flat=True) if claims else None
        return self._step(batch, queued, claim, returned, None)

    def _step(self, batch: W.Batch, queued: int, claim: W.Frame | None, returned: list[list[int]],
              released: list[bytes] | None) -> Step:  # fmt: skip
        """What taking ``batch`` produced: the claim (sent first), the release, the events."""
        self._returned += len(returned)
        events: list[WorkerEvent] = []
        if self._leases.get(batch.stream) != batch.lease:
            self._leases[batch.stream] = batch.lease
            events.append(LeaseChanged())
        if queued:
            events.append(TasksQueued(queued))
        frames: list[W.Frame] = []
        if claim is not None:  # claimed before any handler starts: a task that kills this worker counts
            frames.append(claim)
        if returned:
            frames.append(W.release_frame(batch.stream, returned, released))
        return Step(tuple(frames), tuple(events))

    # ------------------------------------------------------------------ handlers
    def next_job(self) -> Job | None:
        """The next task to run (a handler starts it now), or None."""
        if not self._queue:
            return None
        self._running += 1
        return self._queue.popleft()

    def finished(self, job: Job, ok: bool, value: Any) -> bool:
        """The handler of ``job`` returned ``value`` (ok) or failed with a :class:`Failure`.
        Returns True when the outbox was empty until now (the sender may be asleep)."""
        self._running -= 1
        if ok:
            self._succeeded += 1
        else:
            self._failed += 1
            value = value.to_wire()
        del self._holding[(job.stream, job.task_id)]
        if job.flat:
            flat = self._flat_outbox.get(job.stream)
            if flat is not None:
                flat += (job.task_id, job.attempt, ok, value)
                return False
            self._flat_outbox[job.stream] = [job.task_id, job.attempt, ok, value]
            return len(self._flat_outbox) == 1 and not self._outbox
        item = [job.task_id, job.attempt, ok, value]
        items = self._outbox.get(job.stream)
        if items is not None:
            items.append(item)
            return False
        self._outbox[job.stream] = [item]
        return len(self._outbox) == 1 and not self._flat_outbox

    def abandoned(self, job: Job) -> None:
        """The handler of ``job`` was cancelled (the worker is closing): it stays held, so
        the dispatcher takes it back when the worker leaves."""
        self._running -= 1

    # ------------------------------------------------------------------ frames out
    @property
    def has_results(self) -> bool:
        return bool(self._outbox or self._flat_outbox)

    def results_due(self) -> list[W.Frame]:
        """``done`` frames for the results finished so far, at most ``MAX_BATCH`` items each;
        each leaves the outbox only when :meth:`results_sent` says it went out, so a send
        cut short is sent again."""
        frames = W.per_stream(W.flat_done_frame, self._flat_outbox, W.STRIDE[W.DONE]) if self._flat_outbox else []
        return [*frames, *W.per_stream(W.done_frame, self._outbox)] if self._outbox else frames

    def results_sent(self, frame: W.Frame) -> None:
        """``frame``, from :meth:`results_due`, went out (those due before it too)."""
        outbox: dict[int, Any] = self._flat_outbox if "rf" in frame.body else self._outbox
        stream, count = frame.body["st"], len(W.frame_items(frame))
        items = outbox.get(stream)
        if items is None:
            return
        del items[:count]
        if not items:
            del outbox[stream]

    def unsendable(self, stream: int, item: list[Any], exc: MessageError) -> W.Frame:
        """A result with no wire form (or too large): report that failure in its place,
        marked final (another attempt would return the same). The message says what in
        the result has no CBOR form and where it sits."""
        task_id, attempt = item[0], item[1]
        where = unencodable_part(item[3]) if isinstance(exc, EncodeError) else None
        why = where or str(exc)
        error = Failure(
            type(exc).__name__, f"the result of task {task_id} cannot be sent: {why}"[: W.MAX_ERROR_TEXT]
        )
        if item[2] is True:
            self._succeeded -= 1
            self._failed += 1
        return W.done_frame(stream, [[task_id, attempt, False, error.to_wire() | {"final": True}]])

    # ------------------------------------------------------------------ heartbeat
    def sent(self, now: float) -> None:
        """A frame went out at ``now``: the dispatcher heard from this worker."""
        self._last_sent = now

    def beat(self, now: float) -> W.Frame | None:
        """A ``beat`` when nothing went out for ``heartbeat`` seconds (None: not due, no
        heartbeat, no results connection yet, or, with a secret, no session to seal it under
        before the first batch)."""
        if (
            self.heartbeat is None
            or not self._greeted
            or (self.keys is not None and not self.keys.ready)
            or now - self._last_sent < self.heartbeat
        ):
            return None
        return W.beat_frame()

    def beat_wait(self, now: float) -> float:
        """Seconds until a beat may be due (inf: this worker does not beat)."""
        if self.heartbeat is None:
            return math.inf
        if not self._greeted or (self.keys is not None and not self.keys.ready):
            return self.heartbeat  # nothing to beat on yet: look again a heartbeat later
        return max(MIN_RENEW_PERIOD, self._last_sent + self.heartbeat - now)

    # ------------------------------------------------------------------ renewals
    def renew_period(self) -> float:
        """Seconds until the next renewal check: a third of the shortest lease held."""
        held = {stream for stream, _ in self._holding}
        self._leases = {stream: lease for stream, lease in self._leases.items() if stream in held}
        return max(MIN_RENEW_PERIOD, min(self._leases.values(), default=1.0) / 3)

    def renewals(self, now: float) -> list[W.Frame]:
        """Claims again what was last claimed ``lease/3`` ago or more, so a long handler
        keeps its lease."""
        due: dict[int, list[list[int]]] = {}
        leases = self._leases
        for job in self._holding.values():
            if now - job.claimed_at >= leases.get(job.stream, math.inf) / 3:
                due.setdefault(job.stream, []).append([job.task_id, job.attempt])
                job.claimed_at = now
        return W.per_stream(W.claim_frame, due)
