"""What :class:`~consensus.hotline.protocol.LineProtocol` tells its driver: the line's
state, its role, and one event per frame or tick.

Events are frozen values. The driver acts on them: it hands answers to askers, asks to
the handler, values to ``receive()``, sends the frames they carry, and fails the asks
listed in a :class:`Disconnected`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from consensus.runtime.context import HandlerContext
from patterns import Envelope

__all__ = [
    "Answer", "AskReceived", "Disconnected", "Event", "Greeted", "Ignored", "LineState", "Malformed",
    "Message", "PingReceived", "ProtocolStatistics", "Rehello", "Role",
]  # fmt: skip


class Role(Enum):
    LISTENER = "listener"
    DIALER = "dialer"


class LineState(Enum):
    WAITING = "waiting for a peer"
    GREETING = "connected, greeting: the peer's hello not in yet, or this side's not out yet"
    CONNECTED = "connected"
    TAKEN = "refused: the listener already has a peer"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, init=False)  # __init__ below: the generated one is slow
class AskReceived:
    """The peer asks ``value``; answer on ``pipe`` (the connection it came from)."""

    ask_id: int
    value: Any
    stream: bool
    deadline: float | None  # wall-clock time, as the peer sent it
    pipe: int
    sender: str = ""  # the peer's name, as its frame says

    def __init__(self, ask_id: int, value: Any, stream: bool, deadline: float | None, pipe: int,
                 sender: str = "") -> None:  # fmt: skip
        # One per ask received. A frozen dataclass's own __init__ sets each field through
        # object.__setattr__ (~0.75 µs here); the slots' descriptors set them directly
        # (~0.4 µs), as patterns' Envelope does. Still frozen: assignment raises as before.
        _set_ask_id(self, ask_id)
        _set_value(self, value)
        _set_stream(self, stream)
        _set_deadline(self, deadline)
        _set_pipe(self, pipe)
        _set_sender(self, sender)

    def handler_context(self) -> HandlerContext:
        """What :func:`consensus.handler_context` says to the handler answering this ask: the
        event is the context's source (:func:`~consensus.runtime.context.set_current_from`),
        so an ask whose handler never asks builds none."""
        return HandlerContext("ask", self.sender, ask_id=self.ask_id)


@dataclass(frozen=True, slots=True, init=False)  # __init__ below, as AskReceived's
class Answer:
    """The outcome of one of this side's asks, for its asker. ``kind`` is a frame kind
    (``reply``, ``chunk``, ``end``, ``error``) or what ended the ask without one
    (``violation``: a frame of the wrong kind; ``lost``, ``taken``, ``closed``, ``timeout``)."""

    ask_id: int
    kind: str
    body: Any

    def __init__(self, ask_id: int, kind: str, body: Any) -> None:
        _set_answer_id(self, ask_id)  # (one per answer received: ~0.55 -> ~0.3 µs)
        _set_kind(self, kind)
        _set_body(self, body)


_set_ask_id, _set_value, _set_stream, _set_deadline, _set_pipe, _set_sender = (
    AskReceived.__dict__[field.name].__set__ for field in dataclasses.fields(AskReceived)
)
_set_answer_id, _set_kind, _set_body = (Answer.__dict__[field.name].__set__ for field in dataclasses.fields(Answer))


@dataclass(frozen=True, slots=True)
class Message:
    value: Any


@dataclass(frozen=True, slots=True)
class PingReceived:
    pong: Envelope  # to send back


@dataclass(frozen=True, slots=True)
class Greeted:
    """The peer said hello. ``hello`` is this side's, if not made yet: the line is connected
    once the driver reports it sent (``LineProtocol.hello_sent``), at once when there is none
    and every hello made before for this connection went out; ``lost`` the asks that failed
    with the connection this one replaced (its close not yet noticed: they fail as ``lost``)."""

    hello: Envelope | None
    lost: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Rehello:
    """A sealed line's hello that did not echo this end's nonce for its connection: ``hello``
    is this side's, echoing the sender's nonce, to send back and report sent
    (``LineProtocol.hello_sent``: a live peer connects on it; the line does not yet)."""

    hello: Envelope


@dataclass(frozen=True, slots=True)
class Ignored:
    """A frame with nothing to do: a pong, a repeated hello, a stale answer (counted)."""

    why: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that breaks the protocol: counted and dropped; ``reason`` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection ``pipe`` ended (closed, refused, or the peer went silent); the asks
    in ``asks`` failed with ``Answer(kind, reason)``. With ``silent``, the driver closes
    the connection itself."""

    pipe: int
    reason: str
    kind: str  # "lost" or "taken"
    asks: tuple[int, ...]
    silent: bool = False


Event = AskReceived | Answer | Message | PingReceived | Greeted | Rehello | Ignored | Malformed


@dataclass(frozen=True, slots=True)
class ProtocolStatistics:
    state: LineState
    connections: int  # greeted connections since the line opened
    refused: int  # connections closed before the peer's hello (a dialer: the line is taken)
    asks_served: int  # asks from the peer this side answered
    malformed: int
    silent_disconnects: int
    stale_hellos: int  # sealed lines: hellos that did not echo this end's nonce (docs/statistics.md)
