"""The asks of one hotline made outside trio's thread, and their books.

An asyncio loop (:class:`~consensus.hotline.loop_asks.LoopAsks`) and plain threads
(:class:`~consensus.hotline.thread_asks.ThreadAsks`) send asks with NNG's thread-safe send
and wait for the answer in their own way (a future, a lock): the *waiter*, which this book
stores and never touches. What they share lives here: the table of open asks (id →
waiter), the ids (a counter with :data:`TOP_BIT` set: the protocol's counter starts below
``2**62``, so the two never meet), the connection the asks went on (an answer counts only
from it), and the counts that trio settles into the protocol's and the socket's books.

Thread safety: every method takes :attr:`AskBook.lock`; an ask registers only while the
peer is connected (:meth:`AskBook.open`), and trio writes the connection from the protocol
(:meth:`AskBook.changed`), so a connection lost after that check finds the ask in the table
and fails it (:meth:`AskBook.take_all`). Whoever takes an ask out of the table under the
lock owns its waiter's outcome.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from consensus.hotline import frames as f
from consensus.hotline.events import Answer, LineState
from consensus.hotline.protocol import LineProtocol
from patterns import Fields, Pair, Shape

__all__ = ["TOP_BIT", "AskBook", "send_ask"]

TOP_BIT: Final = 1 << 63

W = TypeVar("W")


class AskBook(Generic[W]):
    """The open asks of one line made outside trio, by id, and their counts."""

    def __init__(self, record: Callable[[W, Answer], None] | None = None) -> None:
        self.lock = threading.Lock()
        # Called under the lock with each waiter taken out and its answer (plain threads
        # write the answer there, so that whoever holds the lock next sees it written).
        self._record = record
        self._ids = secrets.randbits(62)
        self._open: dict[int, W] = {}
        self.connected = self.closed = False
        self.pipe: int | None = None  # the connection the peer is on (trio writes it)
        self._sent = self._sent_bytes = 0
        self._counts = [0, 0, 0, 0, 0]  # asks opened, answered, expired, failed, malformed answers

    def next_id(self) -> int:
        """A frame id of this side's (the answers a loop sends take them too)."""
        with self.lock:
            return self._next_id()

    def _next_id(self) -> int:
        self._ids = (self._ids + 1) & (TOP_BIT - 1)
        return self._ids | TOP_BIT

    # ------------------------------------------------------------------ the asker's side
    def open(self, waiter: W) -> int | None:
        """Register an ask: its id, or None when there is no peer or the line closed (then
        the ask takes the trio path, which waits for a peer or says why)."""
        with self.lock:
            return self.register(waiter)

    def register(self, waiter: W) -> int | None:
        """:meth:`open`, with :attr:`lock` held by the caller."""
        if not self.connected or self.closed:
            return None
        ask_id = self._next_id()
        self._open[ask_id] = waiter
        self._counts[0] += 1
        return ask_id

    def sent(self, ask_id: int, size: int | None) -> bool:
        """The ask went out (``size`` bytes), or could not (None: unregistered, uncounted)."""
        with self.lock:
            if size is None:
                self._open.pop(ask_id, None)
                self._counts[0] -= 1
                return False
            self._sent += 1
            self._sent_bytes += size
        return True

    def forget(self, ask_id: int, *, expired: bool = False) -> bool:
        """The asker stops waiting (answered, timed out, cancelled): a later answer is stale.
        True if the ask was still open; ``expired`` counts it as expired then."""
        with self.lock:
            return self.drop(ask_id, expired=expired)

    def drop(self, ask_id: int, *, expired: bool = False) -> bool:
        """:meth:`forget`, with :attr:`lock` held by the caller."""
        mine = self._open.pop(ask_id, None) is not None
        if mine and expired:
            self._counts[2] += 1
        return mine

    def expired(self) -> None:
        with self.lock:
            self._counts[2] += 1

    # ------------------------------------------------------------------ the reader's side
    def take(self, fields: Fields, pipe: int) -> tuple[W, Answer] | None:
        """The waiter and answer if the frame of ``fields`` (:meth:`patterns.Pair.receive_fields`'),
        read on connection ``pipe``, answers an open ask sent on that connection; None leaves
        it to the protocol (trio's ask, stale, another connection's)."""
        kind = fields[0]
        if kind not in f.ANSWER_KINDS:
            return None
        ask_id: Any = fields[4]
        with self.lock:
            waiter = self._open.pop(ask_id, None) if type(ask_id) is int and pipe == self.pipe else None
            if waiter is None:
                return None
            if kind == f.REPLY or kind == f.ERROR:
                self._counts[1] += 1
            else:  # a chunk or an end for a plain ask: a violation, as the protocol counts it
                self._counts[3] += 1
                self._counts[4] += 1
            if self._record is None:
                return waiter, _answer(ask_id, kind, fields[3])
            answer = _answer(ask_id, kind, fields[3])
            self._record(waiter, answer)
        return waiter, answer

    def first_waiting(self) -> W | None:
        """An open ask's waiter, the oldest (call with :attr:`lock` held)."""
        for waiter in self._open.values():
            return waiter
        return None

    # ------------------------------------------------------------------ trio's side
    def changed(self, protocol: LineProtocol) -> tuple[str, str] | None:
        """Note the line's state; what the open asks fail with (``kind``, ``why``) when the
        line closed or their connection ended, else None."""
        connected, pipe, closed = protocol.connected, protocol.pipe, protocol.state is LineState.CLOSED
        with self.lock:
            switched = self.connected and (not connected or pipe != self.pipe)
            self.connected, self.pipe = connected and not closed, pipe
            self.closed = self.closed or closed
        if closed:
            return "closed", "the line closed"
        if switched:  # (a lost connection also fails them through take_all, with its reason)
            return "lost", "the connection to the peer closed"
        return None

    def take_all(self, kind: str = "lost", why: str = "") -> dict[int, W]:
        """Every open ask, out of the table (counted as failed): their waiters are the
        caller's (recorded as failed with ``kind`` and ``why`` when the book records)."""
        with self.lock:
            asks, self._open = self._open, {}
            self._counts[3] += len(asks)
            if self._record is not None:
                for ask_id, waiter in asks.items():
                    self._record(waiter, Answer(ask_id, kind, why))
        return asks

    def settle(self, protocol: LineProtocol, count_sent: Any) -> int:
        """The counts since the last settlement into the protocol's books and, through
        ``count_sent(frames, size)``, the socket's (trio's thread); returns how many are open."""
        with self.lock:
            sent, size, self._sent, self._sent_bytes = self._sent, self._sent_bytes, 0, 0
            counts, self._counts = self._counts, [0, 0, 0, 0, 0]
            still_open = len(self._open)
        if sent:
            count_sent(sent, size)
        protocol.asks.count_elsewhere(*counts)
        return still_open


