"""Rooms: the room protocol as sans-IO objects, and the trio drivers that run them.

The pure cores are exported here: :class:`HostProtocol` and :class:`MemberProtocol` (the two
sides of the room protocol), :class:`LineSetup` (who listens and who dials for a line between
two members), :class:`Roster` (membership), and the frames and events they exchange with
their drivers (:mod:`consensus.room.events`). The drivers, :class:`consensus.Room` and
:class:`consensus.Member`, are reached through :func:`consensus.host` and :func:`consensus.join`.
See ``docs/rooms.md`` for the protocol and ``docs/architecture.md`` for the layers.
"""

from consensus.room.host_protocol import HostProtocol
from consensus.room.line_setup import LineSetup
from consensus.room.member_protocol import MemberProtocol, MemberState
from consensus.room.roster import JoinOutcome, Roster
from consensus.room.rounds import ReplyOutcome, Rounds, Taken

__all__ = ["HostProtocol", "JoinOutcome", "LineSetup", "MemberProtocol", "MemberState", "ReplyOutcome", "Roster", "Rounds",
           "Taken"]
