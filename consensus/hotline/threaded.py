"""Plain ``on_ask`` handlers whose answer leaves from the thread that computed it.

The trio path crosses threads twice before a plain handler's answer leaves: trio wakes a
worker thread to run the handler, the worker wakes trio, and trio encodes and sends. Each
crossing is a wake-up of a sleeping thread (40-70 µs on a small VM, ``docs/asyncio.md``
§4.1). Here trio prepares, before the hand-off, all the answer needs from the protocol: a
:class:`Ticket` with the frame id (:meth:`LineProtocol.reserve_answer`), the connection
the ask came on and whether the ask streams (its answer is then ``end``, else ``reply``;
``error`` for a failure). The worker thread runs the handler and sends the frame with
NNG's non-blocking send, written as trio's server writes it, no envelope built: a reply
from the line's reply shape (:meth:`patterns.Pair.send_shaped_threadsafe`), any other
answer from its fields (:meth:`patterns.Pair.send_fields_threadsafe`). The books (the served count, the socket's
counters, the handler thread's token) reach trio afterwards, off the critical path.

Thread safety:

* The protocol, the socket's counters, the capacity limiter and the nursery are touched
  in trio's thread only. The worker thread touches its :class:`Ticket` (frozen, built by
  trio before the hand-off), the handler and its value, the pure frame builder and encoder
  (cbor2 per call; ``patterns``' encoder keeps its scratch state per thread), NNG's socket
  (thread-safe by NNG's contract; a closed socket answers ``ECLOSED``, never a crash), and
  the fields of :class:`ThreadAnswers` behind its one lock.
* Behind the lock: the connections closed (a copy of the protocol's, refreshed by trio in
  :meth:`ThreadAnswers.connections_changed` whenever they change), whether the line closes,
  and the records of finished answers. The thread checks the ask's connection and sends
  in one critical section, so an answer never leaves after trio learned that its
  connection closed: the guarantee :meth:`LineProtocol.answer` gives the trio path.
* The record of a sent answer is appended in that same critical section, and
  :meth:`ThreadAnswers.settle` takes the lock: once an answer has arrived anywhere,
  statistics read in trio (which settle first) count it. Nothing else is shared.

Settling: a sent answer's record waits for trio's next look (the next ask settles first,
so does ``statistics()``), costing trio no wake-up; a record that needs trio at once (an
answer dropped, or one to send the trio way) schedules :meth:`~ThreadAnswers.settle` with
``run_sync_soon`` (both through a :class:`~consensus.runtime.handback.Handback`, the room's
thread replies' too). Records are bounded by the handler threads: each holds a token.

An asyncio ``on_ask`` of the bridge (``consensus.aio``) goes the same way through a runner
(:class:`consensus.runtime.handlers.Elsewhere`, the bridge's ``OnLoop``): it runs as a task
of its own loop, whose done-callback, on that loop's thread, plays the worker thread's part
above. Closing the line cancels those tasks, as trio's cancellation did.

Tried and not kept: a long-lived thread per line fed through a queue wakes a sleeping
thread just as trio's thread cache does, and measured no faster (``docs/asyncio.md`` §4.3).

The trio path stays the fallback whenever this one cannot be used safely: the frame is not
small and plain (shared memory, spliced buffers, an unencodable value: trio encodes it or
answers with the encoding error), the line seals its frames (a guard's sequence is not
thread-safe), NNG's queue is full (``EAGAIN``: trio waits its turn in the link's order),
or the handler returned an awaitable.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import trio

from consensus.failure import Failure
from consensus.hotline import frames as f
from consensus.hotline.protocol import LineProtocol
from consensus.runtime.context import HandlerContext, set_current
from consensus.runtime.handback import Handback, ignore_outcome
from consensus.runtime.handlers import Elsewhere, busy
from patterns import Closed, Pair, Shape

__all__ = ["Fate", "Finished", "ThreadAnswers", "Ticket"]

log = logging.getLogger("consensus.hotline")


@dataclass(frozen=True, slots=True, eq=False)  # a limiter holder: hashed by identity
class Ticket:
    """What trio prepared for one ask before handing it to a thread."""

    ask_id: int
    frame_id: int
    pipe: int
    stream: bool
    sender: str
    lent: bool = False  # started by the reader of a lent line: no token of trio's limiter held


class Fate(Enum):
    SENT = "sent"  # the thread sent the answer
    DROPPED = "dropped"  # its connection closed, or the line: nobody waits for it
    TRIO = "trio"  # trio sends it (a frame the thread cannot send)
    AWAIT = "await"  # the handler returned an awaitable: trio awaits it, then answers


@dataclass(frozen=True, slots=True)
class Finished:
    """A handler's answer as the thread left it for trio."""

    ticket: Ticket
    fate: Fate
    kind: str = f.REPLY
    value: Any = None
    size: int = 0  # bytes sent (SENT)


