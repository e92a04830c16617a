"""Hotlines: a direct, two-way line between two agents over NNG pair1, with asks.

::

    async with consensus.hotline(listen="ipc:///tmp/mesh-a", name="claude",
                                 on_ask=refine) as line:
        await line.wait_connected()
        await line.send({"turn": 1})                     # one-way
        answer = await line.ask({"mesh": "v3"}, timeout=5)
        async for token in line.ask_stream("explain", timeout=30):
            print(token, end="")

Exactly one side listens and the other dials. Both say ``hello`` first on a new connection;
a line is connected once it heard the peer's and its own went out. NNG's pair1 keeps one
peer: a second dialer is refused (the listener closes its connection before any hello) and
the first conversation goes on; the refused dialer's state is :attr:`LineState.TAKEN` and its
``wait_connected()`` and asks raise :class:`~consensus.LineTaken`. When the peer
restarts, the dialer connects again by itself; asks in flight when the connection drops
fail at once with :class:`~patterns.PeerLost`. Both sides ping every ``heartbeat`` seconds; a peer silent for
``missed_heartbeats`` of them is disconnected (and its asks fail the same way).

Frames (envelope kinds): ``msg`` (a value sent), ``ask`` (``id`` = the ask id, ``dl`` its
deadline, ``b`` = ``{"v": value, "stream": bool}``), ``reply`` / ``chunk`` / ``end`` /
``error`` (``re`` = the ask id; ``b`` the value, or ``{"type", "message"}`` for errors),
``ping``, ``pong`` and ``hello``. A reply to an unknown or expired ask is dropped and counted.
The peer answers an ask with ``on_ask`` (plain, async, or an async generator for a
stream) or, without a handler, through :meth:`Hotline.receive_ask`.

The pieces: :class:`~consensus.hotline.protocol.LineProtocol` holds the rules (sans-IO);
:class:`~consensus.hotline.link.Link` the socket; :class:`~consensus.hotline.reader.Reader`
reads the line; :class:`~consensus.hotline.serve.Server` answers asks;
:mod:`~consensus.hotline.liveness` watches connections and heartbeats;
:mod:`~consensus.hotline.statistics` holds the record of :meth:`Hotline.statistics`; this
module puts them together and asks.

Why the common path looks as it does (one receiving task, inline async handlers, asks that
read the line themselves, one timer): ``docs/hotline.md`` 5.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from heapq import heappush
from typing import Any

import trio

from consensus.errors import AuthenticationError, LineTaken, PeerLost, RemoteError
from consensus.hotline.events import Answer, LineState, Role
from consensus.hotline.frames import ASK, CHUNK, END, ERROR, REPLY, ask_body, frame
from consensus.hotline.link import Link
from consensus.hotline.liveness import heartbeats, watch_connections
from consensus.hotline.protocol import LineProtocol
from consensus.hotline.reader import Reader
from consensus.hotline.serve import QUEUE, IncomingAsk, Server
from consensus.hotline.statistics import HotlineStatistics, line_statistics
from consensus.hotline.wait import COMPACT_OVER, AnswerSlot, AskTimer
from consensus.hotline.wakes import Wakes, current
from consensus.trust.line import LineKeys
from patterns import (
    MAX_SENDER_LENGTH,
    Closed,
    ConsensusError,
    Envelope,
    MalformedMessage,
    Timeout,
    TLSConfig,
    Unsent,
)  # fmt: skip

__all__ = ["Hotline", "HotlineStatistics", "IncomingAsk", "LineState"]


class Hotline:
    """One end of a hotline. Create it with :func:`consensus.hotline`."""

    def __init__(self, address: str, *, listen: bool, name: str, on_ask: Callable[..., Any] | None,
                 heartbeat: float, missed_heartbeats: int, handler_threads: int, max_message_size: int,
                 tls: TLSConfig | None, keys: LineKeys | None = None) -> None:  # fmt: skip
        if not isinstance(name, str) or len(name) > MAX_SENDER_LENGTH:
            raise ValueError(
                f"name must be text of at most {MAX_SENDER_LENGTH} characters, got {name!r:.300}"
            )
        role = Role.LISTENER if listen else Role.DIALER
        self._protocol = LineProtocol(role, name, heartbeat=heartbeat, missed_heartbeats=missed_heartbeats,
                                      first_id=secrets.randbits(62), keys=keys)  # fmt: skip
        self.address = address
        self.name = name
        self.heartbeat = self._protocol.heartbeat
        self.missed_heartbeats = missed_heartbeats
        self._link = Link(address, listen=listen, name=name, max_message_size=max_message_size, tls=tls,
                          guard=keys.guard if keys else None)  # fmt: skip
        self._server = Server(self._link, self._protocol, on_ask, handler_threads=handler_threads,
                              start_receiver=self._start_receiver)  # fmt: skip
        self._reader = Reader(self._link, self._protocol, self._server)
        self._waiters = self._reader.waiters
        self._timer = AskTimer(self._waiters)  # plain asks time out through one timer task
        self._spare_slot: AnswerSlot | None = None
        self._wakes: Wakes | None = None  # the run's wake-ups before I/O waits (the reader's)
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<Hotline {self.name!r} {self.address} {self.state.value}>"

    def _start_receiver(self) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._reader.receive_loop)

    async def _run(self, nursery: trio.Nursery) -> None:
        self._nursery = self._server.nursery = nursery
        reader, link, protocol = self._reader, self._link, self._protocol
        reader.start()
        self._wakes = current()
        nursery.start_soon(reader.receive_loop)
        nursery.start_soon(watch_connections, link, protocol, reader)
        nursery.start_soon(heartbeats, link, protocol, reader)
        nursery.start_soon(self._timer.run)

    def _close(self) -> None:
        self._reader.stop()
        for ask_id in self._protocol.close():
            self._reader.fail(ask_id, "closed", "the line closed")
        self._reader.notify()
        self._reader.inbox_send.close()
        self._server.close()

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> LineState:
        return self._protocol.state

    @property
    def connected(self) -> bool:
        """The peer said hello on the current connection and this side's hello went out."""
        return self._protocol.connected

    async def wait_connected(self) -> None:
        """Return once connected (:attr:`connected`). Raises :class:`~consensus.LineTaken` when the
        listener refused this line (it already has a peer), :class:`~patterns.Closed` when
        the line closed."""
        while True:
            state = self._protocol.state
            if state is LineState.CONNECTED:
                return
            if state is LineState.TAKEN:
                raise LineTaken(f"{self.address}: the listener refused this line: it already has a peer")
            if state is LineState.CLOSED:
                raise Closed(f"{self!r} is closed")
            await self._reader.changed.wait()

    async def wait_disconnected(self) -> None:
        """Return once no peer is connected (at once if none is)."""
        while self._protocol.connected:
            await self._reader.changed.wait()
        await trio.lowlevel.checkpoint()

    @property
    def bound_address(self) -> str:
        """Where a listening line listens (a tcp port 0 resolved); a dialing line's address."""
        return self._link.bound_address

    # ------------------------------------------------------------------ values
    async def send(self, value: Any) -> None:
        """Send ``value`` to the peer (waits while there is no peer, or NNG's queue is full)."""
        if not self._protocol.connected:
            await self.wait_connected()
        await self._link.send(self._protocol.message(value), checkpoint=True)

    async def receive(self) -> Any:
        """The next value the peer sent with :meth:`send`."""
        self._reader.want_line()
        try:
            return await self._reader.inbox.receive()
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
        if self._server.on_ask is not None:
            raise RuntimeError(f"{self!r} answers asks with its on_ask handler")
        try:
            return await self._server.requests.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise Closed(f"{self!r} is closed") from None

    # ------------------------------------------------------------------ asks
    async def ask(self, value: Any, *, timeout: float) -> Any:
        """Send ``value`` as an ask and return the peer's reply.

        Raises :class:`~patterns.Timeout` after ``timeout`` seconds, :class:`~patterns.PeerLost`
        if the connection drops first, :class:`~patterns.RemoteError` if the peer's handler
        failed, :class:`~consensus.LineTaken` if the listener refused this line."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        protocol, reader = self._protocol, self._reader
        deadline = reader.now() + timeout
        ask_id = protocol.open_ask(False, deadline)
        slot = self._spare_slot  # (one slot kept from the last ask: an object less an ask)
        if slot is None:
            slot = AnswerSlot()
        else:
            self._spare_slot = None
        self._waiters[ask_id] = slot
        closed = False  # the protocol's table closed the ask itself (its reply came)
        try:
            if reader.foreign is not None:  # a line lent to a plain handler's threads: trio reads while it asks
                reader.foreign.recall()
            wall_deadline = time.time() + timeout
            sent = protocol.connected and self._link.send_ask_now(ask_id, value, wall_deadline)
            if not sent:  # (an Unsent: written, NNG would wait; else it is written now)
                later = sent if type(sent) is Unsent else frame(ASK, self.name, ask_id, ask_body(value, False), None,
                                                                wall_deadline)  # fmt: skip
                await self._send_ask_later(later, ask_id, timeout, deadline, stream=False)
            if slot.reply is None:
                timer = self._timer
                if deadline < timer.wake or len(timer.heap) > COMPACT_OVER:
                    timer.expire_at(deadline, ask_id)
                else:  # (AskTimer.expire_at's common case, without the call)
                    heappush(timer.heap, (deadline, ask_id))
                if reader.foreign is not None:  # (only threads' asks may leave trio off the line)
                    reader.want_line()
                if reader.idle and reader.reading is None and not reader.handed_over:
                    await reader.read_until_answered(slot)
                if slot.reply is None:
                    slot.task = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(slot.abort)
            reply = slot.reply
            assert reply is not None
            kind = reply.kind
            if kind == REPLY:  # (the common outcome, without a call)
                closed = True  # (a reply reaches the slot only once the table finished its ask)
                return reply.body
            if kind == "timeout":
                raise self._timed_out(ask_id, deadline, timeout, stream=False)
            return self._outcome(reply)
        finally:
            if not closed:  # (a finished ask's give_up is two calls that change nothing)
                protocol.give_up(ask_id)
            del self._waiters[ask_id]
            # Nobody reaches the slot now (answers find it through the waiters, the timer too;
            # the reader let go of it): the next ask may take it.
            slot.reply = slot.task = None
            self._spare_slot = slot
            # The instrument that settles owed wake-ups is there while lines ask: before this
            # step ends (release, here or in read_until_answered, may have owed one).
            wakes = self._wakes
            if wakes is not None and not wakes.armed:
                wakes.arm()
            if not reader.unread:  # (an asker that read the line released it already)
                reader.release()

    async def ask_stream(self, value: Any, *, timeout: float) -> AsyncGenerator[Any, None]:
        """Send ``value`` as an ask answered by a stream; yields each chunk as it comes.
        ``timeout`` bounds the whole stream. (No cancel scope is open across a yield, so
        the consumer may stop early; ``contextlib.aclosing`` closes the ask at once.)"""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        deadline = trio.current_time() + timeout
        envelope = self._protocol.ask(
            value, stream=True, deadline=deadline, wall_deadline=time.time() + timeout
        )
        ask_id = envelope.id
        send, receive = trio.open_memory_channel[Answer](QUEUE)
        self._waiters[ask_id] = send
        try:
            if self._reader.foreign is not None:
                self._reader.foreign.recall()
            sent = self._protocol.connected and self._link.send_now(envelope)
            if not sent:
                later = sent if type(sent) is Unsent else envelope
                await self._send_ask_later(later, ask_id, timeout, deadline, stream=True)
            self._reader.want_line()
            while True:
                answer = None
                with trio.move_on_at(deadline):  # one scope per wait: none spans a yield
                    answer = await receive.receive()
                if answer is None:
                    raise self._timed_out(ask_id, deadline, timeout, stream=True)
                if answer.kind == CHUNK:
                    yield answer.body
                    continue
                last = self._outcome(answer)
                if last is not None:
                    yield last
                return
        finally:
            self._protocol.give_up(ask_id)
            self._waiters.pop(ask_id, None)

    async def _send_ask_later(
        self, ask: Envelope | Unsent, ask_id: int, timeout: float, deadline: float, *, stream: bool
    ) -> None:
        """Send an ask that could not go out at once: wait for a peer and room, until its
        deadline. (An :class:`Unsent` comes from a connected line: it waits for room only.)
        At most once: an ask that fails while it waits (its connection lost: the asker's
        answer is ``lost``) is not sent, not even to the peer that came next."""
        protocol = self._protocol
        with trio.move_on_at(deadline):
            if not protocol.connected:
                await self.wait_connected()
            pipe, removed = protocol.pipe or 0, self._link.pair.peers_state.was_removed

            def wanted() -> bool:  # (NNG may have a new connection before the protocol hears of it)
                return ask_id in protocol.asks and protocol.pipe == pipe and not removed(pipe)

            sending, sent = self._reader.sending, False
            with trio.CancelScope() as waiting:
                sending[ask_id] = waiting.cancel  # a lost connection ends the wait at once
                try:
                    sent = await self._link.send_while(ask, wanted)
                finally:
                    del sending[ask_id]
            if not sent:
                protocol.asks.unsent()
            return
        raise self._timed_out(ask_id, deadline, timeout, stream=stream)

    def _timed_out(self, ask_id: int, deadline: float, timeout: float, *, stream: bool) -> ConsensusError:
        self._protocol.expire(deadline)
        what = "end of stream" if stream else "reply"
        stats = self._link.pair.statistics()
        refused = dict(stats.unauthenticated_reasons).keys() & {"tag", "format"} or "sealed" in dict(stats.malformed_reasons)
        if refused and not self.connected:
            return AuthenticationError(f"ask {ask_id} on {self!r}: the peer's frames fail this line's secret "
                                       "(one end has another secret, or none)")  # fmt: skip
        return Timeout(f"ask {ask_id} on {self!r}: no {what} within {timeout} s")

    @staticmethod
    def _outcome(answer: Answer) -> Any:
        kind, body = answer.kind, answer.body
        if kind in (REPLY, END):
            return body
        if kind == ERROR:
            raise RemoteError(body["type"], body.get("message", ""))
        if kind == "lost":
            raise PeerLost(f"ask {answer.ask_id}: {body}")
        if kind == "taken":
            raise LineTaken(f"ask {answer.ask_id}: {body}")
        if kind == "closed":
            raise Closed(f"ask {answer.ask_id}: the line closed before the answer came")
        raise MalformedMessage(f"ask {answer.ask_id}: the peer answered with {body}", reason="body", size=0)

    def statistics(self) -> HotlineStatistics:
        self._server.settle()  # answers sent from handler threads (and asks from other threads), into the books first
        foreign = self._reader.foreign
        foreign_open, held_back = (foreign.settle(), foreign.held_back()) if foreign is not None else (0, 0)
        # (only a ThreadServer counts recalls; thread_serve imports this module, so no isinstance)
        recalls: int = getattr(foreign, "recalls", 0)
        t = self._protocol.ask_statistics()
        p = self._protocol.statistics()
        s = self._link.pair.statistics()
        return line_statistics(self.connected, t, p, s, foreign_open, held_back, recalls)
