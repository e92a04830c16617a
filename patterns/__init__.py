"""The NNG pattern layer of nng-consensus: trio-native sockets speaking the CBOR envelope.

This package is the only place that imports pynng. Each pattern is an async context
manager (``async with Pair(listen=...) as line:``); options are in seconds; pynng
exceptions never escape (see :mod:`patterns.errors` for the exception tree).

Everything an application uses is importable from here, whatever private module
defines it:

* the patterns: :class:`Pair`, :class:`Bus`, :class:`Push`, :class:`Pull`,
  :class:`Surveyor` (its :class:`SurveyReplies`), :class:`Respondent` (its
  :class:`IncomingSurvey`), all :class:`BaseSocket`\\s, with :class:`TLSConfig` /
  :class:`TLSMode` for ``tls+tcp://``;
* what sockets hand out: :class:`Peer` and :class:`PeerSet` (``sock.peers_state``),
  the :class:`SocketStatistics` record of ``statistics()``;
* the wire: :class:`Envelope`, the pure codec :func:`encode` / :func:`decode` (and
  ``*_body``) and its limits;
* shared memory: :class:`SharedMemory` (the ``shared_memory=`` policy),
  :func:`shared_buffer` / :class:`SharedBuffer`, :func:`sweep_shared_memory` and its
  :class:`SweepReport`; the rest is in :mod:`patterns.shm`;
* every exception, from :mod:`patterns.errors`.

Time: every public ``deadline`` here is on trio's clock (``trio.current_time()``),
except :attr:`Envelope.deadline`, which is the wire's field (seconds since the Unix
epoch) because the codec reads no clock.
"""

from patterns._bus import Bus
from patterns._codec_plain import Encoded
from patterns._guard import FirstOpened, Guard, Opened
from patterns._nng import TLSConfig, TLSMode
from patterns._pair import Fields, Pair
from patterns._peers import Peer, PeerSet
from patterns._pipeline import Pull, Push
from patterns._respondent import IncomingSurvey, Respondent
from patterns._shape import HOLE, Shape
from patterns._socket import BaseSocket
from patterns._stats import SocketStatistics
from patterns._stream import Unsent
from patterns._survey import Surveyor, SurveyReplies
from patterns._taker import SurveyTaker, Taken
from patterns._vouched import encode_vouched
from patterns._wire import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_DEPTH,
    MAX_KIND_LENGTH,
    MAX_SENDER_LENGTH,
    VERSION,
    Envelope,
    decode,
    decode_body,
    encode,
    encode_body,
    unencodable_part,
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
    Unauthenticated,
    WouldBlock,
)
from patterns.shm import SharedBuffer, SharedMemory, SweepReport, shared_buffer
from patterns.shm import sweep as sweep_shared_memory

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HOLE",
    "MAX_DEPTH",
    "MAX_KIND_LENGTH",
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
    "Encoded",
    "Envelope",
    "Fields",
    "FirstOpened",
    "Guard",
    "IncomingSurvey",
    "MalformedMessage",
    "MessageError",
    "MessageTooLarge",
    "Opened",
    "Pair",
    "Peer",
    "PeerSet",
    "Pull",
    "Push",
    "Respondent",
    "SegmentGone",
    "Shape",
    "SharedBuffer",
    "SharedMemory",
    "SharedMemoryError",
    "SharedMemoryFull",
    "SocketStatistics",
    "SurveyReplies",
    "SurveyTaker",
    "Surveyor",
    "SweepReport",
    "TLSConfig",
    "TLSError",
    "TLSMode",
    "Taken",
    "Timeout",
    "TransportError",
    "Unauthenticated",
    "Unsent",
    "WouldBlock",
    "decode",
    "decode_body",
    "encode",
    "encode_body",
    "encode_vouched",
    "shared_buffer",
    "sweep_shared_memory",
    "unencodable_part",
]