class ThreadAnswers:
    """Runs plain handlers in threads that send their own answers; one per line."""

    def __init__(self, pair: Pair, protocol: LineProtocol, handler: Callable[[Any], Any],
                 later: Callable[[Finished], None], *, limiter: trio.CapacityLimiter | None,
                 runner: Elsewhere | None = None, reply_shape: Shape | None = None) -> None:  # fmt: skip
        """``later(finished)`` (in trio) answers what the thread left to trio. A plain
        ``handler`` runs in a thread holding a token of ``limiter``; with ``runner`` (an
        asyncio handler of the bridge) it runs on the runner's loop, whose thread sends.
        ``reply_shape``: the line's (``Link.reply_shape``), to write a reply from its fixed
        bytes as trio's server does; None: replies go as fields."""
        self._pair = pair
        self._protocol = protocol
        self._name = protocol.name
        self._reply_shape = reply_shape
        self._limiter = limiter
        self._runner = runner
        self._cancels: dict[Ticket, Callable[[], None]] = {}  # trio's: the runner's handlers under way
        self._handler = handler
        self._handler_name = getattr(handler, "__qualname__", None) or repr(handler)
        self._later = later
        self._handback: Handback[Finished] = Handback(self.settle)
        self._lock = self._handback.lock
        self._gone = protocol.closed_pipes()  # behind the lock (also the fields below)
        self._closed = False
        self.running = 0  # handlers running in trio's worker threads (read by a lent line's crew)
        # A lent line's crew: how many handlers it runs. Both count against handler_threads,
        # whoever read the ask (trio reads a served trio line while it asks).
        self.elsewhere: Callable[[], int] | None = None

    # ------------------------------------------------------------------ trio's side
    def start(self, ask_id: int, pipe: int, stream: bool, sender: str, value: Any) -> bool:
        """Hand one ask to a thread (or the runner's loop); False when the trio path must take
        it: no free handler thread, the ask's connection has closed, the runner's loop is closed."""
        self.settle()  # first: the tokens of answers sent since the last look come back
        frame_id = self._protocol.reserve_answer(pipe)
        if frame_id is None:
            return False
        ticket = Ticket(ask_id, frame_id, pipe, stream, sender)
        self._handback.bind()
        context = contextvars.copy_context()  # as trio.to_thread does: the handler sees our contextvars
        if self._runner is not None:
            context.run(set_current, HandlerContext("ask", sender, ask_id=ask_id))
            try:
                self._cancels[ticket] = self._runner.submit((value,), context,
                                                            lambda ok, result: self._finished(ticket, ok, result))  # fmt: skip
            except RuntimeError:  # its loop is closed: the trio path says so to the peer
                return False
            return True
        limiter = self._limiter
        assert limiter is not None
        if self.elsewhere is not None and limiter.borrowed_tokens + self.elsewhere() >= limiter.total_tokens:
            # (the crew's handlers hold the rest; lent: no token of the limiter to give back)
            self.refuse(Ticket(ask_id, frame_id, pipe, stream, sender, lent=True), int(limiter.total_tokens))
            return True
        try:
            limiter.acquire_on_behalf_of_nowait(ticket)
        except trio.WouldBlock:
            return False
        with self._lock:
            self.running += 1
        trio.lowlevel.start_thread_soon(lambda: context.run(self._work_counted, ticket, value), ignore_outcome,
                                        name=f"handler {self._handler_name}")  # fmt: skip
        return True

    def settle(self) -> None:
        """Take the finished answers into trio's books (trio's thread)."""
        with self._lock:
            records = self._handback.take_locked()
        if not records:
            return
        sent = size = 0
        for record in records:
            if self._limiter is not None:
                if not record.ticket.lent:
                    self._limiter.release_on_behalf_of(record.ticket)
            else:
                self._cancels.pop(record.ticket, None)
            if record.fate is Fate.SENT:
                sent += 1
                size += record.size
            elif record.fate is Fate.DROPPED:
                log.info("hotline %s: the peer left before ask %d was answered", self._name, record.ticket.ask_id)
            else:
                self._later(record)
        if sent:
            self._protocol.answered_elsewhere(sent)
            self._pair.count_sent(sent, size)

    def connections_changed(self) -> None:
        """The protocol's closed connections may have changed: answers to asks that came
        on them must not leave (trio's thread)."""
        gone = self._protocol.closed_pipes()
        with self._lock:
            self._gone = gone

    def close(self) -> None:
        """The line closes: handlers still running send nothing (trio's thread)."""
        with self._lock:
            self._closed = True
        cancels, self._cancels = self._cancels, {}
        for cancel in cancels.values():  # asyncio handlers still running are cancelled, as trio's would be
            try:
                cancel()
            except RuntimeError:  # their loop is closed: nothing runs there any more
                pass

    # ------------------------------------------------------------------ another reader's side
    @property
    def plain(self) -> bool:
        """The handler is a plain function run in a thread (not an asyncio one on its loop)."""
        return self._runner is None

    def bind(self) -> None:
        """Learn trio's token before a thread other than trio's starts handlers (trio's thread)."""
        self._handback.bind()

    def answer(self, ticket: Ticket, ok: bool, result: Any) -> None:
        """Answer an ask whose handler another reader started (:mod:`consensus.hotline.foreign`),
        with a frame id of its own: as a worker thread does, from the calling thread."""
        self._finished(ticket, ok, result)

    def refuse(self, ticket: Ticket, threads: int) -> None:
        """Answer ``Busy`` to an ask another reader took while all ``threads`` run handlers,
        as trio's path does (:func:`consensus.runtime.handlers.run_handler`), from the calling thread."""
        self._send(ticket, f.ERROR, busy(self._handler, threads).to_wire())

    def serve(self, ticket: Ticket, value: Any) -> None:
        """Run the plain handler on an ask another reader took (:mod:`consensus.hotline.thread_serve`)
        and answer, in the calling thread, as a worker thread does."""
        self._work(ticket, value)

    # ------------------------------------------------------------------ the worker thread's side
    def _work_counted(self, ticket: Ticket, value: Any) -> None:
        try:
            self._work(ticket, value)
        finally:
            with self._lock:
                self.running -= 1

    def _work(self, ticket: Ticket, value: Any) -> None:
        set_current(HandlerContext("ask", ticket.sender, ask_id=ticket.ask_id))  # this thread's context copy
        try:
            result = self._handler(value)
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the peer's answer
            self._finished(ticket, False, exc)
            return
        except BaseException as exc:  # SystemExit, say: the peer still hears, the thread still ends with it
            self._finished(ticket, False, exc)
            raise
        if hasattr(result, "__await__"):  # a plain function that returned a coroutine: trio awaits it
            self._handback.leave(Finished(ticket, Fate.AWAIT, value=result))
            return
        self._finished(ticket, True, result)

    def _finished(self, ticket: Ticket, ok: bool, result: Any) -> None:
        """The handler returned ``result`` (or raised it): answer (the handler's thread, or its loop's)."""
        if ok:
            self._send(ticket, f.END if ticket.stream else f.REPLY, result)
        else:
            log.info("handler %s failed: %r", self._handler_name, result)
            self._send(ticket, f.ERROR, Failure.from_exception(result).to_wire())

    def _send(self, ticket: Ticket, kind: str, value: Any) -> None:
        shape = self._reply_shape if kind == f.REPLY else None
        with self._lock:
            if self._closed or ticket.pipe in self._gone:
                fate, size = Fate.DROPPED, None
            else:
                try:  # a reply from its shape, else the answer's fields as a common frame (no envelope)
                    if shape is not None:
                        size = self._pair.send_shaped_threadsafe(shape, ticket.frame_id, ticket.ask_id, None, value)
                    else:
                        size = self._pair.send_fields_threadsafe(kind, ticket.frame_id, value, ticket.ask_id, None)
                    fate = Fate.TRIO if size is None else Fate.SENT
                except Closed:
                    fate, size = Fate.DROPPED, None
                except Exception:  # noqa: BLE001 - too large, unencodable...: trio's path says what
                    fate, size = Fate.TRIO, None
            if size is not None:
                self._handback.note(Finished(ticket, fate, size=size))
                return
        self._handback.leave(Finished(ticket, fate, kind, value))
