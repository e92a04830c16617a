"""Calls run at the end of trio's current scheduler batch: :func:`at_batch_end`.

Handing work to another thread costs a wake-up of that thread, and once awake it competes
with trio for the GIL while trio is still busy with the same burst (eight members of one
process receiving one poll, say, usually read in one or two batches). Deferring the hand-off
to the end of the batch gives the other thread the whole burst for one wake-up, and trio
its batch without contention. The calls run in a system task of the run that is
rescheduled by the first call of a batch: it runs in the next batch, after every task
already runnable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["at_batch_end"]

log = logging.getLogger("consensus")


class _BatchEnd:
    __slots__ = ("_calls", "_last", "_parked")

    def __init__(self) -> None:
        self._calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._last: list[tuple[Callable[..., object], tuple[Any, ...]]] = []  # after the others
        self._parked: trio.lowlevel.Task | None = None  # the runner task, while it waits

    def add(self, fn: Callable[..., object], args: tuple[Any, ...], last: bool) -> None:
        (self._last if last else self._calls).append((fn, args))
        if (task := self._parked) is not None:
            self._parked = None
            trio.lowlevel.reschedule(task)

    async def run(self) -> None:
        try:
            while True:
                if not (self._calls or self._last):
                    self._parked = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._abort)
                self._flush()
        finally:
            self._parked = None
            self._flush()  # the run is ending: what was handed over still goes

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self._parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _flush(self) -> None:
        calls, self._calls = self._calls, []
        if self._last:
            calls += self._last
            self._last = []
        for fn, args in calls:
            try:
                fn(*args)
            except Exception:  # one hand-off failing must not lose the others
                log.exception("a call deferred to the end of a trio batch raised")


_runs: trio.lowlevel.RunVar[_BatchEnd] = trio.lowlevel.RunVar("consensus batch end")


def at_batch_end(fn: Callable[..., object], *args: Any, last: bool = False) -> None:
    """Call ``fn(*args)`` in trio's next scheduler batch, with every other call made in this
    one, in order (trio's thread); ``last``: after those made without it (bookkeeping that
    should not delay a hand-off). An exception it raises is logged."""
    try:
        ends = _runs.get()
    except LookupError:
        ends = _BatchEnd()
        try:
            trio.lowlevel.spawn_system_task(ends.run, name="consensus batch end")
        except RuntimeError:  # the run is shutting down: nothing will run later, so now
            fn(*args)
            return
        _runs.set(ends)
    ends.add(fn, args, last)
