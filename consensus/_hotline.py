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
"""

from __future__ import annotations

import inspect
import logging
import math
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from patterns import (
    Closed,
    EncodeError,
    Envelope,
    MalformedMessage,
    MessageTooLarge,
    Pair,
    PeerLost,
    RemoteError,
    Timeout,
    TLSConfig,
)
from patterns._wire import DEFAULT_MAX_MESSAGE_SIZE

from ._asks import Action, AskTable
from ._handlers import run_handler
from ._poll import MemberError
from ._service import service_nursery

__all__ = ["Hotline", "HotlineStatistics", "IncomingAsk", "hotline"]

log = logging.getLogger("consensus")

MSG, ASK, REPLY, CHUNK, END, ERROR, PING, PONG = (
    "msg",
    "ask",
    "reply",
    "chunk",
    "end",
    "error",
    "ping",
    "pong",
)
QUEUE = 256  # values received and not yet taken; beyond it the line waits (the peer is slowed)


@dataclass(frozen=True, slots=True)
class HotlineStatistics:
    connected: bool
    connections: int  # connections made since the line opened
    sent: int
    received: int
    asks_open: int
    asks_answered: int
    asks_expired: int
    asks_failed: int  # peer lost, or a reply of the wrong kind
    stale_replies: int  # replies to unknown, expired or finished asks: dropped
    asks_served: int  # asks from the peer this side answered
    malformed: int
    silent_disconnects: int  # the peer missed its heartbeats


class IncomingAsk:
    """An ask from the peer, to answer with :meth:`reply`, or :meth:`chunk` ... :meth:`end`,
    or :meth:`fail`. Obtained from :meth:`Hotline.receive_ask` when there is no ``on_ask``."""

    def __init__(self, line: Hotline, envelope: Envelope, pipe: int, value: Any, stream: bool) -> None:
        self.value = value
        self.stream = stream
        self.deadline = envelope.deadline
        self.id = envelope.id
        self._line = line
        self._pipe = pipe
        self.done = False

    async def reply(self, value: Any) -> None:
        await self._finish(END if self.stream else REPLY, value)

    async def chunk(self, value: Any) -> None:
        if not self.stream:
            raise ValueError(f"ask {self.id} wants one reply, not a stream: use reply()")
        if self.done:
            raise ValueError(f"ask {self.id} is already answered")
        await self._line._answer(self, CHUNK, value)

    async def end(self, value: Any = None) -> None:
        await self._finish(END, value)

    async def fail(self, error: BaseException | MemberError) -> None:
        err = error if isinstance(error, MemberError) else MemberError.from_exception(error)
        await self._finish(ERROR, err.to_wire())

    async def _finish(self, kind: str, value: Any) -> None:
        if self.done:
            raise ValueError(f"ask {self.id} is already answered")
        self.done = True
        await self._line._answer(self, kind, value)


class Hotline:
    """One end of a hotline. Create it with :func:`hotline`."""

    def __init__(self, address: str, *, listen: bool, name: str, on_ask: Callable[..., Any] | None,
                 heartbeat: float, missed_heartbeats: int, handler_threads: int, max_message_size: int,
                 tls: TLSConfig | None) -> None:  # fmt: skip
        if not (heartbeat > 0 and math.isfinite(heartbeat)) or missed_heartbeats < 1:
            raise ValueError(
                f"heartbeat must be > 0 s and missed_heartbeats >= 1, got {heartbeat!r}, {missed_heartbeats!r}"
            )
        self.address = address
        self.name = name
        self.heartbeat = float(heartbeat)
        self.missed_heartbeats = missed_heartbeats
        opts: dict[str, Any] = {"name": name, "max_message_size": max_message_size, "tls": tls}
        self._pair = Pair(listen=address, **opts) if listen else Pair(dial=address, **opts)
        self._on_ask = on_ask
        self._threads = trio.CapacityLimiter(handler_threads)
        self._asks = AskTable()
        self._waiters: dict[int, trio.MemorySendChannel[tuple[str, Any]]] = {}
        self._ids = secrets.randbits(62)
        self._inbox_send, self._inbox = trio.open_memory_channel[Any](QUEUE)
        self._requests_send, self._requests = trio.open_memory_channel[IncomingAsk](QUEUE)
        self._sending = trio.StrictFIFOLock()
        self._pipe: int | None = None
        self._heard = 0.0
        self._nursery: trio.Nursery | None = None
        self._counts = dict.fromkeys(("connections", "asks_served", "malformed", "silent_disconnects"), 0)

    def __repr__(self) -> str:
        return f"<Hotline {self.name!r} {self.address} {'connected' if self.connected else 'waiting'}>"

    # ------------------------------------------------------------------ public
    @property
    def connected(self) -> bool:
        return bool(self._pair.peers)

    async def wait_connected(self) -> None:
        await self._pair.wait_for_peers(1)

    async def send(self, value: Any) -> None:
        """Send ``value`` to the peer (waits while there is no peer, or NNG's queue is full)."""
        await self._send(Envelope(MSG, self.name, self._pair._next_id(), value))

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
        async with self._open_ask(value, timeout, stream=False) as (ask_id, next_reply):
            kind, body = await next_reply()
            return self._outcome(ask_id, kind, body)

    async def ask_stream(self, value: Any, *, timeout: float) -> AsyncGenerator[Any, None]:
        """Send ``value`` as an ask answered by a stream; yields each chunk as it comes.
        ``timeout`` bounds the whole stream. (No cancel scope is open across a yield, so
        the consumer may stop early; ``contextlib.aclosing`` closes the ask at once.)"""
        async with self._open_ask(value, timeout, stream=True) as (ask_id, next_reply):
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
    @asynccontextmanager
    async def _open_ask(
        self, value: Any, timeout: float, *, stream: bool
    ) -> AsyncIterator[tuple[int, Callable[[], Awaitable[tuple[str, Any]]]]]:
        """Open and send an ask; yields its id and a function that awaits its next reply.
        Each wait opens its own cancel scope at the ask's deadline: none spans a yield."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        self._ids = (self._ids + 1) & 0xFFFF_FFFF_FFFF_FFFF
        ask_id = self._ids
        send, receive = trio.open_memory_channel[tuple[str, Any]](QUEUE)
        deadline = trio.current_time() + timeout

        def timed_out() -> Timeout:
            self._asks.expire(deadline)
            what = "end of stream" if stream else "reply"
            return Timeout(f"ask {ask_id} on {self!r}: no {what} within {timeout} s")

        async def next_reply() -> tuple[str, Any]:
            with trio.move_on_at(deadline):
                return await receive.receive()
            raise timed_out()

        self._asks.open(ask_id, deadline=deadline, stream=stream)
        self._waiters[ask_id] = send
        try:
            sent = False
            with trio.move_on_at(deadline):
                if not self.connected:
                    await self.wait_connected()
                envelope = Envelope(ASK, self.name, ask_id, {"v": value, "stream": stream},
                                    deadline=time.time() + timeout)  # fmt: skip
                await self._send(envelope)
                sent = True
            if not sent:
                raise timed_out()
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
        if self._pipe != ask._pipe:  # the connection it came on is gone: nobody waits for this
            raise PeerLost(f"ask {ask.id}: the peer that asked has gone")
        try:
            await self._send(Envelope(kind, self.name, self._pair._next_id(), value, re=ask.id))
        except (EncodeError, MessageTooLarge) as exc:
            if kind == ERROR:
                raise
            ask.done = True
            await self._send(Envelope(ERROR, self.name, self._pair._next_id(),
                                      MemberError(type(exc).__name__, str(exc)[:2000]).to_wire(), re=ask.id))  # fmt: skip

    async def _serve(self, ask: IncomingAsk) -> None:
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

    # ------------------------------------------------------------------ loops
    async def _send(self, envelope: Envelope) -> None:
        async with self._sending:
            await self._pair.send_envelope(envelope)

    async def _receive_loop(self) -> None:
        while True:
            try:
                envelope, pipe = await self._pair.receive_from()
            except MalformedMessage as exc:
                log.warning("%r dropped a frame: %s", self, exc)
                continue
            except Closed:
                return
            self._heard = trio.current_time()
            try:
                await self._on_frame(envelope, pipe)
            except MalformedMessage as exc:
                self._counts["malformed"] += 1
                log.warning("%r ignored a frame: %s", self, exc)

    async def _on_frame(self, envelope: Envelope, pipe: int) -> None:
        kind = envelope.kind
        if kind == MSG:
            await self._inbox_send.send(envelope.body)
        elif kind == ASK:
            body = envelope.body
            if not isinstance(body, dict) or "v" not in body or type(body.get("stream", False)) is not bool:
                raise MalformedMessage(f"ask {envelope.id}: the body must be {{'v': value, 'stream': bool}}",
                                       reason="body", size=0)  # fmt: skip
            ask = IncomingAsk(self, envelope, pipe, body["v"], body.get("stream", False))
            if self._on_ask is not None:
                assert self._nursery is not None
                self._nursery.start_soon(self._serve, ask)
            else:
                await self._requests_send.send(ask)
        elif kind in (REPLY, CHUNK, END, ERROR):
            if envelope.re is None:
                raise MalformedMessage(f"a {kind!r} frame without 're'", reason="body", size=0)
            verdict = self._asks.on_reply(kind, envelope.re)
            waiter = self._waiters.get(envelope.re)
            if waiter is None or verdict.action is Action.DROP:
                return
            body = envelope.body
            if kind == ERROR and not (isinstance(body, dict) and isinstance(body.get("type"), str)):
                body = {"type": "Error", "message": repr(body)[:200]}
            if verdict.action is Action.VIOLATION:
                await waiter.send(("violation", f"a {kind!r} frame"))
            else:
                await waiter.send((kind, body))
        elif kind == PING:
            with trio.move_on_after(self.heartbeat):
                await self._send(Envelope(PONG, self.name, self._pair._next_id(), None))
        elif kind != PONG:
            raise MalformedMessage(f"unknown frame kind {kind!r}", reason="body", size=0)

    def _lost(self, why: str, kind: str = "lost") -> None:
        for ask_id in self._asks.fail_all():
            waiter = self._waiters.get(ask_id)
            if waiter is not None:
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
        for loop in (line._receive_loop, line._watch_peer, line._heartbeats):
            nursery.start_soon(loop)
        try:
            yield line
        finally:
            nursery.cancel_scope.cancel()
            line._lost("the line closed", "closed")
            line._inbox_send.close()
            line._requests_send.close()
