"""Hotlines between the members of a room, opened by name.

``line = await member.hotline("gemini")`` gives a :class:`~consensus.Hotline` to that
member; the room exchanges the addresses. The other side gets the same line from
``await member.hotline("claude")`` or, without asking, from ``member.hotlines()``.

Set-up goes over the mesh bus in ``line`` messages addressed to one member (``to``).
Of the two members, the one whose name sorts first always listens, so two members
asking for each other at once still make one line:

- the listener opens a pair1 socket at a fresh address next to its mesh address and
  sends ``{"to": peer, "address": ...}`` until the peer connects;
- the other side, when it wants the line first, sends ``{"to": peer}`` until an offer
  comes, then dials the offered address.

Both messages are repeated every :data:`RESEND` seconds while the line is not up, so a
lost broadcast (the mesh is best effort) only delays the line. A line lives until this
member leaves or the peer leaves the room; a peer that rejoins (a new process: a new
mesh address in the roster) gets a new line. Lines use the member's ``on_ask`` handler.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.errors import LineError
from consensus.hotline.line import Hotline, hotline
from consensus.room import protocol as P
from consensus.room.roster import check_name
from patterns import Bus, Closed, ConsensusError, Envelope, MalformedMessage, Timeout

__all__ = ["RoomLines"]

log = logging.getLogger("consensus")

RESEND = 0.5  # seconds between repeated set-up messages while a line is not up
INCOMING = 64  # lines opened by peers and not yet taken from member.hotlines()


@dataclass(eq=False, slots=True)
class _Line:
    peer: str
    peer_mesh: str  # the peer's mesh address when the line began: a new one means a new process
    listen: bool
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    address: str | None = None  # where the listener listens (known to the dialer once offered)
    line: Hotline | None = None
    opened: trio.Event = field(default_factory=trio.Event)  # ``line`` is set (or the attempt ended)
    closed: trio.Event = field(default_factory=trio.Event)
    offered: trio.Event = field(default_factory=trio.Event)
    asked: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None


class RoomLines:
    """One member's hotlines, keyed by the peer's name."""

    def __init__(self, *, name: str, mesh: Bus, members: Callable[[], dict[str, str]],
                 on_ask: Callable[..., Any] | None, max_message_size: int) -> None:  # fmt: skip
        self.name = name
        self._mesh = mesh
        self._members = members
        self._on_ask = on_ask
        self._max_message_size = max_message_size
        self._lines: dict[str, _Line] = {}
        self._nursery: trio.Nursery | None = None
        self._incoming_send, self._incoming = trio.open_memory_channel[tuple[str, Hotline]](INCOMING)
        self.malformed = 0
        self.opened = 0

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def close(self) -> None:
        self._incoming_send.close()
        for entry in self._lines.values():
            entry.scope.cancel()

    # ------------------------------------------------------------------ public
    async def hotline(self, peer: str, *, timeout: float) -> Hotline:
        if peer == self.name:
            raise ValueError(f"member {self.name!r} cannot open a hotline to itself")
        check_name(peer)
        if not timeout > 0:
            raise ValueError(f"hotline({peer!r}): timeout must be > 0 s, got {timeout!r}")
        with trio.move_on_after(timeout):
            while True:
                entry = self._lines.get(peer)
                if entry is None:
                    members = self._members()
                    if peer not in members:
                        raise LineError(
                            f"member {self.name!r}: no member named {peer!r} in the room "
                            f"(members: {', '.join(sorted(members)) or 'none'})"
                        )
                    entry = self._open(peer, members[peer], incoming=False)
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
            f"({'it is not in the room' if peer not in self._members() else 'it did not connect'})"
        )

    async def incoming(self) -> AsyncIterator[tuple[str, Hotline]]:
        async for item in self._incoming:
            yield item

    # ------------------------------------------------------------------ events
    def on_envelope(self, envelope: Envelope) -> None:
        """A ``line`` message from the mesh (called by the mesh pump; never blocks)."""
        try:
            to, address = P.parse_line(envelope)
        except MalformedMessage as exc:
            self.malformed += 1
            log.warning("member %r ignored a line message: %s", self.name, exc)
            return
        if to != self.name:
            return  # for another member: the mesh is a bus
        sender = envelope.sender
        members = self._members()
        if sender not in members or sender == self.name or (address is None) != (sender > self.name):
            self.malformed += 1
            log.warning("member %r ignored a line message from %r (not a member, or roles swapped)",
                        self.name, sender)  # fmt: skip
            return
        entry = self._lines.get(sender)
        if entry is not None and address is not None and entry.address not in (None, address):
            entry.scope.cancel()  # the peer listens somewhere new (its old line was closed)
            entry = None
        if entry is None:
            entry = self._open(sender, members[sender], incoming=True)
        if address is None:
            entry.asked.set()
        elif entry.address is None:
            entry.address = address
            entry.offered.set()

    def roster_changed(self, members: dict[str, str]) -> None:
        """Close the lines to members who left or came back as a new process."""
        for peer, entry in list(self._lines.items()):
            if members.get(peer) != entry.peer_mesh:
                entry.scope.cancel()
                del self._lines[peer]

    # ------------------------------------------------------------------ lines
    def _open(self, peer: str, peer_mesh: str, *, incoming: bool) -> _Line:
        if self._nursery is None:
            raise RuntimeError("RoomLines.start() was not called")
        entry = self._lines[peer] = _Line(peer, peer_mesh, listen=self.name < peer)
        self._nursery.start_soon(self._run, entry, incoming)
        return entry

    async def _run(self, entry: _Line, incoming: bool) -> None:
        try:
            with entry.scope:
                if entry.listen:
                    await self._listen(entry, incoming)
                else:
                    await self._dial(entry, incoming)
        except ConsensusError as exc:  # a socket that cannot open: the caller hears why
            entry.error = exc
            log.warning("member %r: hotline to %r failed: %s", self.name, entry.peer, exc)
        finally:
            entry.line = None
            entry.opened.set()
            entry.closed.set()
            if self._lines.get(entry.peer) is entry:
                del self._lines[entry.peer]

    def _line_address(self) -> str:
        mesh = self._mesh.addresses[0]
        scheme, _, rest = mesh.partition("://")
        if scheme in ("ipc", "inproc"):
            return f"{mesh}.l-{secrets.token_hex(4)}"
        host = rest.rpartition(":")[0]
        return f"{scheme}://{host}:0"

    def _line(self, address: str, *, listen: bool) -> Any:
        return hotline(listen=address if listen else None, dial=None if listen else address, name=self.name, on_ask=self._on_ask,
                       max_message_size=self._max_message_size)  # fmt: skip

    async def _listen(self, entry: _Line, incoming: bool) -> None:
        async with self._line(self._line_address(), listen=True) as line:
            entry.address = line.bound_address  # tcp port 0 resolved
            self._ready(entry, line, incoming)
            offer = {"to": entry.peer, "address": entry.address}
            while True:
                if line.connected:  # until the line drops, or the peer asks again
                    entry.asked = trio.Event()
                    await _first(entry.asked.wait, line.wait_disconnected)
                await self._mesh.send(offer, kind=P.LINE)
                with trio.move_on_after(RESEND):
                    await line.wait_connected()

    async def _dial(self, entry: _Line, incoming: bool) -> None:
        while entry.address is None:
            await self._mesh.send({"to": entry.peer}, kind=P.LINE)
            with trio.move_on_after(RESEND):
                await entry.offered.wait()
        async with self._line(entry.address, listen=False) as line:
            self._ready(entry, line, incoming)
            await trio.sleep(math.inf)

    def _ready(self, entry: _Line, line: Hotline, incoming: bool) -> None:
        entry.line = line
        entry.opened.set()
        self.opened += 1
        if incoming:
            try:
                self._incoming_send.send_nowait((entry.peer, line))
            except (trio.WouldBlock, trio.ClosedResourceError):
                log.warning("member %r: a hotline from %r was not taken from hotlines() (queue full); "
                            "member.hotline(%r) still returns it", self.name, entry.peer, entry.peer)  # fmt: skip


async def _connected(line: Hotline) -> None:
    with contextlib.suppress(Closed):
        await line.wait_connected()


async def _first(*waits: Callable[[], Any]) -> None:
    """Return when the first of ``waits`` returns."""
    async with trio.open_nursery() as nursery:
        for wait in waits:

            async def run(wait: Callable[[], Any] = wait) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)
