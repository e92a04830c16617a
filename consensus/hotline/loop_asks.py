"""The asks a :class:`~consensus.hotline.foreign.ForeignReader` makes on its asyncio loop.

:meth:`LoopAsks.ask` sends an ask from the loop's thread with NNG's thread-safe send and
waits on a future of the loop; :meth:`LoopAsks._settle_ask` resolves it when the reader
takes the answer off the line, a timer of the loop when the deadline passes, and
:meth:`LoopAsks.fail_all` (trio's thread) when the connection is lost or the line closes.
The table of open asks, the connection they went on and their counts are behind
:attr:`LoopAsks._lock`, which the reader shares for its own hand-over to trio
(``consensus/hotline/foreign.py`` gives the thread-safety argument in full).

Ids: the asks made here (and the answers the reader sends) take their frame ids from a
counter with the top bit set (:data:`TOP_BIT`); the protocol's counter starts below
``2**62``, so the two never meet.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
import time
from typing import Any, Final

from consensus.hotline import frames as f
from consensus.hotline.events import Answer
from consensus.hotline.line import Hotline
from patterns import Envelope, Timeout

__all__ = ["NOT_HERE", "TOP_BIT", "LoopAsks"]

TOP_BIT: Final = 1 << 63
NOT_HERE: Final = object()  # ask(): this ask must take the trio path


class LoopAsks:
    """The asks made on one loop over one line, and the state they share with the reader."""

    def __init__(self, line: Hotline, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pair = line._link.pair
        self._name = line.name
        self._what = f"<Hotline {line.name!r} {line.address}>"
        self._ids = secrets.randbits(62)
        self._fd: int | None = None  # watched by the loop
        self._lock = threading.Lock()
        self._asks: dict[int, asyncio.Future[Answer]] = {}  # behind the lock, from here on
        self._connected = False
        self._pipe: int | None = None
        self._closed = False
        self._sent = self._sent_bytes = 0
        self._counts = [0, 0, 0, 0, 0]  # asks opened, answered, expired, failed, malformed answers

    async def ask(self, value: Any, timeout: float) -> Any:
        """:meth:`Hotline.ask` from this loop, or :data:`NOT_HERE` (take the trio path)."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        loop = self.loop
        if self._fd is None or asyncio.get_running_loop() is not loop:
            return NOT_HERE
        ask_id = self._next_id()
        envelope = f.ask_frame(self._name, ask_id, value, False, time.time() + timeout)
        future: asyncio.Future[Answer] = loop.create_future()
        with self._lock:
            if not self._connected or self._closed:
                return NOT_HERE  # trio waits for a peer, or says the line is closed or taken
            self._asks[ask_id] = future
            self._counts[0] += 1
        try:
            size = self._pair.send_common_threadsafe(envelope)
        except Exception:  # noqa: BLE001 - closed, too large, unencodable: the trio path says so
            size = None
        if size is None:
            with self._lock:
                self._asks.pop(ask_id, None)
                self._counts[0] -= 1
            return NOT_HERE
        with self._lock:
            self._sent += 1
            self._sent_bytes += size
        timer = loop.call_at(loop.time() + timeout, _expire, future, ask_id)
        try:
            answer = await future
        finally:
            timer.cancel()
            with self._lock:  # (answered: gone already) cancelled or timed out: a later answer is stale
                self._asks.pop(ask_id, None)
        if answer.kind == "timeout":
            with self._lock:
                self._counts[2] += 1
            raise Timeout(f"ask {ask_id} on {self._what}: no reply within {timeout} s")
        return Hotline._outcome(answer)

    def _settle_ask(self, envelope: Envelope, pipe: int) -> bool:
        ask_id = envelope.re
        kind, body = envelope.kind, envelope.body
        with self._lock:
            # Only on the connection the asks went on: another connection's frame is the protocol's.
            future = self._asks.pop(ask_id, None) if type(ask_id) is int and pipe == self._pipe else None
            if future is not None:
                if kind == f.REPLY or kind == f.ERROR:
                    self._counts[1] += 1
                else:  # a chunk or an end for a plain ask: a violation, as the protocol counts it
                    self._counts[3] += 1
                    self._counts[4] += 1
        if future is None:
            return False  # trio's, or stale: the protocol says which
        if kind == f.REPLY:
            answer = Answer(ask_id, kind, body)  # type: ignore[arg-type]  # an int: checked above
        elif kind == f.ERROR:
            answer = Answer(ask_id, kind, f.error_body(body))  # type: ignore[arg-type]
        else:
            answer = Answer(ask_id, "violation", f"a {kind!r} frame")  # type: ignore[arg-type]
        if not future.done():
            future.set_result(answer)
        return True

    def _next_id(self) -> int:
        self._ids = (self._ids + 1) & (TOP_BIT - 1)
        return self._ids | TOP_BIT

    # ------------------------------------------------------------------ trio's side
    def fail_all(self, kind: str, why: str) -> None:
        with self._lock:
            asks, self._asks = self._asks, {}
            self._counts[3] += len(asks)
        if asks:
            try:
                self.loop.call_soon_threadsafe(_resolve_all, asks, kind, why)
            except RuntimeError:  # the loop closed: nobody awaits them any more
                pass


def _expire(future: asyncio.Future[Answer], ask_id: int) -> None:
    if not future.done():
        future.set_result(Answer(ask_id, "timeout", None))


def _resolve_all(asks: dict[int, asyncio.Future[Answer]], kind: str, why: str) -> None:
    for ask_id, future in asks.items():
        if not future.done():
            future.set_result(Answer(ask_id, kind, why))
