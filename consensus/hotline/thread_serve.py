"""A line's plain ``on_ask`` served by the threads that read the line (docs/asyncio.md §4.10).

Through the trio path a plain ``on_ask`` costs two wake-ups per ask: NNG wakes trio, trio
reads the ask and wakes a handler thread (``consensus/hotline/threaded.py``), which runs the
handler and sends the answer. Here, for a line opened with ``consensus.hotline`` or
``consensus.blocking.hotline`` and a plain ``on_ask`` (unsealed), the line is lent to a crew of plain threads before trio
ever reads it (:meth:`Reader.lend <consensus.hotline.reader.Reader.lend>`, as
:mod:`consensus.hotline.foreign` lends a line to an asyncio loop): the thread that takes an
ask off the line runs the handler and sends the answer, so the critical path is NNG → one
thread wakes → handler → send; a watch takes the line from a handler that runs long. The
roles (leader/followers, the watch, the bounds) are :mod:`consensus.hotline.serve_crew`'s,
how the leader reads :mod:`consensus.hotline.serve_reading`'s; this module is the line's side:

* Every frame that is not an ask for the handler (hellos, pings, values for ``receive()``,
  answers to trio's asks and streams, malformed asks) goes to trio in order, one
  ``run_sync_soon`` per batch, through :class:`~consensus.hotline.thread_asks.ThreadAsks`'
  hand-over; the frames read by the crew count as hearing the peer. While
  :data:`~consensus.hotline.thread_asks.BACKLOG` events handed over wait in trio, the
  leader stops reading until trio has acted on them all (:attr:`ThreadServer.pauses`).
* Blocking asks made on the same line (``line.ask`` from plain threads) keep
  ``ThreadAsks.ask`` with the baton at ``SERVED``: the asking thread sends and waits on its
  lock, and the reading thread hands it its answer.
* Trio's asks on a trio line (``recalls``) take the line back while they run
  (:meth:`ThreadServer.recall`): the leader hands it to trio as it next looks, trio's askers
  read their own answers, and the receive loop lends it again between two frames once trio
  has had no ask open for a whole :data:`~consensus.hotline.reader.LEASE`
  (:meth:`ThreadServer.relend`); asks for the handler that trio reads meanwhile take the
  trio path. Else each answer to a trio ask would cross from the crew into trio: measured
  about 1.5x the ask of a line trio reads.
* The books: answers go through :class:`~consensus.hotline.threaded.ThreadAnswers` (its
  lock, the connection check, and the records trio settles now and then and before
  ``statistics()``), as from trio's handler threads.
* Closing: trio marks the line closed, wakes a polling leader through the eventfd and waits
  (at most :data:`~consensus.hotline.thread_asks.CLOSE_WAIT`) for it to leave ``poll``
  before the socket closes; no thread polls again. Handlers still running send nothing;
  :meth:`ThreadServer.join` (after the line closed) waits for every thread to end.
* A crew thread that fails (a bug of ours) gives the line back to trio (:meth:`Reader.unlend
  <consensus.hotline.reader.Reader.unlend>`): the asks it had queued and the frames it had
  taken go to trio first, and the line works as an attached ``ThreadAsks`` from then on.

Thread safety: as :mod:`consensus.hotline.serve_crew` says; the methods here run in trio's
thread (``join`` in any thread but the crew's), and take the ``AskBook``'s lock for the
crew's fields.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from typing import Final

from consensus.hotline.line import Hotline
from consensus.hotline.reader import LEASE
from consensus.hotline.serve_reading import ReadingCrew
from consensus.hotline.thread_asks import CLOSE_WAIT, Baton
from consensus.hotline.threaded import ThreadAnswers
from consensus.runtime.watch import Hand

__all__ = ["JOIN_WAIT", "SERVE_IN_THREADS", "ThreadServer", "serve"]

log = logging.getLogger("consensus.hotline")

SERVE_IN_THREADS = True  # False: plain handlers of blocking lines take the trio path (bench's reference)
JOIN_WAIT: Final = 5.0  # seconds join() waits for handlers still running when the line closed


class ThreadServer(ReadingCrew):
    """A line read by the threads that serve its plain ``on_ask``; made by :func:`serve`."""

    def __init__(self, line: Hotline, answers: ThreadAnswers, handler_threads: int, *, recalls: bool) -> None:
        super().__init__(line, answers, handler_threads, refuses=recalls)  # (a trio line's: Busy as trio's path)
        self._recalls = recalls  # trio's asks take the line back while they run (a trio line's)
        self._asked_at = -math.inf  # (trio's clock) when trio last asked
        self.recalls = 0  # times trio took the line back for its asks

    # ------------------------------------------------------------------ trio's side
    def recall(self) -> None:
        if not self._recalls:
            return
        self._asked_at = self._reader.now()
        if self._trio_reads or self._recall:
            return  # (trio reads already, or soon)
        with self._lock:
            if self.baton is not Baton.SERVED or self._trio_reads or self._recall:
                return
            self.recalls += 1
            if self._leader is not None:
                self._recall = True  # the leader gives the line to trio as it next looks (_recalled)
                if self._reading_locked():
                    os.eventfd_write(self._wake, 1)  # it polls: wake it
                return
            self._trio_reads = True  # (nobody leads: trio reads at once)
        self._taken_back()

    def _taken_back(self) -> None:
        self._into_trio()
        if self._trio_reads and self.baton is Baton.SERVED:
            self._reader.recalled_for_asks()

    def relend(self) -> bool:
        """Lend the line to the crew again once trio has no ask open and asked none for a
        whole :data:`~consensus.hotline.reader.LEASE` (the receive loop, between frames)."""
        if self._reader.waiters or self._reader.now() - self._asked_at < LEASE:
            return False
        start: Hand | None = None
        with self._lock:
            if self.baton is not Baton.SERVED or not self._trio_reads:
                return False
            self._trio_reads = False
            hand = self._watch.release() or (self._idle.pop() if self._idle else None)
            if hand is None:  # (every thread runs a handler: fewer than handler_threads + 1 threads)
                hand = start = self._spawn_locked()
            self._leader = hand
            hand.poke()
        if start is not None:
            start.thread.start()
        return True

    def handlers_running(self) -> int:
        """Handlers the crew runs now (read by trio without the lock: only the crew reads the
        line while it starts them, so the two sides never start one at the same moment)."""
        return self._busy

    def held_back(self) -> int:
        return self.yields + self.pauses + self.stalls

    def drained(self) -> None:
        if not self._full:
            return
        with self._lock:
            self._full = False
            if self.baton is Baton.SERVED:
                os.eventfd_write(self._wake, 1)  # the leader polls its eventfd alone: read again

    def _into_trio(self) -> None:
        full = self._full
        super()._into_trio()
        if self._full and not full and self.baton is Baton.SERVED:
            self.pauses += 1
        self._answers.settle()

    def _close(self) -> None:
        """The line closed (trio's thread, before the socket closes): the leader leaves its
        poll, idle threads end, busy ones end after their handler (their answers dropped)."""
        with self._lock:
            served = self.baton is Baton.SERVED
            if served:
                self.baton = Baton.CLOSED
                self._end_idle_locked()
                left = self._left = threading.Event() if self._reading_locked() else None
                if left is not None:
                    os.eventfd_write(self._wake, 1)  # the leader leaves its poll
        if not served:
            super()._close()  # (the crew failed earlier: the line is an attached ThreadAsks')
            return
        if left is not None and not left.wait(CLOSE_WAIT):
            log.warning("hotline %s closed while a thread still read it", self._name)
            return  # (its descriptor is left open: the thread may still poll it)
        os.close(self._wake)

    def join(self, timeout: float = JOIN_WAIT) -> bool:
        """Wait for every thread to end (any thread but the crew's, after the line closed);
        False if some still run a handler after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            hands = list(self._hands)
        for hand in hands:
            if hand.thread is not None:
                hand.thread.join(max(0.0, deadline - time.monotonic()))
        running = [hand.thread.name for hand in hands if hand.thread is not None and hand.thread.is_alive()]
        if running:
            log.warning("hotline %s closed; %d handler(s) still run, their answers dropped: %s",
                        self._name, len(running), running)  # fmt: skip
        return not running


def serve(line: Hotline, *, recalls: bool = False) -> ThreadServer | None:
    """Have plain threads read ``line`` and serve its plain ``on_ask`` (trio's thread, at once
    after the line opened); None when the line keeps the trio path: sealed, no plain
    handler answering from its thread, or its receive loop already reads. ``recalls``: trio
    takes the line back while it asks (a trio line; a blocking line's asks are its threads')."""
    server = line._server
    answers = server.threaded
    if not SERVE_IN_THREADS or line._link.pair.guard is not None or answers is None or not answers.plain:
        return None
    crew = ThreadServer(line, answers, server.handler_threads, recalls=recalls)
    if not line._reader.lend(crew):
        return None
    answers.bind()
    if recalls:  # trio reads the line while it asks: its handlers and the crew's share the bound
        answers.elsewhere = crew.handlers_running
    crew.start()
    return crew
