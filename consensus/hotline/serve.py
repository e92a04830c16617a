"""How a hotline handles the frames it reads: answers asks, hands out replies and values.

An ask is answered by ``on_ask`` (inline in the receiving task for an async function, in
a task of its own for a plain function or an async generator) or queued for
:meth:`~consensus.Hotline.receive_ask`. See the module docstring of :mod:`consensus.hotline.line`.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import trio

from consensus.errors import PeerLost
from consensus.failure import Failure
from consensus.hotline.asks import REPLY_KINDS
from consensus.hotline.core import LineCore
from consensus.hotline.frames import ASK, END, ERROR, MSG, PING, PONG, REPLY, IncomingAsk
from consensus.runtime.handlers import run_handler, run_inline
from patterns import Closed, ConsensusError, EncodeError, Envelope, MalformedMessage, MessageTooLarge

__all__ = ["ServingLine"]

log = logging.getLogger("consensus.hotline")


class ServingLine(LineCore):
    """A line that dispatches the frames it reads and answers the peer's asks."""

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
                await self._send(Envelope(PONG, self.name, self._pair.next_id(), None))
        elif kind != PONG:
            raise MalformedMessage(f"unknown frame kind {kind!r}", reason="body", size=0)
        return True

    async def _answer(self, ask: IncomingAsk, kind: str, value: Any) -> None:
        if self._pair.peers_state.was_removed(ask._pipe):  # nobody waits for this any more
            raise PeerLost(f"ask {ask.id}: the peer that asked has gone")
        try:
            await self._send(
                Envelope(kind, self.name, self._pair.next_id(), value, re=ask.id), checkpoint=True
            )
        except (EncodeError, MessageTooLarge) as exc:
            if kind == ERROR:
                raise
            ask.done = True
            await self._send(self._unsendable(ask.id, exc), checkpoint=True)

    def _unsendable(self, ask_id: int, exc: Exception) -> Envelope:
        """The error frame that replaces an answer with no wire form (or too large to send)."""
        error = Failure(type(exc).__name__, str(exc)[:2000]).to_wire()
        return Envelope(ERROR, self.name, self._pair.next_id(), error, re=ask_id)

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

        def hand_off() -> None:  # the handler yields to trio: from here on it has this task to itself
            nonlocal receiving
            receiving = self._hand_off()

        ok, result = await run_inline(handler, value, deadline=math.inf, on_suspend=hand_off)
        kind = (END if stream else REPLY) if ok else ERROR
        if not ok:  # the handler's failure is the peer's answer
            result = result.to_wire()
        if self._pair.peers_state.was_removed(pipe):
            log.info("%r: the peer left before ask %d was answered", self, ask_id)
            return receiving
        envelope = Envelope(kind, self.name, self._pair.next_id(), result, re=ask_id)
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
