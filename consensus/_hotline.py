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

import inspect
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from patterns import (
    Closed,
    ConsensusError,
    EncodeError,
    Envelope,
    MalformedMessage,
    MessageTooLarge,
    Pair,
    PeerLost,
    RemoteError,
    Timeout,
    TLSConfig,
    WouldBlock,
)
from patterns._wire import DEFAULT_MAX_MESSAGE_SIZE, MAX_SENDER_LENGTH

from ._asks import REPLY_KINDS, Action, AskTable
from ._handlers import resume, run_handler
from ._hotline_frames import ASK, CHUNK, END, ERROR, MSG, PING, PONG, REPLY, HotlineStatistics, IncomingAsk
from ._hotline_wait import AnswerSlot, AskTimer, Waiter
from ._poll import MemberError
from ._service import service_nursery

__all__ = ["Hotline", "HotlineStatistics", "IncomingAsk", "hotline"]

log = logging.getLogger("consensus")

QUEUE = 256  # values received and not yet taken; beyond it the line waits (the peer is slowed)
_ID_MASK = 0xFFFF_FFFF_FFFF_FFFF


class Hotline:
    """One end of a hotline. Create it with :func:`hotline`."""

    def __init__(self, address: str, *, listen: bool, name: str, on_ask: Callable[..., Any] | None,
                 heartbeat: float, missed_heartbeats: int, handler_threads: int, max_message_size: int,
                 tls: TLSConfig | None) -> None:  # fmt: skip
        if not (heartbeat > 0 and math.isfinite(heartbeat)) or missed_heartbeats < 1:
            raise ValueError(
                f"heartbeat must be > 0 s and missed_heartbeats >= 1, got {heartbeat!r}, {missed_heartbeats!r}"
            )
        if not isinstance(name, str) or len(name) > MAX_SENDER_LENGTH:
            raise ValueError(
                f"name must be text of at most {MAX_SENDER_LENGTH} characters, got {name!r:.300}"
            )
        self.address = address
        self.name = name
        self.heartbeat = float(heartbeat)
        self.missed_heartbeats = missed_heartbeats
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size, "tls": tls}
        self._pair = Pair(listen=address, **opts) if listen else Pair(dial=address, **opts)
        self._on_ask = on_ask
        # An async function (not a generator) is run inline by the receiver (module docstring).
        self._inline = on_ask is not None and inspect.iscoroutinefunction(on_ask)
        self._handler_name = getattr(on_ask, "__qualname__", repr(on_ask))
        self._threads = trio.CapacityLimiter(handler_threads)
        self._asks = AskTable()
        self._waiters: dict[int, Waiter] = {}
        self._timer = AskTimer(self._waiters)  # plain asks time out through one timer task
        self._ids = secrets.randbits(62)
        self._inbox_send, self._inbox = trio.open_memory_channel[Any](QUEUE)
        self._requests_send, self._requests = trio.open_memory_channel[IncomingAsk](QUEUE)
        self._sending = trio.StrictFIFOLock()
        # Who reads the line: the receive loop, or an asker while it waits (see _read_until_answered).
        self._reader: AnswerSlot | None = None  # the slot of the asker reading the line
        self._receiver_idle = False  # the receive loop is between frames, not reading: it may be relieved
        self._receiver_parked: trio.lowlevel.Task | None = None  # ... and waits for an asker to finish
        self._asker_woken = False  # the frame just delivered woke a parked asker
        self._handed_over: deque[tuple[Envelope, int]] = deque()  # frames an asker read for the receive loop
        self._pipe: int | None = None
        self._heard = 0.0
        self._nursery: trio.Nursery | None = None
        self._counts = dict.fromkeys(("connections", "asks_served", "malformed", "silent_disconnects"), 0)

    def __repr__(self) -> str:
        return f"<Hotline {self.name!r} {self.address} {'connected' if self.connected else 'waiting'}>"

    # ------------------------------------------------------------------ public
    @property
    def connected(self) -> bool:
        return len(self._pair.peers_state) > 0

    async def wait_connected(self) -> None:
        await self._pair.wait_for_peers(1)

    async def wait_disconnected(self) -> None:
        """Return once no peer is connected (at once if none is)."""
        await self._pair.peers_state.wait_until(lambda peers: not peers)

    @property
    def bound_address(self) -> str:
        """Where a listening line listens (a tcp port 0 resolved); a dialing line's address."""
        return self._pair.addresses[0] if self._pair.addresses else self.address

    async def send(self, value: Any) -> None:
        """Send ``value`` to the peer (waits while there is no peer, or NNG's queue is full)."""
        await self._send(Envelope(MSG, self.name, self._pair._next_id(), value), checkpoint=True)

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

    # ------------------------------------------------------------------ answering
    async def _answer(self, ask: IncomingAsk, kind: str, value: Any) -> None:
        if self._pair.peers_state.was_removed(ask._pipe):  # nobody waits for this any more
            raise PeerLost(f"ask {ask.id}: the peer that asked has gone")
        try:
            await self._send(
                Envelope(kind, self.name, self._pair._next_id(), value, re=ask.id), checkpoint=True
            )
        except (EncodeError, MessageTooLarge) as exc:
            if kind == ERROR:
                raise
            ask.done = True
            await self._send(self._unsendable(ask.id, exc), checkpoint=True)

    def _unsendable(self, ask_id: int, exc: Exception) -> Envelope:
        """The error frame that replaces an answer with no wire form (or too large to send)."""
        error = MemberError(type(exc).__name__, str(exc)[:2000]).to_wire()
        return Envelope(ERROR, self.name, self._pair._next_id(), error, re=ask_id)

    async def _serve(self, ask: IncomingAsk) -> None:
        """Answer one ask in its own task: plain handlers (in a thread) and async generators."""
        handler = self._on_ask
        assert handler is not None
        try:
            if inspect.isasyncgenfunction(handler):
                last = None
                async for piece in handler(ask.value):
                    if ask.stream:
                        await ask.chunk(piece)
                    else:  # a plain ask answered by a generator: the last piece is the reply
                        last = piece
                await (ask.end() if ask.stream else ask.reply(last))
            else:
                ok, result = await run_handler(handler, ask.value, deadline=math.inf, limiter=self._threads)
                if not ok:
                    await ask.fail(result)
                elif ask.stream:
                    await ask.end(result)
                else:
                    await ask.reply(result)
            self._counts["asks_served"] += 1
        except PeerLost:
            log.info("%r: the peer left before ask %d was answered", self, ask.id)
        except Exception as exc:  # noqa: BLE001 - an async generator handler failed mid-stream
            if not ask.done:
                await ask.fail(exc)

    async def _serve_inline(self, ask_id: int, pipe: int, value: Any, stream: bool) -> bool:
        """Answer an ask with the async ``on_ask`` in the receiving task, as far as it goes
        without waiting (module docstring). Returns whether this task still receives: not
        once it handed that role to a new task, because the handler suspended or the answer
        had to wait for room to send."""
        handler = self._on_ask
        assert handler is not None
        receiving = True
        kind = END if stream else REPLY
        try:
            coro = handler(value)
            try:
                trap = coro.send(None)
            except StopIteration as done:
                result = done.value
            else:  # the handler yields to trio: from here on it has this task to itself
                receiving = self._hand_off()
                result = await resume(coro, trap)
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the peer's answer
            log.info("handler %s failed: %r", self._handler_name, exc)
            kind, result = ERROR, MemberError.from_exception(exc).to_wire()
        if self._pair.peers_state.was_removed(pipe):
            log.info("%r: the peer left before ask %d was answered", self, ask_id)
            return receiving
        envelope = Envelope(kind, self.name, self._pair._next_id(), result, re=ask_id)
        try:
            try:
                sent = self._send_now(envelope)
            except (EncodeError, MessageTooLarge) as exc:
                envelope = self._unsendable(ask_id, exc)
                sent = self._send_now(envelope)
            if not sent:
                if receiving:
                    receiving = self._hand_off()
                async with self._sending:
                    await self._pair.send_envelope(envelope)
        except ConsensusError as exc:
            if receiving and isinstance(exc, Closed):
                raise  # the line is closing: the receiver stops
            log.info("%r: the answer to ask %d was not sent: %r", self, ask_id, exc)
            return receiving
        self._counts["asks_served"] += 1
        return receiving

    def _hand_off(self) -> bool:
        """Start a new receiving task; the current one goes on with one ask only."""
        assert self._nursery is not None
        self._nursery.start_soon(self._receive_loop)
        return False

    # ------------------------------------------------------------------ loops
    def _send_now(self, envelope: Envelope) -> bool:
        """Send at once if no other task is queued to send and NNG takes the frame without
        waiting. Raises what encoding raises (:class:`EncodeError`, :class:`MessageTooLarge`)."""
        if self._sending.locked():
            return False
        try:
            self._pair.send_envelope_nowait(envelope)
        except WouldBlock:
            return False
        return True

    async def _send(self, envelope: Envelope, *, checkpoint: bool = False) -> None:
        """Send a frame, waiting in FIFO order for room when it cannot go out at once.
        With ``checkpoint``, it is a trio checkpoint even when it does not wait."""
        if checkpoint:
            await trio.lowlevel.checkpoint_if_cancelled()
        if self._send_now(envelope):
            if checkpoint:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        async with self._sending:
            await self._pair.send_envelope(envelope)

    async def _read_until_answered(self, slot: AnswerSlot) -> None:
        """Read the line in the asker's own task until its answer is in ``slot``.

        The receive loop would read the answer and wake the asker: one more task to run,
        one more pass of trio's scheduler. So after it has woken an asker, the receive loop
        waits until that ask is over; an ask sent then (typically the same task asking
        again at once) reads the line itself, and its reply wakes it directly. It delivers
        answers to plain asks (its own and others') and stale ones; anything else (an ask,
        a value, a ping, a chunk of a stream) goes back to the receive loop, which handles
        it before reading on, in order. Ended by the answer, the timer or a lost connection
        (``slot.put`` cancels the wait), or the asker's own cancellation; then the receive
        loop reads again."""
        self._reader = slot
        pair = self._pair
        try:
            with trio.CancelScope() as scope:
                slot.scope = scope
                while slot.reply is None:
                    try:
                        envelope, pipe = await pair.receive_from()
                    except MalformedMessage as exc:
                        log.warning("%r dropped a frame: %s", self, exc)
                        continue
                    self._heard = trio.current_time()
                    re = envelope.re
                    if envelope.kind not in REPLY_KINDS or (
                        re is not None and isinstance(self._waiters.get(re), trio.MemorySendChannel)
                    ):
                        self._handed_over.append((envelope, pipe))
                        return
                    slot.scope = None  # its own answer ends the loop without a cancellation
                    try:
                        self._deliver(envelope)
                    except MalformedMessage as exc:
                        self._counts["malformed"] += 1
                        log.warning("%r ignored a frame: %s", self, exc)
                    slot.scope = scope
        finally:
            slot.scope = None
            self._reader = None
            self._wake_receiver()

    def _wake_receiver(self) -> None:
        """Let the receive loop read the line again, if it waits for an asker."""
        task = self._receiver_parked
        if task is not None:
            self._receiver_parked = None
            trio.lowlevel.reschedule(task)

    def _receiver_abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._receiver_parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def _receive_loop(self) -> None:
        pair = self._pair
        while True:
            if self._reader is not None:  # an asker reads the line: wait until it is done
                self._receiver_idle = True
                self._receiver_parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._receiver_abort)
                continue
            self._receiver_idle = False
            if self._handed_over:
                await trio.lowlevel.checkpoint_if_cancelled()  # (a closing line stops here)
                envelope, pipe = self._handed_over.popleft()
            else:
                try:
                    envelope, pipe = await pair.receive_from()
                except MalformedMessage as exc:
                    log.warning("%r dropped a frame: %s", self, exc)
                    continue
                except Closed:
                    return
                self._heard = trio.current_time()
            self._asker_woken = False  # (an asker reading the line may have set it)
            try:
                if not await self._on_frame(envelope, pipe):
                    return  # another task receives now (see _serve_inline)
            except MalformedMessage as exc:
                self._counts["malformed"] += 1
                log.warning("%r ignored a frame: %s", self, exc)
            except Closed:
                return
            if self._asker_woken:
                # An asker just got its answer and may ask again at once: wait until its ask
                # is over (it wakes this task), so that its next ask reads the line itself.
                self._asker_woken = False
                if not self._handed_over:
                    self._receiver_idle = True
                    self._receiver_parked = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._receiver_abort)

    async def _on_frame(self, envelope: Envelope, pipe: int) -> bool:
        """Handle one frame; returns False when this task has stopped being the receiver."""
        kind = envelope.kind
        if kind == ASK:
            body = envelope.body
            if not isinstance(body, dict) or "v" not in body or type(body.get("stream", False)) is not bool:
                raise MalformedMessage(f"ask {envelope.id}: the body must be {{'v': value, 'stream': bool}}",
                                       reason="body", size=0)  # fmt: skip
            if self._inline:
                return await self._serve_inline(envelope.id, pipe, body["v"], body.get("stream", False))
            ask = IncomingAsk(self, envelope, pipe, body["v"], body.get("stream", False))
            if self._on_ask is not None:
                assert self._nursery is not None
                self._nursery.start_soon(self._serve, ask)
            else:
                await self._requests_send.send(ask)
        elif kind in REPLY_KINDS:
            pending = self._deliver(envelope)
            if pending is not None:  # a stream whose consumer lags: the line waits for it
                await pending[0].send(pending[1])
        elif kind == MSG:
            try:
                self._inbox_send.send_nowait(envelope.body)
            except trio.WouldBlock:  # nobody takes the values: the line waits (the peer is slowed)
                await self._inbox_send.send(envelope.body)
            except trio.ClosedResourceError:  # the line closed as this frame came in
                return False
        elif kind == PING:
            with trio.move_on_after(self.heartbeat):
                await self._send(Envelope(PONG, self.name, self._pair._next_id(), None))
        elif kind != PONG:
            raise MalformedMessage(f"unknown frame kind {kind!r}", reason="body", size=0)
        return True

    def _deliver(
        self, envelope: Envelope
    ) -> tuple[trio.MemorySendChannel[tuple[str, Any]], tuple[str, Any]] | None:
        """Account an answer frame (reply, chunk, end, error) and hand it to its asker.
        Returns the channel and item when a streamed ask's channel is full (to send, waiting)."""
        kind, re = envelope.kind, envelope.re
        if re is None:
            raise MalformedMessage(f"a {kind!r} frame without 're'", reason="body", size=0)
        action = self._asks.answer(kind, re)
        waiter = self._waiters.get(re)
        if waiter is None or action is Action.DROP:
            return None
        body = envelope.body
        if kind == ERROR and not (isinstance(body, dict) and isinstance(body.get("type"), str)):
            body = {"type": "Error", "message": repr(body)[:200]}
        item = ("violation", f"a {kind!r} frame") if action is Action.VIOLATION else (kind, body)
        if isinstance(waiter, AnswerSlot):
            self._asker_woken = waiter.task is not None
            waiter.put(item)
            return None
        try:
            waiter.send_nowait(item)
        except trio.WouldBlock:
            return waiter, item
        return None

    def _lost(self, why: str, kind: str = "lost") -> None:
        for ask_id in self._asks.fail_all():
            waiter = self._waiters.get(ask_id)
            if isinstance(waiter, AnswerSlot):
                waiter.put((kind, why))
            elif waiter is not None:
                try:
                    waiter.send_nowait((kind, why))
                except trio.WouldBlock:  # a stream whose consumer lags: it fails at its deadline
                    pass

    async def _watch_peer(self) -> None:
        while True:
            peers = self._pair.peers
            pipe = next(iter(peers)).id if peers else None
            if pipe != self._pipe:
                if self._pipe is not None:
                    self._lost("the connection to the peer closed")
                if pipe is not None:
                    self._counts["connections"] += 1
                    self._heard = trio.current_time()
                self._pipe = pipe
            await self._pair.wait_peers_changed()

    async def _heartbeats(self) -> None:
        while True:
            await trio.sleep(self.heartbeat)
            if self._pipe is None:
                continue
            silent = trio.current_time() - self._heard
            if silent > self.heartbeat * self.missed_heartbeats:
                self._counts["silent_disconnects"] += 1
                log.warning("%r: the peer was silent for %.1f s; disconnecting", self, silent)
                self._lost(f"the peer was silent for {silent:.1f} s")
                self._pair.disconnect(self._pipe)
                continue
            with trio.move_on_after(self.heartbeat):
                await self._send(Envelope(PING, self.name, self._pair._next_id(), None))


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
