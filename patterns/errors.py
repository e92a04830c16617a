"""The transport half of nng-consensus's one exception tree.

The whole tree, with the room, line and decision errors that ``consensus`` adds, is
drawn in :mod:`consensus.errors`.

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
    │   │                           is "size", "cbor", "shape", "version" or "body"
    │   └── Unauthenticated         a frame failed its socket's guard (wrong or no secret,
    │                               altered, replayed, or a sender speaking for another);
    │                               counted apart, as ``unauthenticated``
    ├── (room, line and decision errors: see :mod:`consensus.errors`)
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

__all__ = [
    "AddressError",
    "AddressInUse",
    "BadReference",
    "Closed",
    "ConnectionRefused",
    "ConsensusError",
    "EncodeError",
    "MalformedMessage",
    "MessageError",
    "MessageTooLarge",
    "SegmentGone",
    "SharedMemoryError",
    "SharedMemoryFull",
    "TLSError",
    "Timeout",
    "TransportError",
    "Unauthenticated",
    "WouldBlock",
]


class ConsensusError(Exception):
    """Root of every exception raised by nng-consensus."""


class Closed(ConsensusError):
    """The object was closed before the call, or while the call was waiting."""


class WouldBlock(ConsensusError):
    """A ``*_nowait`` operation could not complete immediately.

    ``frame``, when set, is the frame a send wrote (sealed, on a socket with a guard) that
    NNG would not take: send it with ``send_bytes`` once the sender may wait, rather than
    writing (and sealing) it again."""

    def __init__(self, message: str, *, frame: bytes | None = None) -> None:
        super().__init__(message)
        self.frame = frame


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


class Unauthenticated(MalformedMessage):
    """A received frame failed its socket's guard (see :mod:`patterns._guard`).

    It was dropped before decoding (or, for ``"impersonation"`` and ``"kind"``, right
    after: the sender name or kind does not match the key it was sealed with) and is
    counted in ``statistics().unauthenticated``, not ``malformed``. ``reason`` is one of
    ``"format"`` (not a sealed frame), ``"key"`` (sealed with a key this socket does not
    know), ``"tag"`` (the seal does not match: wrong secret, or altered),
    ``"replay"`` (a sequence number already seen, or too old), ``"impersonation"``,
    ``"kind"``.
    """


class SharedMemoryError(ConsensusError):
    """A shared-memory segment could not be created, attached or read.

    ``name`` is the segment's file name (``None`` when the input had no usable name)
    and ``reason`` a short machine-friendly tag saying which step or check failed.
    Raised as this class itself with ``"create"`` (the file could not be made: no such
    directory, no permission), ``"map"`` (``mmap`` failed) or ``"locked"`` (another
    process held the segment's lock for seconds); the subclasses cover the rest.
    """

    def __init__(self, message: str, *, name: str | None, reason: str) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason


class SegmentGone(SharedMemoryError):
    """The referenced segment no longer exists for this receiver.

    ``reason`` is ``"missing"`` (no such file: never made here, already freed, or swept),
    ``"released"`` (every receiver it was made for has attached), ``"expired"`` (its
    lease passed before this receiver attached), ``"sender-gone"`` (its sender exited,
    or closed the payload, before this receiver attached: the memory went with it) or
    ``"reused"`` (its sender had already reused the memory for a later payload).
    """


class BadReference(SharedMemoryError, ValueError):
    """A shared-memory reference is malformed, or does not match the segment it names.

    ``reason`` is ``"shape"``, ``"name"``, ``"token"``, ``"range"`` (checks of the
    reference itself), ``"not-a-file"``, ``"owner"`` (another user's file), ``"mode"``
    (a file open to the group or others), ``"truncated"``, ``"magic"``, ``"version"``,
    ``"header"`` or ``"mismatch"`` (checks of the file it names, made before any payload
    byte is touched), ``"unsealed"`` (the payload is not a memfd sealed against shrinking,
    which its sender could truncate under the receiver).
    """


class SharedMemoryFull(SharedMemoryError):
    """The segment directory has no room for a new segment of ``size`` bytes.

    Space is reserved before anything is written, so this is raised instead of the
    process dying of SIGBUS; the partial file is removed. ``directory`` is where the
    segment was to be made.
    """

    def __init__(self, message: str, *, name: str | None, size: int, directory: str) -> None:
        super().__init__(message, name=name, reason="space")
        self.size = size
        self.directory = directory
