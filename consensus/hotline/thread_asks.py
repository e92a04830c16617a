"""Asks made in plain threads (``consensus.blocking``) without crossing into trio to send.

Through the bridge, a blocking ask woke the trio thread to send it (a wake-up of a
sleeping thread, 40-70 µs here), trio was woken again by the answer, and woke the caller.
With :class:`ThreadAsks` the caller's thread sends the ask itself (NNG's thread-safe send;
an id of this object's, top bit set, so it never meets the protocol's ids) and waits on a
lock; trio's receive loop, which still reads the line, hands the answer over as it reads it
(:meth:`claim`, before the protocol sees the frame) and releases that lock: one crossing
less per ask. An ask that cannot go this way (no peer yet, a frame that is not small and
plain, a sealed line) returns :data:`~consensus.hotline.foreign.NOT_HERE` and takes the
trio path.

Thread safety: behind :attr:`ThreadAsks._lock`, the table of open asks (id → waiter), the
id counter, whether the peer is connected (written by trio from the protocol in
:meth:`changed`: an ask registers only while connected, so a connection lost after that
check finds it in the table and fails it), and the books (settled into the protocol's and
the socket's by trio in :meth:`settle`). A waiter's answer is written once, by whoever
takes it out of the table under the lock (trio's reader, a lost connection, the line
closing); its caller reads it after its lock is released. The protocol is trio's alone.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import Any

import trio

from consensus.hotline import frames as f
from consensus.hotline.events import Answer, LineState
from consensus.hotline.foreign import NOT_HERE, TOP_BIT
from consensus.hotline.line import Hotline
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
        self._lock = threading.Lock()
        self._ids = secrets.randbits(62)
        self._asks: dict[int, _Waiter] = {}
        self._connected = self._closed = False
        self._pipe: int | None = None  # the connection the peer is on
        self._sent = self._sent_bytes = 0
        self._counts = [0, 0, 0, 0, 0]  # asks opened, answered, expired, failed, malformed answers

    # ------------------------------------------------------------------ trio's side
    def changed(self, protocol: LineProtocol) -> None:
        connected, pipe, closed = protocol.connected, protocol.pipe, protocol.state is LineState.CLOSED
        with self._lock:
            switched = self._connected and (not connected or pipe != self._pipe)
            self._connected, self._pipe = connected and not closed, pipe
            self._closed = self._closed or closed
        if closed:
            self.fail_all("closed", "the line closed")
        elif switched:  # (a lost connection also fails them through fail_all, with its reason)
            self.fail_all("lost", "the connection to the peer closed")

    def fail_all(self, kind: str, why: str) -> None:
        with self._lock:
            asks, self._asks = self._asks, {}
            self._counts[3] += len(asks)
        for ask_id, waiter in asks.items():
            _settle(waiter, Answer(ask_id, kind, why))

    def drained(self) -> None:
        pass  # trio reads this line: it has no backlog of its own

    def claim(self, envelope: Envelope, pipe: int) -> bool:
        kind = envelope.kind
        if kind not in f.ANSWER_KINDS:
            return False
        ask_id = envelope.re
        with self._lock:
            # Only on the connection the asks went on: another connection's frame is the protocol's.
            waiter = self._asks.pop(ask_id, None) if type(ask_id) is int and pipe == self._pipe else None
            if waiter is not None:
                if kind == f.REPLY or kind == f.ERROR:
                    self._counts[1] += 1
                else:  # a chunk or an end for a plain ask: a violation, as the protocol counts it
                    self._counts[3] += 1
                    self._counts[4] += 1
        if waiter is None:
            return False  # trio's, or stale: the protocol says which
        self._protocol.heard(trio.current_time())
        assert type(ask_id) is int
        body = envelope.body
        if kind == f.REPLY:
            _settle(waiter, Answer(ask_id, kind, body))
        elif kind == f.ERROR:
            _settle(waiter, Answer(ask_id, kind, f.error_body(body)))
        else:
            _settle(waiter, Answer(ask_id, "violation", f"a {kind!r} frame"))
        return True

    def settle(self) -> int:
        with self._lock:
            sent, size, self._sent, self._sent_bytes = self._sent, self._sent_bytes, 0, 0
            counts, self._counts = self._counts, [0, 0, 0, 0, 0]
            still_open = len(self._asks)
        if sent:
            self._pair.count_sent(sent, size)
        self._protocol.asks.count_elsewhere(*counts)
        return still_open

    # ------------------------------------------------------------------ the caller's thread
    def ask(self, value: Any, timeout: float) -> Any:
        """:meth:`Hotline.ask` from this thread, or :data:`NOT_HERE` (take the trio path)."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        waiter = _Waiter()
        with self._lock:
            if not self._connected or self._closed:
                return NOT_HERE  # trio waits for a peer, or says the line is closed or taken
            self._ids = (self._ids + 1) & (TOP_BIT - 1)
            ask_id = self._ids | TOP_BIT
            self._asks[ask_id] = waiter
            self._counts[0] += 1
        envelope = f.ask_frame(self._name, ask_id, value, False, time.time() + timeout)
        try:
            size = self._pair.send_common_threadsafe(envelope)
        except Exception:  # noqa: BLE001 - closed, too large, unencodable: the trio path says so
            size = None
        with self._lock:
            if size is None:
                self._asks.pop(ask_id, None)
                self._counts[0] -= 1
                return NOT_HERE
            self._sent += 1
            self._sent_bytes += size
        answered = mine = False
        try:
            answered = waiter.done.acquire(timeout=timeout)
        finally:  # (Ctrl-C included) a later answer is stale
            with self._lock:
                mine = self._asks.pop(ask_id, None) is not None
                if mine:
                    self._counts[2] += 1  # (an interrupted ask counts as expired: it did not finish)
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
