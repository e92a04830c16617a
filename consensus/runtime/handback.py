"""What a handler's thread leaves for trio once it sent an answer itself: :class:`Handback`.

The hotline's :class:`~consensus.hotline.threaded.ThreadAnswers` and the room's
:class:`~consensus.room.thread_replies.ThreadReplies` both let the thread that ran a handler
send the answer, and both hand trio the books afterwards through one of these: a record
``note``-d in the critical section of the send waits for trio's next look (no wake-up); a
record ``leave``-d needs trio soon, so the first one since trio last looked schedules the
owner's ``settle`` with ``TrioToken.run_sync_soon`` (one wake-up, however many follow).

:attr:`Handback.lock` is the owner's one lock: it also guards the owner's own fields, so
that a check (the connection still open, the survey still pending), the send and the
record are one critical section.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import trio

__all__ = ["Handback", "ignore_outcome"]

R = TypeVar("R")


class Handback(Generic[R]):
    """Records of type ``R`` left by handler threads for trio, and the one lock around them."""

    __slots__ = ("_records", "_scheduled", "_settle", "_token", "lock")

    def __init__(self, settle: Callable[[], None]) -> None:
        """``settle()`` runs in trio's thread and calls :meth:`take_locked` under :attr:`lock`."""
        self.lock = threading.Lock()
        self._settle = settle
        self._records: list[R] = []
        self._scheduled = False  # a settle() is on its way to trio
        self._token: trio.lowlevel.TrioToken | None = None

    def bind(self) -> None:
        """Learn trio's token (trio's thread, before the first hand-off)."""
        if self._token is None:
            self._token = trio.lowlevel.current_trio_token()

    def note(self, record: R) -> None:
        """Keep ``record`` for trio's next look; the caller holds :attr:`lock`."""
        self._records.append(record)

    def leave(self, record: R) -> None:
        """Leave ``record`` for trio to act on soon, and make sure it looks (any thread)."""
        with self.lock:
            self._records.append(record)
            schedule, self._scheduled = not self._scheduled, True
            token = self._token
        if schedule and token is not None:
            try:
                token.run_sync_soon(self._settle)
            except trio.RunFinishedError:  # the loop ended while the handler ran: nobody waits
                pass

    def take_locked(self) -> list[R]:
        """The records left since the last look; the caller (trio's thread) holds :attr:`lock`."""
        records = self._records
        if records:
            self._records = []
            self._scheduled = False
        return records


def ignore_outcome(_outcome: Any) -> None:
    """``trio.lowlevel.start_thread_soon``'s delivery for a thread that reports through a
    :class:`Handback`: it already said everything."""
