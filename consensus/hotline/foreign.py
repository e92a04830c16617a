"""A hotline read on the caller's asyncio loop: the *foreign reader* (docs/asyncio.md §2, §4.4).

Through the bridge, an ask from asyncio crossed into the trio thread and its answer back
out, and an asyncio ``on_ask`` was reached from trio: each crossing wakes a sleeping thread
(40-70 µs here). With a :class:`ForeignReader` the loop that opened the line reads it
itself: ``loop.add_reader`` on NNG's receive descriptor, non-blocking receives, and it acts
at once on what belongs to it:

* an answer to an ask made here (:meth:`ForeignReader.ask`, sent from the loop's thread
  with NNG's thread-safe send) resolves the asking task's future;
* an ask for the line's asyncio ``on_ask`` starts the handler as a task of the loop, and
  its answer leaves from the loop's thread (:meth:`ThreadAnswers.answer
  <consensus.hotline.threaded.ThreadAnswers.answer>`, the path of plain handlers).

Every other frame (hellos, pings, values for ``receive()``, answers to trio's asks and
streams, streamed asks, malformed frames) is handed to trio in order, one
``run_sync_soon`` for all the frames of one wake-up: trio feeds them to the
:class:`~consensus.hotline.protocol.LineProtocol` and the receive loop acts on them as if it
had read them (:meth:`Reader.lend <consensus.hotline.reader.Reader.lend>`: it never reads).

Ids. The asks made here and the answers sent from here take their frame ids from the
:class:`~consensus.hotline.ask_book.AskBook` of the asks, with the top bit set: the
protocol's counter starts below ``2**62``, so the two never meet, and the loop's thread
never touches the protocol.

The asks themselves (sending, waiting, timers and failures) are
:class:`~consensus.hotline.loop_asks.LoopAsks`', which :class:`ForeignReader` extends; their
table and counts are its ``AskBook``.

Thread safety:

* The loop's thread alone: the socket's receiving side (trio never reads a lent line, so
  the socket's receive counters have one writer), the handler tasks, and the timers of the
  asks.
* Trio's thread alone: the protocol, the receive loop's hand-over queue, the socket's send
  counters (settled from the book's in :meth:`settle`) and :class:`ThreadAnswers`' books.
* Behind :attr:`ForeignReader._lock` (the ``AskBook``'s lock): the book (the table of open
  asks, id → future; whether the peer is connected and on which connection, which trio
  writes from the protocol in :meth:`changed`; the ids and counts: see
  :mod:`consensus.hotline.ask_book`), the frames waiting for trio and whether a hand-over
  is on its way. Futures are resolved on the loop only: trio posts the failures of a lost
  connection there with ``call_soon_threadsafe``.
* The answers sent from here go through :class:`ThreadAnswers`' own lock, which checks the
  ask's connection in the critical section of the send, as for a worker thread.

Sealed lines (a guard's sequence is trio's alone) and lines whose loop is not the caller's
keep the trio path; so does an ask that is not small and plain (the thread-safe send says
None): :meth:`ForeignReader.ask` then returns :data:`NOT_HERE`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import trio

from consensus.hotline import frames as f
from consensus.hotline.line import Hotline
from consensus.hotline.loop_asks import NOT_HERE, TOP_BIT, LoopAsks
from consensus.hotline.protocol import LineProtocol
from consensus.hotline.threaded import ThreadAnswers, Ticket
from consensus.runtime.context import HandlerContext, set_current
from consensus.runtime.handlers import elsewhere
from patterns import Closed, Fields, MalformedMessage

__all__ = ["NOT_HERE", "TOP_BIT", "ForeignReader", "lend", "lent"]

log = logging.getLogger("consensus.hotline")

DRAIN: Final = 64  # frames taken per wake-up at most: a flooding peer must not starve the loop
SETTLE_EVERY: Final = 256  # answers sent from here between two settlements in trio (bounds the records)
BACKLOG: Final = 256
"""Events handed to trio that its receive loop has not acted on yet (values nobody
``receive()``s, say): past this many the loop stops reading the line until trio caught up,
so a peer that floods is slowed, as trio's own reader slows it (``serve.QUEUE``), instead
of filling memory."""


class HereHandler(Protocol):
    """An asyncio ``on_ask`` that can be started from its loop's thread (the bridge's ``OnLoop``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def start_here(self, args: tuple[Any, ...], context: contextvars.Context,
                   done: Callable[[bool, Any], None]) -> asyncio.Task[Any] | None: ...  # fmt: skip


