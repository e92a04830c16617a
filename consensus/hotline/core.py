"""The hotline's machinery below its API: state, sending, reading the line, heartbeats.

:class:`LineCore` owns the pair socket and the tables of open asks. One task, the
receiver (:meth:`LineCore._receive_loop`), reads the line and hands each frame to
:meth:`_on_frame` (answering and dispatch, in :mod:`consensus.hotline.serve`); an asker
that waits for its answer may read the line itself (:meth:`_read_until_answered`). The
public :class:`~consensus.Hotline` (in :mod:`consensus.hotline.line`) adds asking and the
rest of the API. The module docstring of :mod:`consensus.hotline.line` says why it is built so.
"""

from __future__ import annotations

import inspect
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

import trio

from consensus.hotline.asks import REPLY_KINDS, Action, AskTable
from consensus.hotline.frames import ERROR, PING, IncomingAsk
from consensus.hotline.wait import AnswerSlot, AskTimer, Waiter
from patterns import MAX_SENDER_LENGTH, Closed, Envelope, MalformedMessage, Pair, TLSConfig, WouldBlock

__all__ = ["QUEUE", "LineCore"]

log = logging.getLogger("consensus.hotline")

QUEUE = 256  # values received and not yet taken; beyond it the line waits (the peer is slowed)


class LineCore:
    """State and the frame-level loops of one end of a hotline."""

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

    @property
    def connected(self) -> bool:
        return len(self._pair.peers_state) > 0

    async def wait_connected(self) -> None:
        await self._pair.wait_for_peers(1)

    async def _on_frame(self, envelope: Envelope, pipe: int) -> bool:
        """Handle one frame; returns False when this task has stopped being the receiver
        (implemented by :class:`consensus.hotline.serve.ServingLine`)."""
        raise NotImplementedError

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
                await self._send(Envelope(PING, self.name, self._pair.next_id(), None))
