"""How a hotline answers the peer's asks: :class:`Server` and the :class:`IncomingAsk` handle.

An ask is answered by ``on_ask`` (inline in the receiving task for an async function; in a
thread that sends the answer itself for a plain function, and on its asyncio loop for an
asyncio handler of the bridge, :mod:`consensus.hotline.threaded` (an unsealed line's plain
handler mostly never reaches this module: its asks are read and answered by the serving
threads of :mod:`consensus.hotline.thread_serve`);
in a task of its own for an async generator, and for a plain function when the thread
cannot send) or queued for :meth:`~consensus.Hotline.receive_ask`. See the module
docstring of :mod:`consensus.hotline.line`.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from consensus.errors import PeerLost
from consensus.failure import Failure
from consensus.hotline.events import AskReceived
from consensus.hotline.frames import CHUNK, END, ERROR, REPLY, frame
from consensus.hotline.link import Link
from consensus.hotline.protocol import LineProtocol
from consensus.hotline.threaded import Fate, Finished, ThreadAnswers
from consensus.runtime.context import HandlerContext, serving, set_current_from
from consensus.runtime.handlers import elsewhere, failed, resume, run_handler
from patterns import Closed, ConsensusError, EncodeError, MessageTooLarge, Unsent

__all__ = ["QUEUE", "IncomingAsk", "Server"]

log = logging.getLogger("consensus.hotline")

QUEUE = 256  # asks (or values) received and not yet taken; beyond it the line waits (the peer is slowed)
ANSWER_FROM_THREAD = True  # plain handlers send their own answers (False: the trio path, bench's reference)


class IncomingAsk:
    """An ask from the peer, to answer with :meth:`reply`, or :meth:`chunk` ... :meth:`end`,
    or :meth:`fail`. Obtained from :meth:`Hotline.receive_ask` when there is no ``on_ask``."""

    def __init__(self, server: Server, event: AskReceived) -> None:
        self.value = event.value
        self.stream = event.stream
        wall = event.deadline  # the wire's wall clock, brought to trio's once (as patterns does)
        self.deadline = None if wall is None else trio.current_time() + (wall - time.time())
        self.id = event.ask_id
        self.pipe = event.pipe
        self.sender = event.sender
        self._server = server
        self.done = False

    async def reply(self, value: Any) -> None:
        await self._finish(END if self.stream else REPLY, value)

    async def chunk(self, value: Any) -> None:
        if not self.stream:
            raise ValueError(f"ask {self.id} wants one reply, not a stream: use reply()")
        if self.done:
            raise ValueError(f"ask {self.id} is already answered")
        await self._server.answer(self, CHUNK, value)

    async def end(self, value: Any = None) -> None:
        await self._finish(END, value)

    async def fail(self, error: BaseException | Failure) -> None:
        err = error if isinstance(error, Failure) else Failure.from_exception(error)
        await self._finish(ERROR, err.to_wire())

    async def _finish(self, kind: str, value: Any, *, checkpoint: bool = True) -> None:
        if self.done:
            raise ValueError(f"ask {self.id} is already answered")
        self.done = True
        await self._server.answer(self, kind, value, checkpoint=checkpoint)


class Server:
    """Answers the asks the line reads. ``start_receiver`` starts a new receiving task: an
    inline handler that suspends hands the reading of the line to it."""

    def __init__(self, link: Link, protocol: LineProtocol, on_ask: Callable[..., Any] | None, *,
                 handler_threads: int, start_receiver: Callable[[], None]) -> None:  # fmt: skip
        self._link = link
        self._protocol = protocol
        self.on_ask = on_ask
        # An async function (not a generator) is run inline by the receiver (module docstring).
        self._inline = on_ask is not None and inspect.iscoroutinefunction(on_ask)
        self._threads = trio.CapacityLimiter(handler_threads)
        self.handler_threads = handler_threads
        self._start_receiver = start_receiver
        self.requests_send, self.requests = trio.open_memory_channel[IncomingAsk](QUEUE)
        self.nursery: trio.Nursery | None = None  # where handlers in tasks of their own run
        self._closing = False
        # Plain handlers, and asyncio ones of the bridge, answer from their own threads (a
        # sealed line: never; its guard is trio's alone).
        self.threaded: ThreadAnswers | None = None
        if on_ask is not None and ANSWER_FROM_THREAD and link.pair.guard is None:
            runner = elsewhere(on_ask)
            if runner is not None:
                self._inline = False
                self.threaded = ThreadAnswers(link.pair, protocol, on_ask, self._later, limiter=None, runner=runner,
                                              reply_shape=link.reply_shape)
            elif not self._inline and not inspect.isasyncgenfunction(on_ask):
                self.threaded = ThreadAnswers(link.pair, protocol, on_ask, self._later, limiter=self._threads,
                                              reply_shape=link.reply_shape)
        # Answer or queue one ask; returns False when this task has stopped being the receiver.
        # Chosen once: the receiver calls the inline server directly (a coroutine less per ask).
        self.handle: Callable[[AskReceived], Awaitable[bool]] = (
            self._serve_inline if self._inline else self._handle
        )

    async def _handle(self, event: AskReceived) -> bool:
        """:attr:`handle` when ``on_ask`` is not run inline."""
        threaded = self.threaded
        if threaded is not None and threaded.start(event.ask_id, event.pipe, event.stream, event.sender,
                                                   event.value):  # fmt: skip
            return True
        ask = IncomingAsk(self, event)
        if self.on_ask is not None:
            assert self.nursery is not None
            self.nursery.start_soon(self._serve, ask)
        else:
            await self.requests_send.send(ask)
        return True

    async def answer(self, ask: IncomingAsk, kind: str, value: Any, *, checkpoint: bool = True) -> None:
        """Send the answer; ``checkpoint=False`` for the last act of a task, whose end yields anyway."""
        envelope = self._protocol.answer(ask.id, ask.pipe, kind, value)
        if envelope is None:  # nobody waits for this any more
            raise PeerLost(f"ask {ask.id}: the peer that asked has gone")
        try:
            await self._link.send(envelope, checkpoint=checkpoint)
        except (EncodeError, MessageTooLarge) as exc:
            if kind == ERROR:
                raise
            ask.done = True
            await self._link.send(self._protocol.unsendable(ask.id, exc), checkpoint=True)

    def settle(self) -> None:
        """Bring the books of answers sent from handler threads up to date (before statistics)."""
        if self.threaded is not None:
            self.threaded.settle()

    def connections_changed(self) -> None:
        if self.threaded is not None:
            self.threaded.connections_changed()

    def close(self) -> None:
        """The line closes: handler threads still running send nothing more."""
        self._closing = True
        self.requests_send.close()
        if self.threaded is not None:
            self.threaded.close()
            self.threaded.settle()

    def _later(self, record: Finished) -> None:
        """A handler thread left its answer to trio (called by ``ThreadAnswers.settle``)."""
        ticket = record.ticket
        if self._closing or self.nursery is None:
            log.info("hotline %s: the line closed before ask %d was answered", self._protocol.name, ticket.ask_id)
            return
        self.nursery.start_soon(self._answer_later, record)

    async def _answer_later(self, record: Finished) -> None:
        ticket, kind, value = record.ticket, record.kind, record.value
        if record.fate is Fate.AWAIT:  # a plain function that returned an awaitable
            with serving(HandlerContext("ask", ticket.sender, ask_id=ticket.ask_id)):
                try:
                    kind, value = (END if ticket.stream else REPLY), await value
                except Exception as exc:  # noqa: BLE001 - the handler's failure is the peer's answer
                    kind, value = ERROR, Failure.from_exception(exc).to_wire()
        protocol = self._protocol
        try:
            envelope = protocol.answer(ticket.ask_id, ticket.pipe, kind, value)
            if envelope is None:
                raise PeerLost(f"ask {ticket.ask_id}: the peer that asked has gone")
            try:
                await self._link.send(envelope)
            except (EncodeError, MessageTooLarge) as exc:
                if kind == ERROR:
                    raise
                await self._link.send(protocol.unsendable(ticket.ask_id, exc))
        except PeerLost:
            log.info("hotline %s: the peer left before ask %d was answered", protocol.name, ticket.ask_id)
        except ConsensusError as exc:
            log.info("hotline %s: the answer to ask %d was not sent: %r", protocol.name, ticket.ask_id, exc)

    async def _serve(self, ask: IncomingAsk) -> None:
        """Answer one ask in its own task: plain handlers (in a thread) and async generators."""
        handler = self.on_ask
        assert handler is not None
        with serving(HandlerContext("ask", ask.sender, ask_id=ask.id)):
            await self._run(handler, ask)

    async def _run(self, handler: Callable[..., Any], ask: IncomingAsk) -> None:
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
                # The answer is this task's last act: its end is the schedule point (a pass less).
                if not ok:
                    await ask._finish(ERROR, result.to_wire(), checkpoint=False)
                else:
                    await ask._finish(END if ask.stream else REPLY, result, checkpoint=False)
        except PeerLost:
            log.info("hotline %s: the peer left before ask %d was answered", self._protocol.name, ask.id)
        except Exception as exc:  # noqa: BLE001 - an async generator handler failed mid-stream
            if not ask.done:
                await ask.fail(exc)

    async def _serve_inline(self, event: AskReceived) -> bool:
        """Answer an ask with the async ``on_ask`` in the receiving task, as far as it goes
        without waiting (module docstring of :mod:`consensus.hotline.line`). Returns whether
        this task still receives: not once it handed that role to a new task, because the
        handler suspended or the answer had to wait for room to send."""
        handler = self.on_ask
        assert handler is not None
        # This task runs only the line's own code and handlers, each after setting its own
        # context: set it without a reset (a context manager per ask costs ~8 calls), as the
        # room's answering does. A handler that suspends keeps this task, and its context.
        # The event is the context's source: a HandlerContext is built only for a handler
        # that asks for one (most never do). No deadline, so no cancel scope: the handler's
        # first step is taken here (run_unbounded's, without its coroutine and a closure).
        set_current_from(event)
        receiving = True
        try:
            coro = handler(event.value)
            try:
                trap = coro.send(None)
            except StopIteration as done:
                result, kind = done.value, (END if event.stream else REPLY)
            else:  # the handler waits: from here on it has this task to itself
                receiving = False
                self._start_receiver()
                result, kind = await resume(coro, trap), (END if event.stream else REPLY)
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the peer's answer
            result, kind = failed(handler, exc).to_wire(), ERROR
        protocol, link = self._protocol, self._link
        frame_id = protocol.answer_id(event.pipe, kind)
        if frame_id is None:
            log.info("hotline %s: the peer left before ask %d was answered", protocol.name, event.ask_id)
            return receiving
        try:
            # A reply from its shape, else the answer's fields as a common frame (no envelope);
            # a frame written that NNG would not take yet (Unsent: false) goes as it is, later.
            try:
                sent = kind == REPLY and link.send_shaped_now(link.reply_shape, frame_id, event.ask_id, None, result)
                if sent is False:
                    sent = link.send_fields_now(kind, frame_id, result, event.ask_id, None)
                if sent is False:
                    envelope = frame(kind, protocol.name, frame_id, result, event.ask_id)
                    sent = link.send_now(envelope)
            except (EncodeError, MessageTooLarge) as exc:
                envelope = protocol.unsendable(event.ask_id, exc)
                sent = link.send_now(envelope)
            if not sent:
                if receiving:
                    receiving = False
                    self._start_receiver()
                await link.send_queued(sent if type(sent) is Unsent else envelope)
        except ConsensusError as exc:
            if receiving and isinstance(exc, Closed):
                raise  # the line is closing: the receiver stops
            log.info("hotline %s: the answer to ask %d was not sent: %r", protocol.name, event.ask_id, exc)
        return receiving
