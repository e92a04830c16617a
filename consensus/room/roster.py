"""Room membership as a sans-IO state machine: joins, heartbeats, leaves, expiry.

No sockets and no clock: every call that depends on time takes ``now`` (seconds on
any monotonic clock the driver chooses). The host's driver feeds it what arrives on
the control bus and the connection losses NNG reports, and acts on what it returns.

Name rules: two live members may not share a name. A join under a name that is
taken is accepted as a *replacement* only when the old holder is evidently gone
(no heartbeat for more than two intervals; a closed connection removes a member
at once);
otherwise it is refused, and the refusal names the holder's state.

Bounds: at most ``max_members`` members (a join past it is refused, the room says it
is full), and each connection may try at most ``names_per_connection`` distinct names
in any ``name_window`` seconds (:class:`~consensus.room.admission.Admission`). Both
refusals are counted (:attr:`Roster.refused_full`, :attr:`Roster.refused_flood`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from consensus.room.admission import DEFAULT_NAME_WINDOW, DEFAULT_NAMES_PER_CONNECTION, Admission

__all__ = ["DEFAULT_MAX_MEMBERS", "JoinOutcome", "JoinVerdict", "MemberRecord", "Roster"]

MAX_NAME_LENGTH = 128
DEFAULT_MAX_MEMBERS: Final = 256


class JoinOutcome(Enum):
    ACCEPTED = "accepted"
    REPLACED = "replaced"  # the name's previous holder was gone; the newcomer takes its place
    REFRESHED = "refreshed"  # the same member (same token) asked again: its mesh, refs or observer may change
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class JoinVerdict:
    outcome: JoinOutcome
    reason: str = ""
    replaced: MemberRecord | None = None
    turned: bool = False  # refreshed with the other observer flag: the rounds under way change too


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """What the room knows of one member."""

    name: str
    token: int
    mesh: str  # the address its room-wide bus listens at
    pipe: int  # the control connection it joined over (NNG pipe id)
    joined_at: float
    last_seen: float
    refs: bool = True  # False: it takes no shared-memory references (frames to it go inline)
    observer: bool = False  # True: in the room, never in an electorate nor expected in a poll
    decided: bool = False  # True: it reads a deliberation's decision from the result (one final frame)


def check_name(name: object) -> str:
    """Validate a member name from code or from a peer; returns it or raises ValueError."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise ValueError(
            f"member name must be printable text of 1..{MAX_NAME_LENGTH} characters, got {name!r}"
        )
    return name


LARGE_ROOM: Final = 64
"""Members past which the silence a member is allowed grows with the room (:attr:`Roster.expiry`)."""


