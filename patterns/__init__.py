"""The NNG pattern layer of nng-consensus: trio-native sockets speaking the CBOR envelope.

This package is the only place that imports pynng. Each pattern is an async context
manager (``async with Pair(listen=...) as line:``); options are in seconds; pynng
exceptions never escape (see :mod:`patterns.errors` for the exception tree).
"""

from patterns._bus import Bus
from patterns._nng import TLSConfig, TLSMode
from patterns._pair import Pair
from patterns._peers import Peer
from patterns._pipeline import Pull, Push
from patterns._respondent import IncomingSurvey, Respondent
from patterns._socket import BaseSocket
from patterns._stats import SocketStatistics
from patterns._survey import Surveyor, SurveyReplies
from patterns._wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_SENDER_LENGTH,
    VERSION,
    Envelope,
    decode,
    decode_body,
    encode,
    encode_body,
)
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
    WouldBlock,
)
from patterns.shm.codec import SharedMemory, shared_buffer
from patterns.shm.segment import SharedBuffer
from patterns.shm.sweep import sweep as sweep_shared_memory

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_SENDER_LENGTH",
    "VERSION",
    "AddressError",
    "AddressInUse",
    "BadReference",
    "BaseSocket",
    "Bus",
    "Closed",
    "ConnectionRefused",
    "ConsensusError",
    "EncodeError",
    "Envelope",
    "IncomingSurvey",
    "MalformedMessage",
    "MessageError",
    "MessageTooLarge",
    "Pair",
    "Peer",
    "Pull",
    "Push",
    "Respondent",
    "SegmentGone",
    "SharedBuffer",
    "SharedMemory",
    "SharedMemoryError",
    "SharedMemoryFull",
    "SocketStatistics",
    "SurveyReplies",
    "Surveyor",
    "TLSConfig",
    "TLSError",
    "TLSMode",
    "Timeout",
    "TransportError",
    "WouldBlock",
    "decode",
    "decode_body",
    "encode",
    "encode_body",
    "shared_buffer",
    "sweep_shared_memory",
]
