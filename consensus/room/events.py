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

__all__ = [
    "DecisionReceived",
    "Decline",
    "Dial",
    "Handle",
    "HandlerKind",
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
    kind: str
    body: Any
    to: Target
    survey: int = 0  # for a REPLY: the driver's key of the survey it answers
    inline: bool = False  # True: no shared-memory placement (a receiver takes no references)


# ------------------------------------------------------------------ host events
@dataclass(frozen=True, slots=True)
class Joined:
    name: str
    replaced: bool = False  # the name's previous holder was gone and is replaced


class Why(Enum):
    LEAVE = "leaves"
    CONNECTION_LOSS = "connection_losses"
    EXPIRY = "expired"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class Left:
    names: tuple[str, ...]
    why: Why


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
    heartbeat: float


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    after_welcome: bool  # True: this member had joined and lost its name since


@dataclass(frozen=True, slots=True)
class Dial:
    address: str


@dataclass(frozen=True, slots=True)
class Undial:
    address: str


@dataclass(frozen=True, slots=True)
class DecisionReceived:
    decision: Decision


class HandlerKind(Enum):
    POLL = "on_poll"
    VOTE = "on_vote"


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
    | Handle | Decline
)  # fmt: skip
