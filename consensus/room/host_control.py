"""The host's control bus: the driver part of keeping a room's roster.

:class:`HostControl` runs the background tasks a :class:`~consensus.room.host.Room` needs to
know who is present: the control loop (joins, heartbeats, leaves, members' calls), the
connection watcher (a member whose control connection drops is gone at once), the heartbeat
expiry, the host's own heartbeat and the rosters sent after changes. Every decision is the
:class:`~consensus.room.host_protocol.HostProtocol`'s; this object reads frames, hands them and
the time to it, and does what it returns (:meth:`HostControl.act`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from consensus.room import protocol as P
from consensus.room.calls import Call
from consensus.room.directing import Director
from consensus.room.events import (
    CallRequested,
    DirectAnswered,
    DirectLost,
    Ignored,
    Joined,
    Left,
    MembersChanged,
    Output,
    Send,
    Target,
)
from consensus.room.host_protocol import HostProtocol
from consensus.room.surveying import Surveying
from consensus.runtime.logs import RateLimited
from patterns import Bus, Closed, MalformedMessage, MessageTooLarge

__all__ = ["COALESCE_ABOVE", "ROSTER_GAP", "HostControl"]

ROSTER_GAP = 0.05  # a roster after a change waits this long: the joins of a burst share one
COALESCE_ABOVE = 32  # rooms up to this size send each roster at once (members learn of a join at once)

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # malformed or unexpected frames: one line per kind every 10 s at most


class HostControl:
    """One room's control bus: its reading and timing tasks, and what the protocol asks done.

    ``surveying`` is woken when members leave (a departure may complete a round), ``director``
    told of direct replies, and ``on_call(call)`` run in its own task for each member's call."""

    def __init__(self, protocol: HostProtocol, control: Bus, room: str, *, surveying: Surveying,
                 director: Director, on_call: Callable[[Call], Awaitable[None]]) -> None:  # fmt: skip
        self._protocol = protocol
        self._control = control
        self._room = room
        self._surveying = surveying
        self._director = director
        self._on_call = on_call
        self._roster_due = trio.Event()
        self._members_changed = trio.Event()
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Start the control tasks in ``nursery`` (members' calls run there too)."""
        self._nursery = nursery
        for task in (self._control_loop, self._watch_connections, self._expire, self._resend_roster, self._beat):
            nursery.start_soon(task)

    @property
    def members_changed(self) -> trio.Event:
        """Set at the next join or departure (a fresh event after each)."""
        return self._members_changed

    async def send(self, frame: Send) -> None:
        assert frame.to is Target.CONTROL
        await self._control.send(frame.body, kind=frame.kind, inline=frame.inline)

    async def act(self, outputs: list[Output]) -> None:
        """Do what the protocol asks: send its frames, wake the waiters, log."""
        for output in outputs:
            if isinstance(output, Send) and output.kind == P.ROSTER and len(self._protocol.roster) > COALESCE_ABOVE:
                self._roster_due.set()  # a large room: sent by _resend_roster, one per burst of changes
                continue
            if isinstance(output, Send):
                if output.kind == P.REFUSE:  # a joiner repeats its join until answered: rate-limited
                    hostile.log(logging.INFO, "refuse", "room %r refused %r: %s", self._room,
                                output.body["name"], output.body["reason"])  # fmt: skip
                await self.deliver(output)
            elif isinstance(output, Joined):
                log.info("room %r: %s joined%s", self._room, output.name,
                         " (replacing a silent holder)" * output.replaced)  # fmt: skip
            elif isinstance(output, Left):
                log.info("room %r: %s gone (%s)", self._room, ", ".join(output.names), output.why.value)
                self._surveying.wake()  # a departure may have completed a round
            elif isinstance(output, MembersChanged):
                self._surveying.wake()  # a voter turned observer may have completed a round (3.2)
                self._members_changed.set()
                self._members_changed = trio.Event()
            elif isinstance(output, Ignored):
                hostile.warning("control", "room %r ignored a control message: %s", self._room, output.reason)
            elif isinstance(output, (DirectAnswered, DirectLost)):
                self._director.answered(output)
            elif isinstance(output, CallRequested):
                assert self._nursery is not None
                self._nursery.start_soon(self._on_call, output.call)

    async def deliver(self, frame: Send) -> None:
        """Send ``frame``; a closing room has nobody to tell, and a frame with no wire form is
        logged (the room keeps running)."""
        try:
            await self.send(frame)
        except Closed:
            pass
        except MessageTooLarge as exc:
            log.error("room %r: a %r of %d members has no wire form: %s",
                      self._room, frame.kind, len(self._protocol.roster), exc)  # fmt: skip

    async def _control_loop(self) -> None:
        while True:
            try:
                envelope, pipe = await self._control.receive_from()
            except MalformedMessage as exc:  # the socket counted it
                hostile.warning("frame", "room %r ignored a control frame: %s", self._room, exc)
                continue
            except Closed:
                return
            # A frame can be read before its connection's arrival is noted: only a connection
            # seen to close counts as gone (its member retries over a new one).
            connected = not self._control.peers_state.was_removed(pipe)
            try:
                await self.act(self._protocol.receive_control(envelope, pipe, trio.current_time(), connected=connected))
            except Exception:  # no peer input may close the room (logged with its traceback)
                log.exception("room %r: handling a %r from %r failed", self._room, envelope.kind, envelope.sender)

    async def _watch_connections(self) -> None:
        known = {peer.id for peer in self._control.peers}
        while True:
            try:
                now_peers = {peer.id for peer in await self._control.wait_peers_changed()}
            except Closed:
                return
            for pipe in known - now_peers:
                await self.act(self._protocol.connection_closed(pipe, trio.current_time()))
            known = now_peers

    async def _expire(self) -> None:
        while True:
            await trio.sleep_until(self._protocol.next_check(trio.current_time()))
            await self.act(self._protocol.expire(trio.current_time()))

    async def _beat(self) -> None:
        """The host's heartbeat: members notice a silent or vanished host by its absence."""
        while True:
            await self.act([self._protocol.beat_frame()])
            await trio.sleep(self._protocol.heartbeat)

    async def _resend_roster(self) -> None:
        """In a room of more than COALESCE_ABOVE members, send the roster after a change (at
        most one every ROSTER_GAP seconds: a burst of joins makes one roster, not one per join
        to every member); every ``roster_interval``, what ``periodic_roster`` says (a lost
        roster is healed on request, by members' heartbeats; only older members need this)."""
        while True:
            with trio.move_on_after(self._protocol.roster_interval):
                await self._roster_due.wait()
                # Let the burst finish (the roster sent is the latest); a large room's roster is
                # large, and every member decodes it: one every 2 ms per member at most.
                await trio.sleep(max(ROSTER_GAP, 0.002 * len(self._protocol.roster)))
            due = self._roster_due.is_set()
            self._roster_due = trio.Event()
            for frame in [self._protocol.roster_frame()] if due else self._protocol.periodic_roster():
                await self.deliver(frame)
