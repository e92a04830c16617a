"""The asks a :class:`~consensus.hotline.foreign.ForeignReader` makes on its asyncio loop.

:meth:`LoopAsks.ask` sends an ask from the loop's thread with NNG's thread-safe send and
waits on a future of the loop; :meth:`LoopAsks._settle_ask` resolves it when the reader
takes the answer off the line, the asks' one timer (:meth:`LoopAsks._expire_due`) when the
deadline passes, and
:meth:`LoopAsks.fail_all` (trio's thread) when the connection is lost or the line closes.
The table of open asks, their ids, the connection they went on and their counts are an
:class:`~consensus.hotline.ask_book.AskBook`, whose lock the reader shares for its own
hand-over to trio (``consensus/hotline/foreign.py`` gives the thread-safety argument).

One timer for all the asks of a loop, armed at the earliest deadline of those open, and not
a ``call_at`` per ask: a timer made and cancelled per ask was about 10 of the loop's 62
Python calls per ask (``python -m bench.calls --scenario hotline_aio``). Asks made one after
another have later and later deadlines, so the armed timer stays; when it fires it expires
what is due and arms for the earliest deadline left.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from typing import Any, Final

from consensus.hotline.ask_book import TOP_BIT, AskBook, send_ask
from consensus.hotline.events import Answer
from consensus.hotline.line import Hotline
from patterns import Fields, Timeout

__all__ = ["NOT_HERE", "TOP_BIT", "LoopAsks"]

NOT_HERE: Final = object()  # ask(): this ask must take the trio path


class LoopAsks:
    """The asks made on one loop over one line, and the state they share with the reader."""

    def __init__(self, line: Hotline, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pair = line._link.pair
        self._ask_shape = line._link.ask_shape
        self._name = line.name
        self._what = f"<Hotline {line.name!r} {line.address}>"
        self._fd: int | None = None  # watched by the loop
        self._book: AskBook[asyncio.Future[Answer]] = AskBook()
        self._lock = self._book.lock
        # The loop's alone: the deadline (loop.time()) and future of each ask waiting here,
        # and the one timer, armed at _timer_at (no earlier deadline among them).
        self._deadlines: dict[int, tuple[float, asyncio.Future[Answer]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    async def ask(self, value: Any, timeout: float) -> Any:
        """:meth:`Hotline.ask` from this loop, or :data:`NOT_HERE` (take the trio path)."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        loop, book = self.loop, self._book
        if self._fd is None or asyncio.get_running_loop() is not loop:
            return NOT_HERE
        future: asyncio.Future[Answer] = loop.create_future()
        ask_id = book.open(future)
        if ask_id is None:
            return NOT_HERE  # trio waits for a peer, or says the line is closed or taken
        if not send_ask(book, self._pair, self._ask_shape, ask_id, value, timeout):
            return NOT_HERE
        when = loop.time() + timeout
        deadlines = self._deadlines
        deadlines[ask_id] = (when, future)
        if when < self._timer_at:
            self._arm(when)
        try:
            answer = await future
        finally:
            del deadlines[ask_id]
            book.forget(ask_id)  # (answered: gone already) cancelled or timed out: a later answer is stale
        if answer.kind == "timeout":
            book.expired()
            raise Timeout(f"ask {ask_id} on {self._what}: no reply within {timeout} s")
        return Hotline._outcome(answer)

    def _settle_ask(self, fields: Fields, pipe: int) -> bool:
        taken = self._book.take(fields, pipe)
        if taken is None:
            return False  # trio's, or stale: the protocol says which
        future, answer = taken
        if not future.done():
            future.set_result(answer)
        return True

    def _next_id(self) -> int:
        return self._book.next_id()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._expire_due)
        self._timer_at = when

    def _expire_due(self) -> None:
        """(The timer.) The asks whose deadline passed end as timed out; arm for the next."""
        due = max(self._timer_at, self.loop.time())  # (asyncio may run a timer a clock tick early)
        self._timer, self._timer_at = None, math.inf
        earliest = math.inf
        for ask_id, (when, future) in self._deadlines.items():
            if when <= due:
                if not future.done():
                    future.set_result(Answer(ask_id, "timeout", None))  # (its waiter leaves the table)
            elif when < earliest:
                earliest = when
        if earliest < math.inf:
            self._arm(earliest)

    def _disarm(self) -> None:
        """No more asks here (the loop's thread, as the reader stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    # ------------------------------------------------------------------ trio's side
    def fail_all(self, kind: str, why: str) -> None:
        asks = self._book.take_all()
        if asks:
            self._to_loop(functools.partial(_resolve_all, asks, kind, why))

    def _to_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop soon (from any thread)."""
        try:
            self.loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop closed: nobody is there to act on it any more
            pass


def _resolve_all(asks: dict[int, asyncio.Future[Answer]], kind: str, why: str) -> None:
    for ask_id, future in asks.items():
        if not future.done():
            future.set_result(Answer(ask_id, kind, why))
