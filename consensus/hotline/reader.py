"""Who reads a hotline, and where what it reads goes.

One task, the receiver (:meth:`Reader.receive_loop`), reads the line, feeds each frame to
the :class:`~consensus.hotline.protocol.LineProtocol` and acts on the event it returns:
an answer goes to its asker's waiter, an ask to the :class:`~consensus.hotline.serve.Server`,
a value to ``receive()``, a ping is answered. An asker that waits for its answer may read
the line itself (:meth:`Reader.read_until_answered`), and so may plain threads that ask
(:mod:`consensus.hotline.thread_asks`): the receive loop then stands aside
(:meth:`Reader.aside`) and acts on the events they hand over, looking once per
:data:`LEASE` whether they still ask. The module docstring of
:mod:`consensus.hotline.line` says why it is built so.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import trio

from consensus.hotline.events import (
    Answer,
    AskReceived,
    Disconnected,
    Event,
    Greeted,
    Ignored,
    Malformed,
    Message,
    PingReceived,
    Rehello,
)  # fmt: skip
from consensus.hotline.lent import Lent
from consensus.hotline.link import Link
from consensus.hotline.protocol import LineProtocol
from consensus.hotline.serve import QUEUE, Server
from consensus.hotline.wait import AnswerSlot, Waiter
from consensus.hotline.wakes import Wakes, attach, detach
from consensus.runtime.service import Pulse
from patterns import Closed, Fields, MalformedMessage

__all__ = ["LEASE", "Lent", "Reader"]

log = logging.getLogger("consensus.hotline")

LEASE: Final = 0.005
"""While plain threads read the line (:meth:`Reader.aside`), how often trio looks whether
one still asks; after a whole lease without an ask it reads the line again. Frames that
come while no thread asks wait for the next ask or for this look: at most two leases."""


class Reader:
    """The reading side of one end of a hotline, and the waiters of its open asks."""

    def __init__(self, link: Link, protocol: LineProtocol, server: Server) -> None:
        self._link = link
        self._protocol = protocol
        self._server = server
        self.waiters: dict[int, Waiter] = {}  # the open asks of this side, by id
        self.sending: dict[int, Callable[[], None]] = {}  # asks waiting to be sent: what stops that wait
        self.inbox_send, self.inbox = trio.open_memory_channel[Any](QUEUE)
        self.changed = Pulse()  # poked when the line's state changes
        # Who reads the line: the receive loop, or an asker while it waits (see read_until_answered).
        self.reading: AnswerSlot | None = None  # the slot of the asker reading the line
        self.idle = False  # the receive loop is between frames, not reading: it may be relieved
        self._parked: trio.lowlevel.Task | None = None  # ... and waits for an asker to finish
        self._asker_woken = False  # the event just delivered woke a parked asker
        self.handed_over: deque[Event] = deque()  # events an asker read for the receive loop
        # An asker stopped reading and the receive loop is parked: nobody reads the line. The
        # loop is woken before trio next waits for I/O, unless an asker reads again by then.
        self.unread = False
        self._wakes: Wakes | None = None
        # trio.current_time, without the two calls in front of the clock's own (an ask reads it twice)
        self.now: Callable[[], float] = trio.current_time
        self.foreign: Lent | None = None  # asks from another thread (attach), which may read the line (lend)
        self._looped = False  # a receive loop has run: lending now could race its read
        self._aside = False  # plain threads read the line for now (aside, take_back)
        self.recalled = False  # trio reads a lent line for its asks for now (recalled, Lent.relend)

    def attach(self, foreign: Lent) -> None:
        """``foreign`` asks from other threads; this side reads the line and hands it their
        answers (:meth:`Lent.claim`) (trio's thread)."""
        self.foreign = foreign
        foreign.changed(self._protocol)

    def lend(self, foreign: Lent) -> bool:
        """Let ``foreign`` read the line from now on (trio's thread, right after the line
        opened, before its receive loop ran: the loop then never reads, and acts only on the
        events ``foreign`` hands over). False when too late (the loop may be in a read)."""
        if self.foreign is not None or (self._looped and not (self.idle and self.reading is None)):
            return False
        self.foreign = foreign
        self.reading = AnswerSlot()  # never filled: trio's askers wait for what foreign hands over
        foreign.changed(self._protocol)
        return True

    def unlend(self) -> None:
        """The reader the line was lent to failed: trio reads it again; ``foreign`` stays
        attached, as by :meth:`attach` (trio's thread)."""
        self.recalled = False
        self.reading = None
        self.wake_receiver()

    def recalled_for_asks(self) -> None:
        """The reader the line is lent to gave it back while trio asks: trio reads it until the
        receive loop lends it again between two frames (:meth:`Lent.relend`) (trio's thread)."""
        self.recalled = True
        self.reading = None
        self.wake_receiver()

    def aside(self) -> None:
        """Stop reading: the asking threads read the line until :meth:`take_back` (trio's
        thread, from the receive loop between frames, when :meth:`Lent.lend_now` says so)."""
        self._aside = True
        self.reading = AnswerSlot()  # never filled: trio's askers wait for what is handed over

    def take_back(self) -> None:
        """Trio reads the line again (trio's thread)."""
        if self._aside:
            self._aside = False
            self.reading = None
            self.wake_receiver()

    def want_line(self) -> None:
        """A trio task waits for a frame (its answer, a value): if the threads left the line
        unread between their asks, trio reads it again now rather than at the lease's end."""
        if self._aside and self.foreign is not None and self.foreign.reclaim(idle_only=False):
            self.take_back()

    async def _stand_aside(self) -> None:
        """(The receive loop, while threads read the line.) Wait for events they hand over,
        or the end of a lease: then read again if no thread asked during it."""
        self.idle = True
        self._parked = trio.lowlevel.current_task()
        with trio.move_on_after(LEASE) as lease:
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        if lease.cancelled_caught and self.foreign is not None and self.foreign.reclaim():
            self.take_back()

    def start(self) -> None:
        """Join the run's wake-ups before I/O waits (call from the line's trio run, once)."""
        self._wakes = attach()
        self.now = trio.lowlevel.current_clock().current_time

    def stop(self) -> None:
        if self._wakes is not None:
            detach(self._wakes)
            self._wakes = None

    def notify(self) -> None:
        """The line's state changed (connected, refused, lost): wake whoever waits for it."""
        self._server.connections_changed()  # answers in handler threads must not go to a closed one
        if self.foreign is not None:
            self.foreign.changed(self._protocol)
        self.changed.poke()

    def disconnected(self, event: Disconnected) -> None:
        """Fail the asks a lost connection ended."""
        if self.foreign is not None:
            self.foreign.fail_all(event.kind, event.reason)
        for ask_id in event.asks:
            self.fail(ask_id, event.kind, event.reason)
        self.notify()

    def fail(self, ask_id: int, kind: str, why: str) -> None:
        waiter = self.waiters.get(ask_id)
        if isinstance(waiter, AnswerSlot):
            waiter.put(Answer(ask_id, kind, why))
        elif waiter is not None:
            try:
                waiter.send_nowait(Answer(ask_id, kind, why))
            except trio.WouldBlock:  # a stream whose consumer lags: it fails at its deadline
                pass
        stop = self.sending.get(ask_id)
        if stop is not None:  # it waits for room still: it is not sent now (Hotline._send_ask_later)
            stop()

    # ------------------------------------------------------------------ an asker reads
    async def read_until_answered(self, slot: AnswerSlot) -> None:
        """Read the line in the asker's own task until its answer is in ``slot``.

        The receive loop would read the answer and wake the asker: one more task to run,
        one more pass of trio's scheduler. So after it has woken an asker, the receive loop
        waits until that ask is over; an ask sent then (typically the same task asking
        again at once) reads the line itself, and its reply wakes it directly. It delivers
        answers to plain asks (its own and others') and drops stale ones; any other event
        (an ask, a value, a ping, a chunk of a stream) goes back to the receive loop, which
        handles it before reading on, in order. Ended by the answer, the timer or a lost
        connection (``slot.put`` interrupts the wait for a frame: no cancel scope per ask,
        whose entry and exit cost about as much as the rest of the asker's work), or the
        asker's own cancellation; then the receive loop reads again. The slot is checked
        before every wait, so a put while the asker runs is never missed."""
        self.reading = slot
        self.unread = False
        pair, protocol, waiters = self._link.pair, self._protocol, self.waiters
        slot.interrupt = pair.interrupt_receive
        just_sent = True  # its ask went out a moment ago: its answer is not there yet
        try:
            while slot.reply is None:
                try:
                    got = await pair.receive_fields_once(just_sent=just_sent)
                    just_sent = False
                except MalformedMessage as exc:
                    log.warning("hotline %s dropped a frame: %s", protocol.name, exc)
                    continue
                if got is None:  # no frame: interrupted (the slot is filled), or a spurious wake
                    continue
                if self.foreign is not None and self.foreign.claim(got[0], got[1]):
                    continue  # an answer to an ask made in another thread: delivered there
                event = protocol.receive_fields(got[0], got[1], self.now())
                if isinstance(event, Answer):
                    waiter = waiters.get(event.ask_id)
                    if waiter is slot:  # its own answer: nothing to wake (AnswerSlot.take, inline)
                        if slot.reply is None:
                            slot.reply = event
                        continue
                    if isinstance(waiter, AnswerSlot):
                        waiter.put(event)
                        continue
                    if waiter is None:
                        continue
                elif isinstance(event, Malformed):
                    log.warning("hotline %s ignored a frame: %s", protocol.name, event.reason)
                    continue
                elif isinstance(event, Ignored):
                    continue  # a pong, a stale answer: nothing to hand over
                self.handed_over.append(event)
                return
        finally:
            slot.interrupt = None
            self.reading = None
            if self.handed_over:
                self.wake_receiver()
            else:
                self.release()

    def feed(self, frames: list[tuple[Fields, int]], heard: bool) -> None:
        """Frames another thread read for trio (a loop's or a thread's reader): into the
        protocol, then to the receive loop, as if read here. ``heard``: that reader also
        heard the peer meanwhile (its liveness)."""
        protocol, now = self._protocol, trio.current_time()
        if heard:
            protocol.heard(now)
        for fields, pipe in frames:
            event = protocol.receive_fields(fields, pipe, now)
            if isinstance(event, Malformed):
                log.warning("hotline %s ignored a frame: %s", protocol.name, event.reason)
            elif not isinstance(event, Ignored):
                self.handed_over.append(event)

    def wake_receiver(self) -> None:
        """Let the receive loop read the line again, if it waits for an asker."""
        task = self._parked
        if task is not None:
            self._parked = None
            trio.lowlevel.reschedule(task)

    def release(self) -> None:
        """An asker is done with the line (an ask ended): the receive loop reads it again
        before trio next waits for I/O, so no frame waits for it. Not at once: an asker that
        asks again in the same step (the common case) reads the line itself, and the loop,
        woken at once, would only run a step to park again: a task step and a pass of
        trio's scheduler (an ``epoll_wait``) per ask."""
        if not self.unread and self.reading is None and self._parked is not None and self._wakes is not None:
            self.unread = True
            self._wakes.owing.append(self)

    def settle_unread(self) -> bool:
        """(Trio is about to wait for I/O.) Wake the receive loop if nobody reads the line."""
        if self.unread:
            self.unread = False
            if self.reading is None and self._parked is not None:
                self.wake_receiver()
                return True
        return False

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    # ------------------------------------------------------------------ the receive loop
    async def receive_loop(self) -> None:
        pair, protocol = self._link.pair, self._protocol
        self._looped = True
        while True:
            if self._aside and not self.handed_over:
                await self._stand_aside()
                continue
            if self.reading is not None and not self.handed_over:  # an asker reads: wait until it is done
                self.idle = True
                self._parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort)
                continue
            self.idle = False
            if self.handed_over:
                await trio.lowlevel.checkpoint_if_cancelled()  # (a closing line stops here)
                event = self.handed_over.popleft()
                if not self.handed_over and self.foreign is not None:
                    self.foreign.drained()  # a line read elsewhere may read again (its backlog)
            else:
                try:
                    fields, pipe = await pair.receive_fields()
                except MalformedMessage as exc:
                    log.warning("hotline %s dropped a frame: %s", protocol.name, exc)
                    continue
                except Closed:
                    return
                if self.foreign is not None and self.foreign.claim(fields, pipe):
                    if self.foreign.lend_now():
                        self.aside()
                    continue  # an answer to an ask made in another thread: delivered there
                event = protocol.receive_fields(fields, pipe, self.now())
            self._asker_woken = False  # (an asker reading the line may have set it)
            try:
                # An ask first, without _act's coroutine (what an answering side reads; answers
                # to plain asks mostly reach their askers directly).
                if not await (self._server.handle(event) if type(event) is AskReceived else self._act(event)):
                    return  # another task receives now (see Server._serve_inline)
            except Closed:
                return
            # A lent line trio took back for its asks: lent again between frames (nobody reads now).
            if self.recalled and self.reading is None and not self.handed_over:
                self._relend()
            if self._asker_woken:
                # An asker just got its answer and may ask again at once: wait until its ask
                # is over (it wakes this task), so that its next ask reads the line itself.
                self._asker_woken = False
                if not self.handed_over and not self._aside:  # (aside: the lease's park instead)
                    self.idle = True
                    self._parked = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _relend(self) -> None:
        if self.foreign is not None and self.foreign.relend():
            self.recalled = False
            self.reading = AnswerSlot()  # never filled, as in lend()

    async def _act(self, event: Event) -> bool:
        """Act on one event but an ask (:meth:`Server.handle`'s); returns False when this task
        has stopped being the receiver."""
        if isinstance(event, Answer):
            lagging = self._deliver(event)
            if lagging is not None:  # a stream whose consumer lags: the line waits for it
                await lagging.send(event)
        elif isinstance(event, Message):
            try:
                self.inbox_send.send_nowait(event.value)
            except trio.WouldBlock:  # nobody takes the values: the line waits (the peer is slowed)
                await self.inbox_send.send(event.value)
            except trio.ClosedResourceError:  # the line closed as this frame came in
                return False
        elif isinstance(event, PingReceived):
            await self._link.send_within(event.pong, self._protocol.heartbeat)
        elif isinstance(event, Rehello):  # (a sealed line's peer, greeting: it connects on this one)
            answer, protocol = event.hello, self._protocol
            if await self._link.send_within(answer, protocol.heartbeat) and protocol.hello_sent(answer):
                self.notify()  # (the peer's echo came before this went out: connected now)
        elif isinstance(event, Greeted):
            if self._protocol.peer is not None:  # its frames' shapes, read from their templates
                self._link.expect_peer(self._protocol.peer)
            for ask_id in event.lost:
                self.fail(ask_id, "lost", "the connection to the peer closed")
            # The line is connected once this hello is out (LineProtocol.hello_sent): no ask
            # or value of another task overtakes it while it waits for room or was handed over.
            hello = event.hello
            if hello is not None and await self._link.send_within(hello, self._protocol.heartbeat):
                self._protocol.hello_sent(hello)
            self.notify()
        elif isinstance(event, Malformed):
            log.warning("hotline %s ignored a frame: %s", self._protocol.name, event.reason)
        return True

    def _deliver(self, answer: Answer) -> trio.MemorySendChannel[Answer] | None:
        """Hand an answer to its asker. Returns a streamed ask's channel when it is full
        (the receive loop waits on it)."""
        waiter = self.waiters.get(answer.ask_id)
        if waiter is None:
            return None
        if isinstance(waiter, AnswerSlot):
            self._asker_woken = waiter.task is not None
            waiter.put(answer)
            return None
        try:
            waiter.send_nowait(answer)
        except trio.WouldBlock:
            return waiter
        return None
