"""The records a room's ``statistics()`` return: the host's and a member's counters.

Every counter counts since the room (or the membership) opened; ``docs/rooms.md`` §7 says
what each one counts.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MemberStatistics", "RoomStatistics"]


@dataclass(frozen=True, slots=True)
class RoomStatistics:
    """Counters of one room since it opened (``room.statistics()``)."""

    members: int
    joins: int
    refused_joins: int
    leaves: int
    connection_losses: int
    expired: int
    polls: int
    votes: int
    late_replies: int
    rejected_replies: int
    malformed: int
    messages_dropped: int
    duplicates_dropped: int
    calls: int = 0  # polls and votes members asked for (and the host ran)
    refused_calls: int = 0
    observers: int = 0
    deliberation_rounds: int = 0
    unauthenticated: int = 0  # frames refused by the room's sockets before decoding (secret)
    impersonations: int = 0  # authenticated frames that spoke for a name their session does not own
    relayed: int = 0  # members' broadcasts and line offers the host sent on (a relayed room)
    relay_dropped: int = 0  # ... that it could not send on (a full queue): lost, and logged
    prompts_cut: int = 0  # deliberation prompts cut to fit max_message_size
    directs: int = 0  # room.ask / room.send messages sent to one member
    roster_requests: int = 0  # heartbeats that named an older roster, past the grace after a change
    rosters_resent: int = 0  # rosters sent again for them: at most one per grace (2 heartbeats)
    hellos_dropped: int = 0  # hellos forgotten before their session opened, past 1,024 pending (secret)
    sessions_dropped: int = 0  # sessions of nobody present dropped past 4,096 kept (secret)


@dataclass(frozen=True, slots=True)
class MemberStatistics:
    """Counters of one member since it joined (``member.statistics()``)."""

    members: int
    polls_answered: int
    votes_cast: int
    handler_errors: int
    decisions: int
    malformed: int
    messages_dropped: int
    duplicates_dropped: int
    hotlines_opened: int  # lines to other members, opened by either side
    calls: int = 0  # polls and votes this member asked the host to run
    late_results: int = 0  # results of calls that came after the caller stopped waiting
    positions_sent: int = 0  # positions sent in answer to deliberations
    unauthenticated: int = 0  # frames refused by this member's sockets before decoding (secret)
    directs: int = 0  # room.ask / room.send messages the host sent this member
    replies_lost: int = 0  # replies NNG could not send while the host waited (the connection stayed busy)
