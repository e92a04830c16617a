"""Hotlines: a direct, two-way line between two agents over NNG pair1, with asks.

::

    async with consensus.hotline("ipc:///tmp/mesh-a", listen=True, name="claude",
                                 on_ask=refine) as line:
        await line.wait_connected()
        await line.send({"turn": 1})                     # one-way
        answer = await line.ask({"mesh": "v3"}, timeout=5)
        async for token in line.ask_stream("explain", timeout=30):
            print(token, end="")

Exactly one side listens and the other dials. NNG's pair1 keeps one peer: a second dialer
is refused and the first conversation goes on. When the peer restarts, the dialer connects
again by itself; asks in flight when the connection drops fail at once with
:class:`~patterns.PeerLost`. Both sides ping every ``heartbeat`` seconds; a peer silent for
``missed_heartbeats`` of them is disconnected (and its asks fail the same way).

Frames (envelope kinds): ``msg`` (a value sent), ``ask`` (``id`` = the ask id, ``dl`` its
deadline, ``b`` = ``{"v": value, "stream": bool}``), ``reply`` / ``chunk`` / ``end`` /
``error`` (``re`` = the ask id; ``b`` the value, or ``{"type", "message"}`` for errors),
``ping`` and ``pong``. A reply to an unknown or expired ask is dropped and counted.
The peer answers an ask with ``on_ask`` (plain, async, or an async generator for a
stream) or, without a handler, through :meth:`Hotline.receive_ask`.

Where the time of an ask goes
-----------------------------
Beside NNG's own cost (a send and a wake-up per frame), a round trip is Python work per
frame: the envelope codec of :mod:`patterns`, and trio, where a pass of the scheduler (or a
task) costs about as much as encoding the frame. So the common path avoids them:

* One task, the *receiver*, reads the line. An ask whose ``on_ask`` is an async function
  (a coroutine function, not an async generator) is answered inline: the receiver calls
  the handler and runs it up to its first suspension. A handler that returns without
  suspending is answered at once, with no task spawned. A handler that suspends (any
  ``await`` that yields to trio, even ``trio.sleep(0)``) is not waited for: the receiver
  first starts a new receiving task, then finishes that one ask in its own task, the way
  a task per ask would. So a slow or waiting handler never stalls the line. (An inline
  handler shares the receiving task's context variables; one that computes for long
  without awaiting holds up every task of the process, inline or not.) Plain handlers
  (run in a worker thread) and async generators are served in a task per ask.
* A frame goes out at once when NNG takes it without waiting and no other task is queued
  to send; otherwise the sender queues on a FIFO lock and waits for room. NNG frames never
  interleave; the lock keeps waiting senders in order (one task at a time may wait on
  NNG's send descriptor).
* A plain ask waits in a one-slot mailbox (the asker parks with ``trio.lowlevel``); a
  streamed ask keeps a bounded channel, so a slow consumer slows the line.
* An asker that asks again right after its answer reads the line itself while it waits
  (the receive loop steps aside until that ask is over), so its reply wakes it directly,
  without a second task and a second pass of the scheduler. Frames it does not deliver
  itself (anything but answers to plain asks) go back to the receive loop, in order.
* Plain asks time out through one timer task that sleeps until the earliest deadline of
  the asks still open, not through a cancel scope each (entering and leaving one costs
  about as much as the rest of the asker's bookkeeping). Streamed asks keep a cancel
  scope per wait.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from consensus.errors import PeerLost, RemoteError
from consensus.hotline.core import QUEUE
from consensus.hotline.frames import ASK, CHUNK, END, ERROR, MSG, REPLY, HotlineStatistics, IncomingAsk
from consensus.hotline.serve import ServingLine
from consensus.hotline.wait import AnswerSlot
from consensus.runtime.service import service_nursery
from patterns import DEFAULT_MAX_MESSAGE_SIZE, Closed, Envelope, MalformedMessage, Timeout, TLSConfig

__all__ = ["Hotline", "HotlineStatistics", "IncomingAsk", "hotline"]

log = logging.getLogger("consensus.hotline")

_ID_MASK = 0xFFFF_FFFF_FFFF_FFFF


class Hotline(ServingLine):
    """One end of a hotline. Create it with :func:`hotline`.

    Built in layers: :class:`~consensus.hotline.core.LineCore` (state, sending, reading
    the line, heartbeats), :class:`~consensus.hotline.serve.ServingLine` (frames and
    answers), and this class (asking and the rest of the API)."""

    # ------------------------------------------------------------------ public
    async def wait_disconnected(self) -> None:
        """Return once no peer is connected (at once if none is)."""
        await self._pair.peers_state.wait_until(lambda peers: not peers)

    @property
    def bound_address(self) -> str:
        """Where a listening line listens (a tcp port 0 resolved); a dialing line's address."""
        return self._pair.addresses[0] if self._pair.addresses else self.address

    async def send(self, value: Any) -> None:
        """Send ``value`` to the peer (waits while there is no peer, or NNG's queue is full)."""
        await self._send(Envelope(MSG, self.name, self._pair.next_id(), value), checkpoint=True)

    async def receive(self) -> Any:
        """The next value the peer sent with :meth:`send`."""
        try:
            return await self._inbox.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise Closed(f"{self!r} is closed") from None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._values()

    async def _values(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self.receive()
            except Closed:
                return

    async def receive_ask(self) -> IncomingAsk:
        """The next ask from the peer (only when the line has no ``on_ask`` handler)."""
        if self._on_ask is not None:
            raise RuntimeError(f"{self!r} answers asks with its on_ask handler")
        try:
            return await self._requests.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise Closed(f"{self!r} is closed") from None

    async def ask(self, value: Any, *, timeout: float) -> Any:
        """Send ``value`` as an ask and return the peer's reply.

        Raises :class:`~patterns.Timeout` after ``timeout`` seconds, :class:`~patterns.PeerLost`
        if the connection drops first, :class:`~patterns.RemoteError` if the peer's handler failed."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._ids = ask_id = (self._ids + 1) & _ID_MASK
        deadline = trio.current_time() + timeout
        slot = AnswerSlot()
        self._asks.open(ask_id, deadline=deadline, stream=False)
        self._waiters[ask_id] = slot
        try:
            envelope = Envelope(
                ASK, self.name, ask_id, {"v": value, "stream": False}, None, time.time() + timeout
            )
            if not (self._pair.peers_state and self._send_now(envelope)):
                await self._send_ask_later(ask_id, value, False, timeout, deadline)
            if slot.reply is None:
                self._timer.expire_at(deadline, ask_id)
                if self._receiver_idle and self._reader is None and not self._handed_over:
                    await self._read_until_answered(slot)
                if slot.reply is None:
                    slot.task = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(slot.abort)
            reply = slot.reply
            assert reply is not None
            if reply[0] == "timeout":
                raise self._timed_out(ask_id, deadline, timeout, stream=False)
            return self._outcome(ask_id, *reply)
        finally:
            self._asks.close(ask_id)
            del self._waiters[ask_id]
            if self._reader is None:
                self._wake_receiver()

    async def ask_stream(self, value: Any, *, timeout: float) -> AsyncGenerator[Any, None]:
        """Send ``value`` as an ask answered by a stream; yields each chunk as it comes.
        ``timeout`` bounds the whole stream. (No cancel scope is open across a yield, so
        the consumer may stop early; ``contextlib.aclosing`` closes the ask at once.)"""
        async with self._open_stream(value, timeout) as (ask_id, next_reply):
            while True:
                kind, body = await next_reply()
                if kind == CHUNK:
                    yield body
                    continue
                last = self._outcome(ask_id, kind, body)
                if last is not None:
                    yield last
                return

    def statistics(self) -> HotlineStatistics:
        t = self._asks.statistics()
        s = self._pair.statistics()
        return HotlineStatistics(
            connected=self.connected, connections=self._counts["connections"], sent=s.messages_sent,
            received=s.messages_received,
            asks_open=t.open, asks_answered=t.answered, asks_expired=t.expired, asks_failed=t.failed,
            stale_replies=t.stale, asks_served=self._counts["asks_served"],
            malformed=self._counts["malformed"] + t.malformed + s.malformed,
            silent_disconnects=self._counts["silent_disconnects"],
        )  # fmt: skip

    # ------------------------------------------------------------------ asking
    async def _send_ask_later(
        self, ask_id: int, value: Any, stream: bool, timeout: float, deadline: float
    ) -> None:
        """Send an ask that could not go out at once: wait for a peer and room, until its deadline."""
        with trio.move_on_at(deadline):
            if not self.connected:
                await self.wait_connected()
            await self._send(Envelope(ASK, self.name, ask_id, {"v": value, "stream": stream},
                                      deadline=time.time() + timeout))  # fmt: skip
            return
        raise self._timed_out(ask_id, deadline, timeout, stream=stream)

    def _timed_out(self, ask_id: int, deadline: float, timeout: float, *, stream: bool) -> Timeout:
        self._asks.expire(deadline)
        what = "end of stream" if stream else "reply"
        return Timeout(f"ask {ask_id} on {self!r}: no {what} within {timeout} s")

    @asynccontextmanager
    async def _open_stream(
        self, value: Any, timeout: float
    ) -> AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[str, Any]]]]]:
        """Open and send a streamed ask; yields its id and a function that awaits its next reply.
        Each wait opens its own cancel scope at the ask's deadline: none spans a yield."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._ids = ask_id = (self._ids + 1) & _ID_MASK
        send, receive = trio.open_memory_channel[tuple[str, Any]](QUEUE)
        deadline = trio.current_time() + timeout

        async def next_reply() -> tuple[str, Any]:
            with trio.move_on_at(deadline):
                return await receive.receive()
            raise self._timed_out(ask_id, deadline, timeout, stream=True)

        self._asks.open(ask_id, deadline=deadline, stream=True)
        self._waiters[ask_id] = send
        try:
            envelope = Envelope(
                ASK, self.name, ask_id, {"v": value, "stream": True}, None, time.time() + timeout
            )
            if not (self._pair.peers_state and self._send_now(envelope)):
                await self._send_ask_later(ask_id, value, True, timeout, deadline)
            yield ask_id, next_reply
        finally:
            self._asks.close(ask_id)
            self._waiters.pop(ask_id, None)

    @staticmethod
    def _outcome(ask_id: int, kind: str, body: Any) -> Any:
        if kind in (REPLY, END):
            return body
        if kind == ERROR:
            raise RemoteError(body.get("type", "Error"), body.get("message", ""))
        if kind == "lost":
            raise PeerLost(f"ask {ask_id}: {body}")
        if kind == "closed":
            raise Closed(f"ask {ask_id}: the line closed before the answer came")
        raise MalformedMessage(f"ask {ask_id}: the peer answered with {body}", reason="body", size=0)


@asynccontextmanager
async def hotline(address: str, *, listen: bool = False, dial: bool = False, name: str = "",
                  on_ask: Callable[..., Any] | None = None, heartbeat: float = 1.0, missed_heartbeats: int = 3,
                  handler_threads: int = 4, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                  tls: TLSConfig | None = None) -> AsyncIterator[Hotline]:  # fmt: skip
    """Open a hotline at ``address``: exactly one of ``listen=True`` or ``dial=True``."""
    if listen == dial:
        raise ValueError(f"hotline({address!r}): give exactly one of listen=True or dial=True")
    line = Hotline(address, listen=listen, name=name or ("listener" if listen else "dialer"), on_ask=on_ask,
                   heartbeat=heartbeat, missed_heartbeats=missed_heartbeats, handler_threads=handler_threads,
                   max_message_size=max_message_size, tls=tls)  # fmt: skip
    async with line._pair, service_nursery() as nursery:
        line._nursery = nursery
        for loop in (line._receive_loop, line._watch_peer, line._heartbeats, line._timer.run):
            nursery.start_soon(loop)
        try:
            yield line
        finally:
            nursery.cancel_scope.cancel()
            line._lost("the line closed", "closed")
            line._inbox_send.close()
            line._requests_send.close()
