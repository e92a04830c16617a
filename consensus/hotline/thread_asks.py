"""Asks made in plain threads (``consensus.blocking``) without crossing into trio to send.

Through the bridge, a blocking ask woke the trio thread to send it (a wake-up of a
sleeping thread, 40-70 µs here), trio was woken again by the answer, and woke the caller.
With :class:`ThreadAsks` the caller's thread sends the ask itself (NNG's thread-safe send;
an id of its :class:`~consensus.hotline.ask_book.AskBook`, top bit set, so it never meets
the protocol's ids) and waits on a lock; trio's receive loop, which still reads the line, hands the answer over as it reads it
(:meth:`claim`, before the protocol sees the frame) and releases that lock: one crossing
less per ask. An ask that cannot go this way (no peer yet, a frame that is not small and
plain, a sealed line) returns :data:`~consensus.hotline.loop_asks.NOT_HERE` and takes the
trio path.

Thread safety: the table of open asks (id → waiter), the ids, whether the peer is
connected and the counts are the ``AskBook``'s, behind its lock (see
:mod:`consensus.hotline.ask_book`); trio writes the connection from the protocol in
:meth:`changed` and settles the counts in :meth:`settle`. A waiter's answer is written once, by whoever
takes it out of the table under the lock (trio's reader, a lost connection, the line
closing); its caller reads it after its lock is released. The protocol is trio's alone.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import trio

from consensus.hotline.ask_book import AskBook, send_ask
from consensus.hotline.events import Answer
from consensus.hotline.line import Hotline
from consensus.hotline.loop_asks import NOT_HERE
from consensus.hotline.protocol import LineProtocol
from patterns import Envelope, Timeout

__all__ = ["ThreadAsks", "attach", "attached"]


class _Waiter:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.answer: Answer | None = None
        self.done = threading.Lock()
        self.done.acquire()  # released when the answer is in


class ThreadAsks:
    """The asks of one line made from plain threads; made by :func:`attach` in trio."""

    def __init__(self, line: Hotline) -> None:
        self._pair = line._link.pair
        self._name = line.name
        self._what = f"<Hotline {line.name!r} {line.address}>"
        self._protocol = line._protocol
        self._book: AskBook[_Waiter] = AskBook()

    # ------------------------------------------------------------------ trio's side
    def changed(self, protocol: LineProtocol) -> None:
        failed = self._book.changed(protocol)
        if failed is not None:
            self.fail_all(*failed)

    def fail_all(self, kind: str, why: str) -> None:
        for ask_id, waiter in self._book.take_all().items():
            _settle(waiter, Answer(ask_id, kind, why))

    def drained(self) -> None:
        pass  # trio reads this line: it has no backlog of its own

    def claim(self, envelope: Envelope, pipe: int) -> bool:
        taken = self._book.take(envelope, pipe)
        if taken is None:
            return False  # trio's, or stale: the protocol says which
        self._protocol.heard(trio.current_time())
        _settle(*taken)
        return True

    def settle(self) -> int:
        return self._book.settle(self._protocol, self._pair.count_sent)

    # ------------------------------------------------------------------ the caller's thread
    def ask(self, value: Any, timeout: float) -> Any:
        """:meth:`Hotline.ask` from this thread, or :data:`NOT_HERE` (take the trio path)."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        waiter, book = _Waiter(), self._book
        ask_id = book.open(waiter)
        if ask_id is None:
            return NOT_HERE  # trio waits for a peer, or says the line is closed or taken
        answered = mine = False
        try:
            if not send_ask(book, self._pair, self._name, ask_id, value, timeout):
                return NOT_HERE  # (out of the book already: the finally finds nothing)
            answered = waiter.done.acquire(timeout=timeout)
        finally:  # (Ctrl-C included, even before the send) a later answer is stale; it did not finish
            mine = book.forget(ask_id, expired=True)
        if not answered:
            if mine:
                raise Timeout(f"ask {ask_id} on {self._what}: no reply within {timeout} s")
            waiter.done.acquire()  # taken out as the time ran out: its answer is being written
        assert waiter.answer is not None
        return Hotline._outcome(waiter.answer)


def _settle(waiter: _Waiter, answer: Answer) -> None:
    waiter.answer = answer
    waiter.done.release()


def attach(line: Hotline) -> ThreadAsks | None:
    """Let plain threads ask on ``line`` (trio's thread); None for a sealed line."""
    if line._link.pair.guard is not None:
        return None
    asks = ThreadAsks(line)
    line._reader.attach(asks)
    return asks


def attached(line: Hotline) -> ThreadAsks | None:
    foreign = line._reader.foreign
    return foreign if isinstance(foreign, ThreadAsks) else None
