"""nng-consensus: polls, votes, work sharing and direct lines for agents, over NNG.

Host a room, join it, poll and vote::

    async with consensus.host("tcp://127.0.0.1:7000") as room:
        await room.wait_for_members(3)
        result = await room.poll("ready?", timeout=5)
        decision = await room.vote("ship it?", options=["yes", "no"], timeout=5)

    async with consensus.join("tcp://127.0.0.1:7000", name="claude",
                              on_poll=answer, on_vote=decide) as me:
        ...

This module exports what agent code needs: the entry points (:func:`host`, :func:`join`,
:func:`hotline`, :class:`Dispatcher`, :class:`Worker`), what they return and count, the
values of results (:class:`PollResult`, :class:`Decision`, :class:`Ballot`, :class:`Outcome`,
:class:`Failure`), the rules, and every exception (a :class:`ConsensusError`; the tree is
drawn in :mod:`consensus.errors`). The pure cores live in their subpackages:
:mod:`consensus.decide` (tallies, poll and vote rounds), :mod:`consensus.room`,
:mod:`consensus.work` and :mod:`consensus.hotline` (each protocol as a sans-IO object).
The NNG pattern layer underneath is the :mod:`patterns` package; ``docs/architecture.md``
draws the layers.
"""

from consensus.decide.ballot import Ballot
from consensus.decide.poll import PollResult
from consensus.decide.position import Position
from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import Decision, is_decided, tally
from consensus.discovery import RoomAd, discover
from consensus.endpoints import Endpoints, WorkEndpoints, endpoints, work_endpoints
from consensus.errors import (
    AuthenticationError,
    InvalidBallot,
    InvalidDecision,
    LineError,
    LineTaken,
    MemberCallRefused,
    NameTaken,
    PeerLost,
    RemoteError,
    RoomClosed,
    RoomError,
    RoomUnavailable,
)
from consensus.failure import Failure
from consensus.hotline.line import Hotline, HotlineStatistics, IncomingAsk, LineState
from consensus.hotline.opening import hotline
from consensus.room.host import Room, RoomStatistics
from consensus.room.hosting import host
from consensus.room.joining import join
from consensus.room.member import Member, MemberStatistics
from consensus.runtime.context import HandlerContext, handler_context
from consensus.runtime.logs import configure_from_env
from consensus.trust.identity import Identity
from consensus.trust.secret import Secret
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
    TLSConfig,
    TLSMode,
    TransportError,
    Unauthenticated,
    WouldBlock,
    shared_buffer,
)

__all__ = [
    "AuthenticationError",
    "BadReference",
    "Ballot",
    "CancelReport",
    "Closed",
    "ConsensusError",
    "Decision",
    "Deliberation",
    "Dispatcher",
    "DispatcherStatistics",
    "Distribution",
    "DistributionStatistics",
    "EncodeError",
    "Endpoints",
    "Failure",
    "HandlerContext",
    "Hotline",
    "HotlineStatistics",
    "Identity",
    "IncomingAsk",
    "InvalidBallot",
    "InvalidDecision",
    "LineError",
    "LineState",
    "LineTaken",
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
    "Position",
    "RemoteError",
    "Room",
    "RoomAd",
    "RoomClosed",
    "RoomError",
    "RoomStatistics",
    "RoomUnavailable",
    "Rule",
    "Secret",
    "SegmentGone",
    "SharedBuffer",
    "SharedMemory",
    "SharedMemoryError",
    "SharedMemoryFull",
    "Supermajority",
    "TLSConfig",
    "TLSMode",
    "TieBreak",
    "Timeout",
    "TransportError",
    "Unanimous",
    "Unauthenticated",
    "Weighting",
    "WorkEndpoints",
    "Worker",
    "WorkerShare",
    "WorkerStatistics",
    "WouldBlock",
    "discover",
    "endpoints",
    "handler_context",
    "host",
    "hotline",
    "is_decided",
    "join",
    "shared_buffer",
    "tally",
    "work_endpoints",
]

configure_from_env()  # NNGC_LOG=debug|info|warning|error turns on our log output (runtime/logs.py)
