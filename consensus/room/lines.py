"""Hotlines between the members of a room, opened by name: the trio driver.

``line = await member.hotline("gemini")`` gives a :class:`~consensus.Hotline` to that
member; the room exchanges the addresses. The other side gets the same line from
``await member.hotline("claude")`` or, without asking, from ``member.hotlines()``.

Set-up goes over the mesh bus in ``line`` messages addressed to one member; its rules
(who listens, who may ask or offer, when a line is made again) are
:class:`~consensus.room.line_setup.LineSetup`'s. This driver runs one task per line:

- the listener opens a pair1 socket at a fresh address next to its mesh address (tcp:
  an ephemeral port, or the first free port of ``line_ports``) and repeats its offer
  until the peer connects (and again whenever the peer asks);
- the dialer repeats its request until an offer comes, dials the offered address, and
  asks again whenever it is not connected (the offer may come from a process that has
  since left: its successor answers with a new offer, and the line is made again).

Both messages are repeated every :data:`RESEND` seconds while the line is not up, so a
lost broadcast (the mesh is best effort) only delays the line. A line lives until this
member leaves or the peer leaves the room; a peer that rejoins (a new process: a new
mesh address in the roster) gets a new line. Lines use the member's ``on_ask`` handler.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.endpoints import announced_address, line_listen_addresses
from consensus.errors import LineError, LineTaken
from consensus.hotline.line import Hotline
from consensus.hotline.opening import hotline
from consensus.room.events import Ignored, Send
from consensus.room.line_setup import (
    RESEND,
    CloseLine,
    DialLine,
    LineOutput,
    LineSetup,
    OfferAgain,
    OpenLine,
)
from consensus.runtime.logs import RateLimited
from consensus.trust.line import LineKeys
from consensus.trust.room import MemberKeys
from patterns import AddressInUse, Bus, Closed, ConsensusError, Envelope, Timeout, TLSConfig

__all__ = ["RoomLines"]

UNKNOWN_GRACE = 1.0  # seconds hotline() waits for a name not in the roster yet (the host sends one per burst)

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # malformed line set-up frames: one line every 10 s at most

INCOMING = 64  # lines opened by peers and not yet taken from member.hotlines()


@dataclass(eq=False, slots=True)
class _Line:
    """The driver's side of one line attempt (the rules are in :class:`LineSetup`)."""

    peer: str
    attempt: int
    listen: bool
    incoming: bool  # the peer asked first: hand the line to hotlines()
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    address: str | None = None  # the address offered to the dialer
    line: Hotline | None = None
    opened: trio.Event = field(default_factory=trio.Event)  # ``line`` is set (or the attempt ended)
    closed: trio.Event = field(default_factory=trio.Event)
    offered: trio.Event = field(default_factory=trio.Event)
    asked: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class RoomLines:
    """One member's hotlines, keyed by the peer's name."""

    def __init__(self, *, name: str, mesh: Bus, on_ask: Callable[..., Any] | None,
                 max_message_size: int, ports: range | None = None, keys: MemberKeys | None = None,
                 tls: tuple[TLSConfig | None, TLSConfig | None] = (None, None)) -> None:  # fmt: skip
        self.name = name
        self._ports = ports  # where lines listen over tcp (None: ephemeral ports)
        self._local_host: str | None = None  # the host part offers carry for a wildcard bind
        self._tls = tls  # (for the lines it listens for, for those it dials) in a tls+tcp room
        self._keys = keys  # the room's secret: each line is keyed for its two members only
        self._setup = LineSetup(name=name)
        self._roster = trio.Event()  # set (and renewed) on every roster
        self._mesh = mesh
        self._on_ask = on_ask
        self._max_message_size = max_message_size
        self._lines: dict[str, _Line] = {}  # the attempt under way to each peer, as in the setup
        self._nursery: trio.Nursery | None = None
        self._incoming_send, self._incoming = trio.open_memory_channel[tuple[str, Hotline]](INCOMING)

    @property
    def malformed(self) -> int:
        return self._setup.counts["malformed"]

    @property
    def opened(self) -> int:
        return self._setup.counts["opened"]

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def listening(self, local_host: str | None) -> None:
        """The member's mesh listens now; ``local_host``: the host part of its control
        connection, offered instead of a wildcard bind address (``0.0.0.0``)."""
        self._local_host = local_host

    def close(self) -> None:
        self._incoming_send.close()
        for entry in self._lines.values():
            entry.scope.cancel()

    # ------------------------------------------------------------------ public
    async def hotline(self, peer: str, *, timeout: float) -> Hotline:
        if not timeout > 0:
            raise ValueError(f"hotline({peer!r}): timeout must be > 0 s, got {timeout!r}")
        with trio.move_on_after(min(timeout, UNKNOWN_GRACE)):  # a member who just joined is in the
            while peer != self.name and peer not in self._setup.members:  # next roster: wait a little
                await self._roster.wait()
        with trio.move_on_after(timeout):
            while True:
                self._act(self._setup.open(peer))  # raises when there is no such member
                entry = self._lines[peer]
                await entry.opened.wait()
                line = entry.line
                if line is not None:
                    await _first(functools.partial(_connected, line), entry.closed.wait)
                    if line.connected and not entry.closed.is_set():
                        return line
                    await entry.closed.wait()  # the roster changed under it: look again
                    continue
                if entry.error is not None:
                    raise LineError(
                        f"member {self.name!r}: the hotline to {peer!r} failed: {entry.error}"
                    ) from entry.error
                # closed because the roster changed: look again
        raise Timeout(
            f"member {self.name!r}: no hotline to {peer!r} within {timeout} s "
            f"({'it is not in the room' if peer not in self._setup.members else 'it did not connect'})"
        )

    async def incoming(self) -> AsyncIterator[tuple[str, Hotline]]:
        async for item in self._incoming:
            yield item

    # ------------------------------------------------------------------ events
    def on_envelope(self, envelope: Envelope) -> None:
        """A ``line`` message from the mesh (called by the mesh pump; never blocks)."""
        self._act(self._setup.receive(envelope))

    def roster_changed(self, members: Mapping[str, str]) -> None:
        """Close the lines to members who left or came back as a new process."""
        self._act(self._setup.roster_changed(members))
        self._roster.set()
        self._roster = trio.Event()

    def _act(self, outputs: list[LineOutput]) -> None:
        for output in outputs:
            if isinstance(output, OpenLine):
                if self._nursery is None:
                    raise RuntimeError("RoomLines.start() was not called")
                entry = self._lines[output.peer] = _Line(
                    output.peer, output.attempt, output.listen, output.incoming
                )
                self._nursery.start_soon(self._run, entry)
            elif isinstance(output, Ignored):
                hostile.warning("line", "member %r ignored %s", self.name, output.reason)
            else:
                current = self._lines.get(output.peer)
                if current is None or current.attempt != output.attempt:
                    continue  # the driver already ended that attempt
                if isinstance(output, CloseLine):
                    current.scope.cancel()
                    del self._lines[output.peer]
                elif isinstance(output, DialLine):
                    current.address = output.address
                    current.offered.set()
                elif isinstance(output, OfferAgain):
                    current.asked.set()

    async def _send(self, frame: Send) -> None:
        await self._mesh.send(frame.body, kind=frame.kind)

    # ------------------------------------------------------------------ lines
    async def _run(self, entry: _Line) -> None:
        try:
            with entry.scope:
                if entry.listen:
                    await self._listen(entry)
                else:
                    await self._dial(entry)
        except ConsensusError as exc:  # a socket that cannot open: the caller hears why
            entry.error = exc
            log.warning("member %r: hotline to %r failed: %s", self.name, entry.peer, exc)
        finally:
            entry.line = None
            entry.opened.set()
            entry.closed.set()
            self._setup.ended(entry.peer, entry.attempt)
            if self._lines.get(entry.peer) is entry:
                del self._lines[entry.peer]

    def _line(self, address: str, peer: str, *, listen: bool) -> Any:
        keys = None
        if self._keys is not None:
            base = self._keys.pair_key(peer)
            if base is None:
                raise LineError(f"member {self.name!r} has no keys for {peer!r} yet (not in the last roster)")
            keys = LineKeys(base, listener=listen, peer=peer, what=f"line {self.name!r}-{peer!r}")
        return hotline(listen=address if listen else None, dial=None if listen else address, name=self.name, on_ask=self._on_ask,
                       max_message_size=self._max_message_size, keys=keys,
                       tls=self._tls[0] if listen else self._tls[1])  # fmt: skip

    async def _open_listening(self, stack: AsyncExitStack, peer: str) -> Hotline:
        """A listening line at the first free address next to the mesh (the first free port
        of ``line_ports``); :class:`LineError` when every one of them is taken."""
        mesh = self._mesh.addresses[0]
        ranged = self._ports is not None and not mesh.startswith(("ipc:", "inproc:", "ws:", "wss:"))
        for address in line_listen_addresses(mesh, secrets.token_hex(4), self._ports):
            try:
                line: Hotline = await stack.enter_async_context(self._line(address, peer, listen=True))
                return line
            except AddressInUse:
                if not ranged:  # port 0 or a fresh ipc path: not a busy range
                    raise
        assert self._ports is not None
        raise LineError(
            f"member {self.name!r}: no free port for a hotline in line_ports {self._ports.start}-"
            f"{self._ports[-1]} ({len(self._ports)} ports, all in use: one per line this member listens for)"
        )

    async def _listen(self, entry: _Line) -> None:
        async with AsyncExitStack() as stack:
            line = await self._open_listening(stack, entry.peer)
            self._ready(entry, line)
            offer = self._setup.offer(entry.peer, announced_address(line.bound_address, self._local_host))
            while True:
                if line.connected:  # until the line drops, or the peer asks again
                    entry.asked = trio.Event()
                    await _first(entry.asked.wait, line.wait_disconnected)
                await self._send(offer)
                with trio.move_on_after(RESEND):
                    await line.wait_connected()

    async def _dial(self, entry: _Line) -> None:
        while entry.address is None:
            await self._send(self._setup.request(entry.peer))
            with trio.move_on_after(RESEND):
                await entry.offered.wait()
        async with self._line(entry.address, entry.peer, listen=False) as line:
            self._ready(entry, line)
            while True:  # ask again while not connected: the offer may be from a process now gone
                if line.connected:
                    await line.wait_disconnected()
                with trio.move_on_after(RESEND):
                    await _until_connected(line)
                if not line.connected:
                    await self._send(self._setup.request(entry.peer))

    def _ready(self, entry: _Line, line: Hotline) -> None:
        entry.line = line
        entry.opened.set()
        self._setup.opened(entry.peer, entry.attempt)
        if entry.incoming:
            try:
                self._incoming_send.send_nowait((entry.peer, line))
            except (trio.WouldBlock, trio.ClosedResourceError):
                log.warning("member %r: a hotline from %r was not taken from hotlines() (queue full); "
                            "member.hotline(%r) still returns it", self.name, entry.peer, entry.peer)  # fmt: skip


async def _until_connected(line: Hotline) -> None:
    """Return once ``line`` connects (:class:`Closed` if it closes). A line the listener
    refused as taken (some other peer dialed it first) is looked at again every resend
    interval: it gets in when that peer goes; the caller's deadline bounds the wait."""
    while True:
        try:
            await line.wait_connected()
            return
        except LineTaken:
            await trio.sleep(RESEND)


async def _connected(line: Hotline) -> None:
    with contextlib.suppress(Closed):
        await _until_connected(line)


async def _first(*waits: Callable[[], Any]) -> None:
    """Return when the first of ``waits`` returns."""
    async with trio.open_nursery() as nursery:
        for wait in waits:

            async def run(wait: Callable[[], Any] = wait) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)
