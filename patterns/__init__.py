"""The NNG pattern layer of nng-consensus: trio-native sockets speaking the CBOR envelope.

This package is the only place that imports pynng. Each pattern is an async context
manager (``async with Pair(listen=...) as line:``); options are in seconds; pynng
exceptions never escape (see :mod:`patterns.errors` for the exception tree).
"""

from patterns._bus import Bus
from patterns.errors import (
    AddressError,
    AddressInUse,
    BadReference,
    Closed,
    ConnectionRefused,
    ConsensusError,
    EncodeError,
    LineError,
    MalformedMessage,
    MessageError,
    MessageTooLarge,
    NameTaken,
    PeerLost,
    RemoteError,
    RoomError,
    RoomUnavailable,
    SegmentGone,
    SharedMemoryError,
    SharedMemoryFull,
    Timeout,
    TLSError,
    TransportError,
    WouldBlock,
)
from patterns._nng import TLSConfig, TLSMode
from patterns._pair import Pair
from patterns._peers import Peer
from patterns._pipeline import Pull, Push
from patterns._respondent import IncomingSurvey, Respondent
from patterns.shm.codec import SharedMemory, shared_buffer
from patterns.shm.segment import SharedBuffer
from patterns.shm.sweep import sweep as sweep_shared_memory
from patterns._socket import BaseSocket
from patterns._stats import SocketStatistics
from patterns._survey import Surveyor, SurveyReplies
from patterns._wire import DEFAULT_MAX_MESSAGE_SIZE, VERSION, Envelope, decode, decode_body, encode, encode_body

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
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
    "LineError",
    "MalformedMessage",
    "MessageError",
    "MessageTooLarge",
    "NameTaken",
    "Pair",
    "Peer",
    "PeerLost",
    "Pull",
    "Push",
    "RemoteError",
    "Respondent",
    "RoomError",
    "RoomUnavailable",
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