def _answer(ask_id: int, kind: str, body: Any) -> Answer:
    if kind == f.REPLY:
        return Answer(ask_id, kind, body)
    if kind == f.ERROR:
        return Answer(ask_id, kind, f.error_body(body))
    return Answer(ask_id, "violation", f"a {kind!r} frame")


def send_ask(book: AskBook[Any], pair: Pair, shape: Shape | None, ask_id: int, value: Any, timeout: float) -> bool:
    """Send the ask ``ask_id`` (registered in ``book``) with NNG's thread-safe send, from the
    asker's thread, as trio's asker writes it (``Link.send_ask_now``): from the line's ask
    ``shape``, else as the common frame of its fields, no envelope built; False, and out of
    the book, when it cannot go this way (closed, too large, unencodable, not small and
    plain): the trio path then says what is wrong."""
    deadline = time.time() + timeout
    try:
        if shape is not None:
            size = pair.send_shaped_threadsafe(shape, ask_id, None, deadline, value)
        else:  # (a name with no common form: the fields' writer refuses it too)
            size = pair.send_fields_threadsafe(f.ASK, ask_id, f.ask_body(value, False), None, deadline)
    except Exception:  # noqa: BLE001 - the trio path raises the right error for it
        size = None
    return book.sent(ask_id, size)