class ForeignReader(LoopAsks):
    """One hotline read on one asyncio loop; made by :func:`lend` in trio, started and
    stopped on the loop (:meth:`start`, :meth:`stop`)."""

    def __init__(self, line: Hotline, loop: asyncio.AbstractEventLoop, handler: HereHandler | None,
                 threaded: ThreadAnswers | None) -> None:  # fmt: skip
        super().__init__(line, loop)
        self._line = line
        self._reader = line._reader
        self._protocol = line._protocol
        self._handler = handler if threaded is not None else None
        self._threaded = threaded
        self._token = trio.lowlevel.current_trio_token()
        self._tasks: dict[Ticket, asyncio.Task[Any]] = {}  # handlers under way (the loop's)
        self._answered = 0  # answers sent from here since the last settlement (the loop's)
        self._for_trio: list[tuple[Fields, int]] = []  # behind the lock, from here on
        self._scheduled = False  # a hand-over to trio is on its way
        self._heard = False  # frames were taken here since trio last looked (behind the lock)
        self._tell_heard = 0.0  # the loop's: when next to tell trio (time.monotonic)
        self._half_heartbeat = line.heartbeat / 2
        self._pausing = False  # trio's: it asked the loop to stop reading (the backlog)
        self._paused = False  # the loop's: it stopped reading
        self.pauses = 0  # times the backlog stopped the loop's reading (trio's)

    # ------------------------------------------------------------------ trio's side
    def changed(self, protocol: LineProtocol) -> None:
        """The line's state changed: note it; asks on a connection that ended fail."""
        failed = self._book.changed(protocol)
        if failed is not None:
            self.fail_all(*failed)

    def settle(self) -> int:
        """The books of the asks made here, into the protocol's and the socket's (trio's
        thread, before statistics); returns how many are open."""
        return self._book.settle(self._protocol, self._pair.count_sent)

    def claim(self, fields: Fields, pipe: int) -> bool:
        return False  # trio never reads a lent line

    def held_back(self) -> int:
        return self.pauses

    def lend_now(self) -> bool:
        return False  # (lent for good)

    def reclaim(self, *, idle_only: bool = True) -> bool:
        return False

    def recall(self) -> None:
        pass  # (the loop's asks and trio's share its reading)

    def relend(self) -> bool:
        return False

    def drained(self) -> None:
        if self._pausing:
            self._pausing = False
            self._to_loop(self._resume)

    def _into_trio(self) -> None:
        """The frames the loop read for trio: into the protocol, then to the receive loop."""
        with self._lock:
            frames, self._for_trio = self._for_trio, []
            self._scheduled = False
            heard, self._heard = self._heard, False
        self.settle()
        protocol, reader = self._protocol, self._reader
        reader.feed(frames, heard)
        if frames:  # a hello may connect the protocol now (else notify does, once its hello is out)
            self.changed(protocol)
        if self._threaded is not None:
            self._threaded.settle()
        if reader.handed_over:
            if len(reader.handed_over) >= BACKLOG and not self._pausing:
                self._pausing = True  # until the receive loop has acted on them all (drained)
                self.pauses += 1
                self._to_loop(self._pause)
            reader.wake_receiver()


    # ------------------------------------------------------------------ the loop's side
    def start(self) -> None:
        """Watch the line on this loop (the loop's thread, right after :func:`lend`)."""
        self._fd = self._pair.receive_descriptor
        self.loop.add_reader(self._fd, self._readable)

    def stop(self) -> None:
        """Stop reading (the loop's thread, before the line closes); handlers still running are
        cancelled, their answers dropped."""
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self._fd = None
        self._disarm()
        self._handler = None
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()

    def _pause(self) -> None:
        if self._fd is not None and not self._paused:
            self._paused = True
            self.loop.remove_reader(self._fd)

    def _resume(self) -> None:
        if self._fd is not None and self._paused:
            self._paused = False
            self.loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        """NNG has frames queued: take them (up to :data:`DRAIN`; the descriptor stays readable
        for the rest), act on ours, hand the rest to trio."""
        pair, for_trio = self._pair, []
        for _ in range(DRAIN):
            try:
                got = pair.receive_fields_nowait()
            except MalformedMessage as exc:
                log.warning("hotline %s dropped a frame: %s", self._name, exc)
                continue
            except Closed:  # the line closed under this loop: trio fails what is open
                self.stop()
                break
            if got is None:
                break
            fields, pipe = got
            kind = fields[0]
            if kind == f.ASK and self._handler is not None and self._serve(fields, pipe):
                continue
            if kind in f.ANSWER_KINDS and self._settle_ask(fields, pipe):
                continue
            for_trio.append(got)
        now = time.monotonic()
        # The frames taken here prove the peer alive: trio's heartbeats learn it now and then.
        heard = now >= self._tell_heard
        if heard:
            self._tell_heard = now + self._half_heartbeat
        if for_trio or heard:
            with self._lock:
                self._for_trio += for_trio
                self._heard = self._heard or heard
                schedule, self._scheduled = not self._scheduled, True
            if schedule:
                self._soon_in_trio()

    def _soon_in_trio(self) -> None:
        try:
            self._token.run_sync_soon(self._into_trio)
        except trio.RunFinishedError:  # trio's thread ended: the line is gone
            self.stop()

    def _serve(self, fields: Fields, pipe: int) -> bool:
        """Start the asyncio ``on_ask`` on this ask; False to leave it to trio (a stream, a bad body)."""
        ask_id, sender = fields[2], fields[1]
        try:
            value, stream = f.parse_ask(ask_id, fields[3])
        except ValueError:
            return False  # trio's protocol counts and logs it
        if stream:
            return False
        handler, threaded = self._handler, self._threaded
        assert handler is not None and threaded is not None
        ticket = Ticket(ask_id, self._next_id(), pipe, False, sender)
        context = contextvars.copy_context()
        context.run(set_current, HandlerContext("ask", sender, ask_id=ask_id))
        task = handler.start_here((value,), context, functools.partial(self._answer, ticket))  # (C: a call less)
        if task is not None and not task.done():
            self._tasks[ticket] = task
        return True

    def _answer(self, ticket: Ticket, ok: bool, result: Any) -> None:
        if self._tasks.pop(ticket, None) is None and self._handler is None:
            return  # stopped: the line closes, nobody hears this answer
        assert self._threaded is not None
        self._threaded.answer(ticket, ok, result)
        self._answered += 1
        if self._answered >= SETTLE_EVERY:  # the books of answers sent here: into trio now and then
            self._answered = 0
            self._soon_settle()

    def _soon_settle(self) -> None:
        with self._lock:
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            self._soon_in_trio()

def lend(line: Hotline, loop: asyncio.AbstractEventLoop) -> ForeignReader | None:
    """Let ``loop`` read ``line`` (trio's thread, at once after the line opened; then
    :meth:`ForeignReader.start` on the loop). None when the line keeps the trio path: it is
    sealed, or its receive loop already reads."""
    pair = line._link.pair
    if pair.guard is not None:
        return None
    server = line._server
    runner = elsewhere(server.on_ask) if server.on_ask is not None else None
    handler: HereHandler | None = None
    if runner is not None and getattr(runner, "loop", None) is loop and hasattr(runner, "start_here"):
        handler = runner  # type: ignore[assignment]  # the bridge's OnLoop: checked above
    threaded = server.threaded if handler is not None else None
    foreign = ForeignReader(line, loop, handler, threaded)
    if not line._reader.lend(foreign):
        return None
    if threaded is not None:
        threaded.bind()
    return foreign


def lent(line: Hotline) -> ForeignReader | None:
    """The reader ``line`` was lent to, if any."""
    foreign = line._reader.foreign
    return foreign if isinstance(foreign, ForeignReader) else None
