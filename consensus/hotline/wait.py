"""How an asker waits for its answer.

:class:`AnswerSlot` is the one-slot mailbox of a plain ask; :class:`AskTimer` ends plain
asks at their deadlines from one task. (An inline handler is finished by
:func:`consensus.runtime.handlers.run_inline`.)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any, TypeAlias

import trio

from consensus.hotline.events import Answer

__all__ = ["COMPACT_OVER", "AnswerSlot", "AskTimer", "Waiter"]

COMPACT_OVER = 1024  # entries in the timer's heap before finished asks are swept out of it


class AnswerSlot:
    """Where the answer to one plain ask lands: put once (by whoever reads the line, the
    timer, or a lost connection), taken by the asker."""

    __slots__ = ("interrupt", "reply", "task")

    def __init__(self) -> None:
        self.reply: Answer | None = None
        self.task: trio.lowlevel.Task | None = None  # the asker, while it is parked here
        # While the asker reads the line itself: what ends its wait for the next frame.
        self.interrupt: Callable[[], None] | None = None

    def put(self, reply: Answer) -> None:
        if self.reply is None:  # the first answer counts (a reply before a lost connection)
            self.reply = reply
            task = self.task
            if task is not None:
                self.task = None
                trio.lowlevel.reschedule(task)
            elif self.interrupt is not None:  # it waits on the line, not here: stop that wait
                self.interrupt()

    def abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


Waiter: TypeAlias = "AnswerSlot | trio.MemorySendChannel[Answer]"


class AskTimer:
    """The one timer task of a line's plain asks: it sleeps until the earliest deadline of
    the asks still open and puts a timeout in their slots, waking once per deadline that
    matters, not once per ask (a cancel scope per ask costs about as much as the rest of
    the asker's bookkeeping). ``waiters`` is the line's table of open asks, by id."""

    def __init__(self, waiters: dict[int, Waiter]) -> None:
        self._waiters = waiters
        # (deadline, ask id); finished asks leave lazily. An ask that neither moves the wake-up
        # nor may need a compaction is pushed here by Hotline.ask itself (a call less an ask).
        self.heap: list[tuple[float, int]] = []
        self.wake = math.inf  # the deadline the timer sleeps until
        self._scope: trio.CancelScope | None = None

    def expire_at(self, deadline: float, ask_id: int) -> None:
        """End this plain ask at ``deadline`` unless it is answered first."""
        heap = self.heap
        if len(heap) > COMPACT_OVER and len(heap) > 4 * len(self._waiters):  # mostly finished asks: compact
            heap[:] = [entry for entry in heap if entry[1] in self._waiters]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, ask_id))
        if deadline < self.wake:
            self.wake = deadline
            if self._scope is not None:
                self._scope.deadline = deadline

    async def run(self) -> None:
        heap = self.heap
        while True:
            with trio.CancelScope(deadline=self.wake) as self._scope:
                await trio.sleep_forever()
            now = trio.current_time()
            while heap:
                deadline, ask_id = heap[0]
                slot = self._waiters.get(ask_id)
                if slot is not None and deadline > now:
                    break
                heapq.heappop(heap)
                if isinstance(slot, AnswerSlot):
                    slot.put(Answer(ask_id, "timeout", None))
            self.wake = heap[0][0] if heap else math.inf
