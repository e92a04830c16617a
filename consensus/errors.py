"""The one exception tree of nng-consensus.

Everything this toolkit raises on purpose derives from :class:`ConsensusError`.
The transport half is defined in :mod:`patterns.errors` (NNG's exceptions are
translated where pynng is called, with ``raise ... from``); this module adds what
rooms, lines and decisions raise, and re-exports the rest, so that
``from consensus.errors import ...`` reaches every class::

    ConsensusError                  root: catch this to catch everything of ours
    ├── Closed                      the socket (or room, line, ...) is closed, or was closed
    │                               while a task waited on it
    ├── WouldBlock                  a ``*_nowait`` call could not complete at once
    ├── Timeout                     a deadline passed (also a builtin ``TimeoutError``)
    ├── TransportError              NNG reported a failure; ``.errno`` holds NNG's code
    │   ├── AddressError            malformed address or unsupported scheme
    │   │   └── AddressInUse        another socket already listens there
    │   ├── ConnectionRefused       a synchronous dial found nobody listening
    │   └── TLSError                TLS configuration or handshake failure
    ├── MessageError                a message could not be built or read
    │   ├── EncodeError             a value has no CBOR form here (also a ``TypeError``)
    │   ├── MessageTooLarge         an outgoing message exceeds ``max_message_size``
    │   └── MalformedMessage        bytes or a body from a peer were rejected (also a
    │       │                       ``ValueError``); counted in ``statistics()``; ``reason``
    │       │                       is "size", "cbor", "shape", "version" or "body"
    │       └── Unauthenticated     a frame failed its socket's guard (wrong or no secret,
    │                               altered, replayed, or a sender speaking for another);
    │                               counted apart, as ``unauthenticated``
    ├── AuthenticationError         this side and its peer do not share a secret (one has
    │                               none, or they differ): nothing was exchanged
    ├── InvalidBallot               a ballot's fields are wrong (also ``ValueError``)
    ├── InvalidDecision             a decision's fields are wrong (also ``ValueError``)
    ├── InvalidPosition             a deliberation position's fields are wrong (also ``ValueError``)
    ├── InvalidDeliberation         a deliberation result's fields are wrong (also ``ValueError``)
    ├── InvalidPollResult           a poll result's fields are wrong (also ``ValueError``)
    ├── RoomError                   room membership failed
    │   ├── RoomUnavailable         the host could not be reached, or went away
    │   ├── NameTaken               a live member already holds that name
    │   ├── MemberCallRefused       the host refused a member's call (``reason`` says why)
    │   └── RoomClosed              the host closed the room (or went away, with
    │                               ``on_host_lost="exit"``)
    ├── LineError                   a hotline could not be used
    │   ├── PeerLost                the peer went away (connection dropped, or silent past its
    │   │                           heartbeats) while the ask waited
    │   ├── LineTaken               the listener refused this dialer: it already has a peer
    │   └── RemoteError             the peer's handler raised; ``type`` and ``message`` say what
    └── SharedMemoryError           a shared-memory segment could not be made or used; ``name``
        │                           is the segment (``None`` when unknown), ``reason`` a tag
        ├── SegmentGone             the referenced segment no longer exists: "missing",
        │                           "released" (every receiver attached) or "expired" (lease)
        ├── BadReference            a reference is malformed or does not match its segment
        │                           (also a ``ValueError``); ``reason`` says which check failed
        └── SharedMemoryFull        the segment directory (``/dev/shm``) has no room for
                                    ``size`` bytes; nothing was left behind

Messages name the input and the state that made the call fail.
"""

from __future__ import annotations

from patterns.errors import (
    AddressError,
    AddressInUse,
    BadReference,
    Closed,
    ConnectionRefused,
    ConsensusError,
    EncodeError,
    MalformedMessage,
    MessageError,
    MessageTooLarge,
    SegmentGone,
    SharedMemoryError,
    SharedMemoryFull,
    Timeout,
    TLSError,
    TransportError,
    Unauthenticated,
    WouldBlock,
)

__all__ = [
    "AddressError",
    "AddressInUse",
    "AuthenticationError",
    "BadReference",
    "Closed",
    "ConnectionRefused",
    "ConsensusError",
    "EncodeError",
    "InvalidBallot",
    "InvalidDecision",
    "InvalidDeliberation",
    "InvalidPollResult",
    "InvalidPosition",
    "LineError",
    "LineTaken",
    "MalformedMessage",
    "MemberCallRefused",
    "MessageError",
    "MessageTooLarge",
    "NameTaken",
    "PeerLost",
    "RemoteError",
    "RoomClosed",
    "RoomError",
    "RoomUnavailable",
    "SegmentGone",
    "SharedMemoryError",
    "SharedMemoryFull",
    "TLSError",
    "Timeout",
    "TransportError",
    "Unauthenticated",
    "WouldBlock",
]


class AuthenticationError(ConsensusError):
    """This side and its peer do not share a secret: one of them has none, or they differ.

    Raised by ``join`` (and the other dialing sides) within their timeout, instead of
    waiting in silence; the peer counts the refused frames as ``unauthenticated``."""


class InvalidBallot(ConsensusError, ValueError):
    """A ballot received from a peer does not have the shape of a ballot."""


class InvalidDecision(ConsensusError, ValueError):
    """A decision received from a peer does not have the shape of a decision."""


class InvalidDeliberation(ConsensusError, ValueError):
    """A deliberation result received from a peer does not have the shape of one."""


class InvalidPosition(ConsensusError, ValueError):
    """A deliberation position received from a peer does not have the shape of a position."""


class InvalidPollResult(ConsensusError, ValueError):
    """A poll result received from a peer does not have the shape of a poll result."""


class RoomError(ConsensusError):
    """Joining or staying in a room failed."""


class RoomUnavailable(RoomError):
    """The room's host could not be reached in time, or went away."""


class NameTaken(RoomError):
    """The host refused a join: a live member already holds the name."""


class MemberCallRefused(RoomError):
    """The host refused to run a member's poll or vote; ``reason`` is the host's reason."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class RoomClosed(RoomError):
    """The room ended under this member: the host closed it (or, with
    ``on_host_lost="exit"``, it fell silent or went away)."""


class LineError(ConsensusError):
    """An ask on a hotline did not get its answer."""


class PeerLost(LineError):
    """The peer went away while an ask waited for it."""


class LineTaken(LineError):
    """A hotline's listener refused this dialer: it already has a peer (pair1 keeps one)."""


class RemoteError(LineError):
    """The peer's handler raised while answering; ``type`` and ``message`` say what."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"the peer's handler failed: {type}: {message}")
        self.type = type
        self.message = message
