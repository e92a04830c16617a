"""nng-consensus: polls, votes, work sharing and direct lines for agents, over NNG.

The decision logic and the primitives agent code calls live here; the NNG pattern
layer they run on is :mod:`patterns`. Every exception is a
:class:`~patterns.ConsensusError` (the tree is drawn in :mod:`patterns._errors`).
"""

from patterns import (
    Closed,
    ConsensusError,
    EncodeError,
    MalformedMessage,
    MessageError,
    MessageTooLarge,
    Timeout,
    TransportError,
    WouldBlock,
)

__all__ = [
    "Closed",
    "ConsensusError",
    "EncodeError",
    "MalformedMessage",
    "MessageError",
    "MessageTooLarge",
    "Timeout",
    "TransportError",
    "WouldBlock",
]
