"""The one exception tree of nng-consensus, shared by ``patterns`` and ``consensus``.

Everything this toolkit raises on purpose derives from :class:`ConsensusError`;
pynng's exceptions never escape (they are translated where pynng is called, with
``raise ... from`` so the original stays in ``__cause__``)::

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
    │                               ``ValueError``); counted in ``statistics()``; ``reason``
    │                               is "size", "cbor", "shape", "version" or "body"
    ├── InvalidBallot               a ballot's fields are wrong (consensus; also ``ValueError``)
    ├── InvalidDecision             a decision's fields are wrong (consensus; also ``ValueError``)
    ├── RoomError                   room membership failed (consensus)
    │   ├── RoomUnavailable         the host could not be reached, or went away
    │   └── NameTaken               a live member already holds that name
    └── LineError                   an ask on a hotline failed (consensus)
        ├── PeerLost                the peer went away (connection dropped, or silent past its
        │                           heartbeats) while the ask waited
        └── RemoteError             the peer's handler raised; ``type`` and ``message`` say what

Messages name the input and the state that made the call fail.
"""

from __future__ import annotations

__all__ = [
    "AddressError",
    "AddressInUse",
    "Closed",
    "ConnectionRefused",
    "ConsensusError",
    "EncodeError",
    "LineError",
    "MalformedMessage",
    "MessageError",
    "MessageTooLarge",
    "NameTaken",
    "PeerLost",
    "RemoteError",
    "RoomError",
    "RoomUnavailable",
    "TLSError",
    "Timeout",
    "TransportError",
    "WouldBlock",
]


class ConsensusError(Exception):
    """Root of every exception raised by nng-consensus."""


class Closed(ConsensusError):
    """The object was closed before the call, or while the call was waiting."""


class WouldBlock(ConsensusError):
    """A ``*_nowait`` operation could not complete immediately."""


class Timeout(ConsensusError, TimeoutError):
    """A protocol deadline passed before the operation completed."""


class TransportError(ConsensusError):
    """NNG reported a failure.

    ``errno`` is NNG's error number (``None`` when the failure was detected here).
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class AddressError(TransportError):
    """The address is malformed or its transport is not supported."""


class AddressInUse(AddressError):
    """Another socket already listens at the address."""


class ConnectionRefused(TransportError):
    """A synchronous dial found nobody listening."""


class TLSError(TransportError):
    """TLS configuration was rejected, or a TLS handshake or peer check failed."""


class MessageError(ConsensusError):
    """A message could not be built or read."""


class EncodeError(MessageError, TypeError):
    """A value cannot be encoded as CBOR by this toolkit."""


class MessageTooLarge(MessageError):
    """An outgoing message is larger than the socket's ``max_message_size``."""


class MalformedMessage(MessageError, ValueError):
    """Bytes (or a message body) received from a peer were rejected.

    Raised for data that is not CBOR, has the wrong shape, an unknown version, or
    exceeds the size limit. ``reason`` is a short machine-friendly tag (``"size"``,
    ``"cbor"``, ``"shape"``, ``"version"``; ``"body"`` when a well-formed envelope's
    body does not fit its kind) and ``size`` the frame length in bytes (0 when the
    check ran on an already decoded body).
    """

    def __init__(self, message: str, *, reason: str, size: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.size = size


class RoomError(ConsensusError):
    """Joining or staying in a room failed."""


class RoomUnavailable(RoomError):
    """The room's host could not be reached in time, or went away."""


class NameTaken(RoomError):
    """The host refused a join: a live member already holds the name."""


class LineError(ConsensusError):
    """An ask on a hotline did not get its answer."""


class PeerLost(LineError):
    """The peer went away while an ask waited for it."""


class RemoteError(LineError):
    """The peer's handler raised while answering; ``type`` and ``message`` say what."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"the peer's handler failed: {type}: {message}")
        self.type = type
        self.message = message
