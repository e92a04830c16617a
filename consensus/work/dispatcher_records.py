"""The book-keeping records of :class:`~consensus.work.dispatcher_protocol.DispatcherProtocol`.

:class:`Grant` is the pump's answer, :class:`Stream` the handle of one distribution (its
:class:`~consensus.work.ledger.TaskLedger`), :class:`WorkerRecord` one worker of the
registry; :mod:`consensus.work.dispatcher_protocol` re-exports the first two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from consensus.work import protocol as W
from consensus.work.ledger import TaskLedger

__all__ = ["WAIT", "Grant", "Stream", "WorkerRecord"]


@dataclass(frozen=True, slots=True)
class Grant:
    """The pump's answer: a batch to send now (None: wait for the next change) and whether
    the stream's window grew, so its feeder may take more tasks."""

    frame: W.Frame | None
    more_room: bool = False


WAIT: Final = Grant(None)


class Stream:
    """One distribution as the dispatcher protocol sees it (a handle its driver keeps)."""

    __slots__ = ("id", "ledger", "malformed")

    def __init__(self, stream_id: int, ledger: TaskLedger) -> None:
        self.id = stream_id
        self.ledger = ledger
        self.malformed = 0  # reply items that could not come from this distribution

    def __repr__(self) -> str:
        return f"<Stream {self.id}: {self.ledger.in_flight} in flight, {self.ledger.pending} pending>"


@dataclass(slots=True)
class WorkerRecord:
    """A worker in the dispatcher's registry: what its hellos said and its connections."""

    capacity: int = 0  # 0 until its first hello
    pipes: set[int] = field(default_factory=set)
    task_addresses: tuple[str, ...] = ()  # its task connections' addresses, as its last hello said
    flat: bool = False  # its last hello said it reads flat batches ("fl")
