"""The values the worker's sans-IO side hands its driver: statistics, the jobs it holds,
events and steps (:class:`~consensus.work.worker_protocol.WorkerProtocol` makes them;
``consensus.work.dispatcher_events`` holds the dispatcher's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consensus.runtime.context import HandlerContext
from consensus.work import protocol as W
from patterns import MalformedMessage

__all__ = ["Job", "LeaseChanged", "Rejected", "Step", "TasksQueued", "WorkerEvent", "WorkerStatistics"]


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
    unauthenticated: int = 0  # with a secret: task frames refused by the seal check


@dataclass(slots=True)
class Job:
    """One task the worker holds (mutable: a redelivery raises its attempt, a renewal its
    claim time); the driver runs ``task`` and hands the job back to
    :meth:`WorkerProtocol.finished <consensus.work.worker_protocol.WorkerProtocol.finished>`."""

    stream: int
    task_id: int
    attempt: int
    task: Any
    claimed_at: float
    sender: str = ""  # the dispatcher that sent it (for the handler's context)
    flat: bool = False  # it came in a flat batch: its result goes back in a flat list

    def handler_context(self) -> HandlerContext:
        """What the handler running this job answers (``consensus.handler_context()``),
        built only when asked: the attempt it will report (a redelivery while it runs
        raises it)."""
        return HandlerContext("task", self.sender, self.task_id, self.attempt)


# ---------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class TasksQueued:
    """``count`` tasks now wait for a handler."""

    count: int


@dataclass(frozen=True, slots=True)
class LeaseChanged:
    """A stream's lease changed: the renewal period may be shorter."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame was rejected and counted."""

    error: MalformedMessage


WorkerEvent = TasksQueued | LeaseChanged | Rejected


@dataclass(frozen=True, slots=True)
class Step:
    """What a frame in produced: frames to send, in order, and events for the driver."""

    frames: tuple[W.Frame, ...] = ()
    events: tuple[WorkerEvent, ...] = ()
