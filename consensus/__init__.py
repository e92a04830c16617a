"""nng-consensus: polls, votes, work sharing and direct lines for agents, over NNG.

Host a room, join it, poll and vote::

    async with consensus.host("tcp://127.0.0.1:7000") as room:
        await room.wait_for_members(3)
        result = await room.poll("ready?", timeout=5)
        decision = await room.vote("ship it?", options=["yes", "no"], timeout=5)

    async with consensus.join("tcp://127.0.0.1:7000", name="claude",
                              on_poll=answer, on_vote=decide) as me:
        ...

The decision logic (:func:`tally` and the rules) is pure code with no I/O. Every
exception is a :class:`ConsensusError`; the tree is drawn in :mod:`consensus.errors`.
The NNG pattern layer underneath is the :mod:`patterns` package.
"""

from consensus.decide.ballot import Ballot
from consensus.decide.poll import PollResult, PollRound, Verdict
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import Decision, is_decided, tally
from consensus.decide.vote import VoteRound
from consensus.endpoints import Endpoints, WorkEndpoints, endpoints, work_endpoints
from consensus.errors import (
    InvalidBallot,
    InvalidDecision,
    LineError,
    MemberCallRefused,
    NameTaken,
    PeerLost,
    RemoteError,
    RoomClosed,
    RoomError,
    RoomUnavailable,
)
from consensus.failure import Failure
from consensus.hotline.line import Hotline, HotlineStatistics, IncomingAsk, hotline
from consensus.room.host import Room, RoomStatistics, host
from consensus.room.member import Member, MemberStatistics, join
from consensus.room.roster import JoinOutcome, Roster
from consensus.work.dispatcher import Dispatcher, DispatcherStatistics
from consensus.work.distribution import CancelReport, Distribution, DistributionStatistics
from consensus.work.task import Outcome, WorkerShare
from consensus.work.worker import Worker, WorkerStatistics
from patterns import (
    BadReference,
    Closed,
    ConsensusError,
    EncodeError,
    MalformedMessage,
    MessageError,
    MessageTooLarge,
    SegmentGone,
    SharedBuffer,
    SharedMemory,
    SharedMemoryError,
    SharedMemoryFull,
    Timeout,
    TransportError,
    WouldBlock,
    shared_buffer,
)

__all__ = [
    "BadReference",
    "Ballot",
    "CancelReport",
    "Closed",
    "ConsensusError",
    "Decision",
    "Dispatcher",
    "DispatcherStatistics",
    "Distribution",
    "DistributionStatistics",
    "EncodeError",
    "Endpoints",
    "Failure",
    "Hotline",
    "HotlineStatistics",
    "IncomingAsk",
    "InvalidBallot",
    "InvalidDecision",
    "JoinOutcome",
    "LineError",
    "Majority",
    "MalformedMessage",
    "Member",
    "MemberCallRefused",
    "MemberStatistics",
    "MessageError",
    "MessageTooLarge",
    "NameTaken",
    "Outcome",
    "PeerLost",
    "Plurality",
    "PollResult",
    "PollRound",
    "RemoteError",
    "Room",
    "RoomClosed",
    "RoomError",
    "RoomStatistics",
    "RoomUnavailable",
    "Roster",
    "Rule",
    "SegmentGone",
    "SharedBuffer",
    "SharedMemory",
    "SharedMemoryError",
    "SharedMemoryFull",
    "Supermajority",
    "TieBreak",
    "Timeout",
    "TransportError",
    "Unanimous",
    "Verdict",
    "VoteRound",
    "Weighting",
    "WorkEndpoints",
    "Worker",
    "WorkerShare",
    "WorkerStatistics",
    "WouldBlock",
    "endpoints",
    "host",
    "hotline",
    "is_decided",
    "join",
    "shared_buffer",
    "tally",
    "work_endpoints",
]
