"""The set-up of hotlines between room members as a pure object (no sockets, no clock).

One :class:`LineSetup` per member. It takes the rosters the member receives, the
member's own requests for a line, and the ``line`` messages that arrive on the mesh
bus; it returns frames to send and what the driver
(:class:`consensus.room.lines.RoomLines`) should do: open a line, close one, dial an
offered address, repeat an offer. It owns every rule of the set-up:

- of two members, the one whose name sorts first listens, the other dials, so two
  members asking for each other at once still make one line;
- only a member in the roster, playing its role, may ask or offer; anything else is
  counted as malformed and ignored;
- an offer at a new address means the peer's old line is gone: the line is made again;
- a peer that leaves, or comes back as a new process (a new mesh address in the
  roster), loses its line.

Each line the driver runs is named by its peer and an *attempt* number, so that news
about a line that has since been closed and opened again never touches the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from consensus.errors import LineError
from consensus.room import protocol as P
from consensus.room.events import Ignored, Send, Target
from consensus.room.roster import check_name
from patterns import Envelope, MalformedMessage

__all__ = [
    "COUNTERS",
    "RESEND",
    "CloseLine",
    "DialLine",
    "LineOutput",
    "LineSetup",
    "OfferAgain",
    "OpenLine",
]

COUNTERS: Final = ("opened", "malformed")
RESEND: Final = 0.5  # seconds between repeated requests or offers while a line is not up


@dataclass(frozen=True, slots=True)
class OpenLine:
    """Run a line to ``peer``: listen at a fresh address and offer it (``listen``), or ask
    for an offer and dial it. ``incoming``: the peer asked first (the application hears of
    the line from ``member.hotlines()``)."""

    peer: str
    attempt: int
    listen: bool
    incoming: bool


@dataclass(frozen=True, slots=True)
class CloseLine:
    """Stop the line ``attempt`` to ``peer`` (the peer left, came back, or moved)."""

    peer: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DialLine:
    """The listener offered ``address`` for the line ``attempt``: dial it."""

    peer: str
    attempt: int
    address: str


@dataclass(frozen=True, slots=True)
class OfferAgain:
    """The dialer asked again for the line ``attempt``: repeat the offer (if not connected)."""

    peer: str
    attempt: int


LineOutput = OpenLine | CloseLine | DialLine | OfferAgain | Ignored


@dataclass(slots=True)
class _Line:
    attempt: int
    peer_mesh: str  # the peer's mesh address when the line began: a new one means a new process
    listen: bool
    offered: str | None = None  # the address the listener offered (dialer side only)


class LineSetup:
    """One member's view of the set-up of its hotlines, keyed by the peer's name."""

    def __init__(self, *, name: str) -> None:
        self.name = check_name(name)
        self.members: dict[str, str] = {}  # the last roster: name -> mesh address
        self._lines: dict[str, _Line] = {}
        self._attempts = 0
        self.counts = dict.fromkeys(COUNTERS, 0)

    # ------------------------------------------------------------------ queries
    def listens_to(self, peer: str) -> bool:
        """True when this member listens for the line to ``peer`` (its name sorts first)."""
        return self.name < peer

    def attempt(self, peer: str) -> int | None:
        """The attempt number of the line to ``peer`` under way, or None."""
        line = self._lines.get(peer)
        return None if line is None else line.attempt

    def current(self, peer: str, attempt: int) -> bool:
        """True when ``attempt`` is the line to ``peer`` under way (not closed since)."""
        return self.attempt(peer) == attempt

    # ------------------------------------------------------------------ the application
    def open(self, peer: str) -> list[LineOutput]:
        """This member wants a line to ``peer``: ``[OpenLine]``, or ``[]`` if one is under way.

        Raises ValueError for this member's own name or a name no member may have, and
        :class:`~consensus.errors.LineError` when ``peer`` is not in the last roster."""
        if peer == self.name:
            raise ValueError(f"member {self.name!r} cannot open a hotline to itself")
        check_name(peer)
        if peer in self._lines:
            return []
        if peer not in self.members:
            raise LineError(
                f"member {self.name!r}: no member named {peer!r} in the room "
                f"(members: {', '.join(sorted(self.members)) or 'none'})"
            )
        return [self._open(peer, incoming=False)]

    def _open(self, peer: str, *, incoming: bool) -> OpenLine:
        self._attempts += 1
        self._lines[peer] = _Line(self._attempts, self.members[peer], self.listens_to(peer))
        return OpenLine(peer, self._attempts, self.listens_to(peer), incoming)

    def request(self, peer: str) -> Send:
        """The frame that asks ``peer`` (the listener) for an offer."""
        return Send(P.LINE, P.line_body(peer), Target.MESH)

    def offer(self, peer: str, address: str) -> Send:
        """The frame that offers ``peer`` (the dialer) the ``address`` this member listens at."""
        return Send(P.LINE, P.line_body(peer, address), Target.MESH)

    def opened(self, peer: str, attempt: int) -> None:
        """The line ``attempt`` has its socket (listening, or dialing the offer): count it."""
        if self.current(peer, attempt):
            self.counts["opened"] += 1

    def ended(self, peer: str, attempt: int) -> None:
        """The driver's line ``attempt`` ended (closed, or its socket failed): forget it."""
        if self.current(peer, attempt):
            del self._lines[peer]

    # ------------------------------------------------------------------ from the room
    def roster_changed(self, members: Mapping[str, str]) -> list[LineOutput]:
        """Adopt the roster; close the lines to members who left or came back as a new process."""
        self.members = dict(members)
        out: list[LineOutput] = []
        for peer, line in list(self._lines.items()):
            if self.members.get(peer) != line.peer_mesh:
                del self._lines[peer]
                out.append(CloseLine(peer, line.attempt))
        return out

    def receive(self, envelope: Envelope) -> list[LineOutput]:
        """A message from the mesh bus other than a broadcast: what to do about it. Only
        ``line`` messages addressed to this member do anything; other kinds are ignored."""
        if envelope.kind != P.LINE:
            return []
        try:
            to, address = P.parse_line(envelope)
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            return [Ignored(str(exc))]
        if to != self.name:
            return []  # for another member: the mesh is a bus
        peer = envelope.sender
        why = self._not_allowed(peer, address)
        if why is not None:
            self.counts["malformed"] += 1
            return [Ignored(f"a line message from {peer[:80]!r}: {why}")]
        out: list[LineOutput] = []
        line = self._lines.get(peer)
        if line is not None and address is not None and line.offered not in (None, address):
            del self._lines[peer]  # the peer listens somewhere new (its old line was closed)
            out.append(CloseLine(peer, line.attempt))
            line = None
        if line is None:
            out.append(self._open(peer, incoming=True))
            line = self._lines[peer]
        if address is None:
            out.append(OfferAgain(peer, line.attempt))
        elif line.offered is None:
            line.offered = address
            out.append(DialLine(peer, line.attempt, address))
        return out

    def _not_allowed(self, peer: str, address: str | None) -> str | None:
        if peer == self.name:
            return "it carries this member's own name"
        if peer not in self.members:
            return "no member of that name is in the room"
        if address is None and not self.listens_to(peer):
            return f"it asks for an offer, but {peer!r} listens ({self.name!r} sorts later)"
        if address is not None and self.listens_to(peer):
            return f"it offers an address, but {self.name!r} listens (its name sorts first)"
        return None

    @property
    def lines(self) -> dict[str, int]:
        """The lines under way: peer -> attempt."""
        return {peer: line.attempt for peer, line in self._lines.items()}
