"""Where a member's membership stands (:class:`MemberState`), apart so that the parts of
:class:`~consensus.room.member_protocol.MemberProtocol` can share it."""

from __future__ import annotations

from enum import Enum

__all__ = ["MemberState"]


class MemberState(Enum):
    JOINING = "joining"  # join sent, no welcome or refusal yet
    JOINED = "joined"
    REFUSED = "refused"  # refused (before or after joining): the membership is over
    CLOSED = "closed"  # the host closed the room: the membership is over