class Roster:
    """The host's view of who is in the room."""

    def __init__(
        self,
        *,
        heartbeat: float,
        missed_heartbeats: int = 3,
        max_members: int = DEFAULT_MAX_MEMBERS,
        names_per_connection: int = DEFAULT_NAMES_PER_CONNECTION,
        name_window: float = DEFAULT_NAME_WINDOW,
    ) -> None:
        if not heartbeat > 0:
            raise ValueError(f"heartbeat interval must be > 0 seconds, got {heartbeat!r}")
        if missed_heartbeats < 1:
            raise ValueError(f"missed_heartbeats must be >= 1, got {missed_heartbeats!r}")
        if type(max_members) is not int or max_members < 1:
            raise ValueError(f"max_members must be a positive integer, got {max_members!r}")
        self.max_members = max_members
        self.admission = Admission(limit=names_per_connection, window=name_window)
        self.refused_full = 0  # joins refused because the room was full
        self.refused_flood = 0  # joins refused because their connection tried too many names
        self.heartbeat = heartbeat
        self._expiry = heartbeat * missed_heartbeats
        self._members: dict[str, MemberRecord] = {}
        self._closed_pipes: set[int] = set()
        self.version = 0
        # ``participants``, ``refs`` and ``decided``, read by every poll, vote and deliberation;
        # None after any change of members (a heartbeat changes none of them).
        self._views: tuple[tuple[str, ...], bool, bool] | None = None

    # -------------------------------------------------------------- queries
    @property
    def expiry(self) -> float:
        """How long a member may stay silent: ``missed_heartbeats`` intervals, and in a room of
        more than :data:`LARGE_ROOM` members proportionally more (a busy machine delays some
        heartbeats; expiring and re-admitting them would send the whole roster to everyone)."""
        return self._expiry * max(1.0, len(self._members) / LARGE_ROOM)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __len__(self) -> int:
        return len(self._members)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._members))

    def _view(self) -> tuple[tuple[str, ...], bool, bool]:
        if self._views is None:
            members = self._members.values()
            self._views = (tuple(sorted(rec.name for rec in members if not rec.observer)),
                           all(rec.refs for rec in members), all(rec.decided for rec in members))  # fmt: skip
        return self._views

    @property
    def participants(self) -> tuple[str, ...]:
        """The members who answer polls and vote (sorted): everyone but the observers."""
        return self._view()[0]

    @property
    def observers(self) -> tuple[str, ...]:
        """The members who only watch (sorted)."""
        return tuple(sorted(name for name, rec in self._members.items() if rec.observer))

    def get(self, name: str) -> MemberRecord | None:
        return self._members.get(name)

    def meshes(self) -> dict[str, str]:
        return {name: rec.mesh for name, rec in sorted(self._members.items())}

    def next_expiry(self) -> float | None:
        """When the earliest member will expire if it stays silent (or None if empty)."""
        if not self._members:
            return None
        return min(rec.last_seen for rec in self._members.values()) + self.expiry

    # -------------------------------------------------------------- events
    def is_closed(self, pipe: int) -> bool:
        """Whether the connection ``pipe`` was reported closed (recently)."""
        return pipe in self._closed_pipes

    @property
    def refs(self) -> bool:
        """False while some member present takes no shared-memory references."""
        return self._view()[1]

    @property
    def decided(self) -> bool:
        """True while every member present reads a deliberation's decision from its result
        (said in its join: ``docs/deliberation.md`` section 7.2)."""
        return self._view()[2]

    def join(self, name: str, token: int, mesh: str, pipe: int, now: float, *, refs: bool = True,
             observer: bool = False, decided: bool = False) -> JoinVerdict:  # fmt: skip
        check_name(name)
        if pipe in self._closed_pipes:
            return JoinVerdict(JoinOutcome.REFUSED, f"the connection {name!r} joined over has already closed")
        if not self.admission.admit(pipe, name, now):
            self.refused_flood += 1
            return JoinVerdict(
                JoinOutcome.REFUSED,
                f"the connection {name!r} joined over already tried {self.admission.limit} other names in "
                f"the last {self.admission.window:g} s (names_per_connection={self.admission.limit}); "
                "one connection is for one member",
            )
        old = self._members.get(name)
        if old is not None:
            if old.token == token:
                self._views = None  # it may come back as an observer, or taking no references
                self._members[name] = MemberRecord(
                    name, token, mesh, pipe, old.joined_at, now, refs, observer, decided
                )
                if (mesh, refs, observer) != (old.mesh, old.refs, old.observer):
                    self.version += 1  # what the roster says changed: members must hear it
                return JoinVerdict(JoinOutcome.REFRESHED, turned=observer != old.observer)
            if now - old.last_seen <= 2 * self.heartbeat:
                return JoinVerdict(
                    JoinOutcome.REFUSED,
                    f"the name {name!r} is held by a live member (joined {now - old.joined_at:.1f} s ago, "
                    f"last heard {now - old.last_seen:.3f} s ago); pick another name",
                )
        elif len(self._members) >= self.max_members:
            self.refused_full += 1
            return JoinVerdict(
                JoinOutcome.REFUSED,
                f"the room is full: {len(self._members)} members (max_members={self.max_members}); "
                f"{name!r} can join once a member leaves",
            )
        self._members[name] = MemberRecord(name, token, mesh, pipe, now, now, refs, observer, decided)
        self.version += 1
        self._views = None
        if old is not None:
            return JoinVerdict(JoinOutcome.REPLACED, replaced=old)
        return JoinVerdict(JoinOutcome.ACCEPTED)

    def heartbeat_from(self, name: str, token: int, now: float) -> bool:
        """Record a heartbeat; False when it is not from the current holder of the name."""
        rec = self._members.get(name)
        if rec is None or rec.token != token:
            return False
        self._members[name] = MemberRecord(
            rec.name, rec.token, rec.mesh, rec.pipe, rec.joined_at, now, rec.refs, rec.observer, rec.decided
        )
        return True

    def leave(self, name: str, token: int) -> bool:
        rec = self._members.get(name)
        if rec is None or rec.token != token:
            return False
        del self._members[name]
        self.version += 1
        self._views = None
        return True

    def pipe_closed(self, pipe: int) -> list[str]:
        """A control connection dropped: its members (usually one) are gone."""
        self._closed_pipes.add(pipe)
        self.admission.forget(pipe)
        if len(self._closed_pipes) > 4096:  # only recent closes can race with a join
            self._closed_pipes = set(sorted(self._closed_pipes)[-1024:])
        gone = [name for name, rec in self._members.items() if rec.pipe == pipe]
        for name in gone:
            del self._members[name]
        if gone:
            self.version += 1
            self._views = None
        return gone

    def expire(self, now: float) -> list[str]:
        """Drop members silent for longer than the expiry; returns their names."""
        gone = [name for name, rec in self._members.items() if now - rec.last_seen > self.expiry]
        for name in gone:
            del self._members[name]
        if gone:
            self.version += 1
            self._views = None
        return gone
