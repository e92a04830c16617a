"""The values the dispatcher's sans-IO side hands its driver: statistics and events
(:class:`~consensus.work.dispatcher_protocol.DispatcherProtocol` makes them; frozen, no behaviour)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "NOTHING",
    "PROGRESS",
    "DeadlinesMoved",
    "DispatcherEvent",
    "DispatcherStatistics",
    "LivenessMoved",
    "Progress",
    "Rejected",
    "WorkerJoined",
    "WorkerLeft",
    "WorkerSilent",
]


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
    unauthenticated: int = 0  # frames refused by the secret's checks, and items refused by their claim's
    capped: int = 0  # hellos that announced more than max_capacity (held to it)
    task_connections_closed: int = 0  # with a secret: task connections no worker vouched for
    workers_silent: int = 0  # workers taken as gone after their liveness limit without a frame


# ---------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class WorkerJoined:
    """A worker said its first hello: it is ready for ``capacity`` tasks."""

    name: str
    capacity: int


@dataclass(frozen=True, slots=True)
class WorkerLeft:
    """A worker said bye or lost its last connection; what it held is queued again."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerSilent:
    """A worker said nothing for ``silence`` seconds, past its liveness limit: it is taken as
    gone (a :class:`WorkerLeft` follows). Its connections may still look open (no FIN
    crosses a link that is down): the driver closes ``pipes`` (results connections) and the
    task connections from ``task_addresses``, so it comes back, if ever, with a new hello."""

    name: str
    silence: float
    pipes: tuple[int, ...]
    task_addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Progress:
    """Ledgers or credit changed: outcomes may be ready, a batch may go out."""


@dataclass(frozen=True, slots=True)
class DeadlinesMoved:
    """Some attempt's deadline came forward: the expirers must look again."""


@dataclass(frozen=True, slots=True)
class LivenessMoved:
    """A worker is watched from now on: the liveness watcher must look at its deadline."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """``count`` messages or items were rejected and counted; ``error`` is the first."""

    error: Exception
    count: int = 1
    stream: int | None = None  # the stream the items were for, if the message named one
    worker: str | None = None


DispatcherEvent = (
    WorkerJoined | WorkerLeft | WorkerSilent | Progress | DeadlinesMoved | LivenessMoved | Rejected
)

PROGRESS: Final = (Progress(),)  # the usual answer to a frame, shared: no allocation per frame
NOTHING: Final[tuple[DispatcherEvent, ...]] = ()
