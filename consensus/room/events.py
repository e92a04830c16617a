"""What the room's protocol objects hand their drivers: frames to send and events.

:class:`~consensus.room.host_protocol.HostProtocol` and
:class:`~consensus.room.member_protocol.MemberProtocol` never touch a socket: every
method returns a list of these values, and the driver sends the :class:`Send` frames
and acts on the rest. Frames carry the kind and the body, built by the builders of
:mod:`consensus.room.protocol`; the driver adds the envelope.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from consensus.decide.decision import Decision
from consensus.decide.roundtable import Deliberation
from consensus.room.calls import Call, CallAnswer
from consensus.room.direct import Direct, DirectReply

__all__ = [
    "CallAnswered",
    "CallRequested",
    "DecisionReceived",
    "Decline",
    "DeliberationReceived",
    "Dial",
    "DirectAnswered",
    "DirectLost",
    "DirectReceived",
    "Handle",
    "HandlerKind",
    "HostChanged",
    "HostClosed",
    "Ignored",
    "Joined",
    "Left",
    "MembersChanged",
    "Output",
    "Refused",
    "Send",
    "Target",
    "Undial",
    "Welcomed",
    "Why",
]


class Target(Enum):
    """Where a frame goes."""

    CONTROL = "control"  # the control bus: every connected peer
    SURVEY = "survey"  # a new survey to every respondent (host only)
    REPLY = "reply"  # the reply to the survey ``Send.survey`` (member only)
    MESH = "mesh"  # the mesh bus: every member and the host (hotline set-up)


@dataclass(frozen=True, slots=True)
class Send:
    """A frame to send: its kind and body, and where it goes."""

    kind: str
    body: Any
    to: Target
    survey: int = 0  # for a REPLY: the driver's key of the survey it answers
    inline: bool = False  # True: no shared-memory placement (a receiver takes no references)


# ------------------------------------------------------------------ host events
@dataclass(frozen=True, slots=True)
class Joined:
    """A member joined the room (the host's roster changed)."""

    name: str
    replaced: bool = False  # the name's previous holder was gone and is replaced


class Why(Enum):
    """Why members are gone (the value is for the log)."""

    LEAVE = "left"
    CONNECTION_LOSS = "connection closed"
    EXPIRY = "silent too long"
    REPLACED = "replaced by a newcomer under the name"


@dataclass(frozen=True, slots=True)
class Left:
    """Members are gone from the room; running rounds no longer wait for them."""

    names: tuple[str, ...]
    why: Why


@dataclass(frozen=True, slots=True)
class CallRequested:
    """A member asked the host to run a poll or a vote (checked, not refused): run it, then
    send ``HostProtocol.calls.result`` (or ``calls.refused`` if it cannot be opened)."""

    call: Call


@dataclass(frozen=True, slots=True)
class DirectAnswered:
    """The member asked with ``room.ask`` answered (a value or a failure)."""

    reply: DirectReply


@dataclass(frozen=True, slots=True)
class DirectLost:
    """The member asked with ``room.ask`` (ask ``direct_id``) left before answering."""

    direct_id: int
    name: str
    why: str


# ------------------------------------------------------------------ both sides
@dataclass(frozen=True, slots=True)
class MembersChanged:
    """The roster changed: the host's view (host) or the last roster received (member)."""

    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A frame was dropped and counted as malformed: ``reason`` says why (for the log)."""

    reason: str


# ------------------------------------------------------------------ member events
@dataclass(frozen=True, slots=True)
class Welcomed:
    """This member's join was accepted (first welcome only); ``heartbeat``: the interval to keep."""

    heartbeat: float


@dataclass(frozen=True, slots=True)
class Refused:
    """The host refused this member: its membership is over."""

    reason: str
    after_welcome: bool  # True: this member had joined and lost its name since


@dataclass(frozen=True, slots=True)
class Dial:
    """Dial the mesh address of a member whose name sorts before this one's."""

    address: str


@dataclass(frozen=True, slots=True)
class Undial:
    """Stop dialing a mesh address (its member left, or moved)."""

    address: str


@dataclass(frozen=True, slots=True)
class DecisionReceived:
    """The host broadcast the decision of a vote."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class DeliberationReceived:
    """The host broadcast a finished deliberation."""

    deliberation: Deliberation


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The host answered one of this member's calls (a result or a refusal)."""

    answer: CallAnswer


@dataclass(frozen=True, slots=True)
class DirectReceived:
    """The host sent this member a directed message (``room.ask`` / ``room.send``): run
    ``on_ask`` on it, and for an ask send ``MemberProtocol.direct_reply``."""

    direct: Direct


@dataclass(frozen=True, slots=True)
class HostChanged:
    """The host was lost (silent past ``host_timeout``, or its connection closed) or is back."""

    connected: bool
    reason: str  # for the log


@dataclass(frozen=True, slots=True)
class HostClosed:
    """The host closed the room (a ``close`` frame): this membership is over."""

    reason: str


class HandlerKind(Enum):
    """Which of the member's handlers answers a survey."""

    POLL = "on_poll"
    VOTE = "on_vote"
    DELIBERATE = "on_deliberate"

    # A member looks its handler up by kind once per survey: the identity hash (members
    # are singletons, equal only to themselves) spares Enum.__hash__'s Python call.
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class Handle:
    """Run the ``handler`` with ``args`` and give the outcome to ``MemberProtocol.reply``."""

    survey: int
    handler: HandlerKind
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Decline:
    """Do not answer the survey ``survey`` (the member was refused before it joined)."""

    survey: int


Output = (
    Send | Joined | Left | MembersChanged | Ignored | Welcomed | Refused | Dial | Undial | DecisionReceived
    | Handle | Decline | CallRequested | CallAnswered | HostChanged | HostClosed | DirectAnswered | DirectLost
    | DirectReceived | DeliberationReceived
)  # fmt: skip
