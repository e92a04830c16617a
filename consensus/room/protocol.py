"""The room protocol: message kinds and strict checks of the bodies peers send.

Every body that arrives from a peer goes through one of the ``parse_*`` functions
here before the room acts on it; a wrong shape raises :class:`MalformedMessage`
with ``reason="body"``, which the drivers count and log, and nothing else happens.
``docs/rooms.md`` describes the same messages for implementers in other languages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from consensus.failure import Failure
from consensus.room.roster import MAX_NAME_LENGTH, check_name
from patterns import Envelope, MalformedMessage

__all__ = [
    "ANSWER",
    "BALLOT",
    "DECISION",
    "ERROR",
    "HEARTBEAT",
    "JOIN",
    "LEAVE",
    "LINE",
    "POLL",
    "REFUSE",
    "ROSTER",
    "SAY",
    "VOTE",
    "WELCOME",
    "Hello",
    "parse_hello",
    "parse_line",
    "parse_members",
    "parse_reply",
]

# control bus (star around the host)
JOIN: Final = "join"  # member -> host  {"name", "token", "mesh"}
WELCOME: Final = "welcome"  # host -> joiner {"name", "token", "members", "heartbeat"}
REFUSE: Final = "refuse"  # host -> joiner {"name", "token", "reason"}
ROSTER: Final = "roster"  # host -> all    {"members", "version"}
HEARTBEAT: Final = "heartbeat"  # member -> host {"name", "token"}
LEAVE: Final = "leave"  # member -> host {"name", "token"}
DECISION: Final = "decision"  # host -> all {"vote", "motion", "decision"}
# survey (host asks, members reply)
POLL: Final = "poll"  # {"question"}
VOTE: Final = "vote"  # {"vote", "motion", "options"}
ANSWER: Final = "answer"  # reply {"answer"}
BALLOT: Final = "ballot"  # reply: a ballot (see consensus.decide.ballot)
ERROR: Final = "error"  # reply {"type", "message"}
# mesh bus (everyone to everyone)
SAY: Final = "say"  # any value
LINE: Final = "line"  # hotline set-up, addressed to one member: {"to"} asks the member whose
#                       name sorts first to listen; {"to", "address"} is its answer (dial this)

MAX_ADDRESS_LENGTH: Final = 512
MAX_ERROR_TEXT: Final = 2000


def _bad(envelope: Envelope, detail: str) -> MalformedMessage:
    return MalformedMessage(
        f"a {envelope.kind!r} message from {envelope.sender!r} is malformed: {detail}", reason="body", size=0
    )


def _field(envelope: Envelope, body: Mapping[Any, Any], key: str, kind: type, limit: int = 0) -> Any:
    value = body.get(key)
    if type(value) is not kind and not (kind is float and type(value) is int):
        raise _bad(envelope, f"field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    if isinstance(value, str) and not 0 < len(value) <= limit:
        raise _bad(envelope, f"field {key!r} must have 1..{limit} characters")
    if kind is int and isinstance(value, int) and not 0 <= value < 2**64:
        raise _bad(envelope, f"field {key!r} must be an unsigned 64-bit integer")
    if kind is float and isinstance(value, (int, float)) and not math.isfinite(value):
        raise _bad(envelope, f"field {key!r} must be finite")
    return value


def _body(envelope: Envelope) -> Mapping[Any, Any]:
    if not isinstance(envelope.body, dict):
        raise _bad(envelope, f"the body must be a map, got {type(envelope.body).__name__}")
    return envelope.body


@dataclass(frozen=True, slots=True)
class Hello:
    """The common part of join, heartbeat and leave: who, and which incarnation."""

    name: str
    token: int
    mesh: str = ""


def parse_hello(envelope: Envelope, *, with_mesh: bool = False) -> Hello:
    body = _body(envelope)
    name = _field(envelope, body, "name", str, MAX_NAME_LENGTH)
    try:
        check_name(name)
    except ValueError as exc:
        raise _bad(envelope, str(exc)) from None
    token = _field(envelope, body, "token", int)
    mesh = _mesh(envelope, _field(envelope, body, "mesh", str, MAX_ADDRESS_LENGTH)) if with_mesh else ""
    return Hello(name, token, mesh)


_MESH_SCHEMES: Final = ("tcp", "tcp4", "tcp6", "tls+tcp", "ipc", "inproc")


def _mesh(envelope: Envelope, address: str, field: str = "mesh") -> str:
    """A mesh address others will dial: a room scheme, a path or host, a port for tcp."""
    scheme, sep, rest = address.partition("://")
    port = rest.rpartition(":")[2]
    if (
        not sep
        or not rest
        or scheme not in _MESH_SCHEMES
        or not address.isprintable()
        or (scheme not in ("ipc", "inproc") and not (port.isdigit() and 0 < int(port) < 65536))
    ):
        raise _bad(envelope, f"field {field!r} is not an address members can dial: {address[:80]!r}")
    return address


def parse_members(envelope: Envelope, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str)
        and isinstance(v, str)
        and len(k) <= MAX_NAME_LENGTH
        and len(v) <= MAX_ADDRESS_LENGTH
        for k, v in value.items()
    ):
        raise _bad(envelope, "'members' must map names to mesh addresses")
    return value


def parse_reply(envelope: Envelope) -> tuple[str, Any]:
    """Classify a survey reply: ``("answer", value)``, ``("ballot", raw)`` or ``("error", Failure)``."""
    body = _body(envelope)
    if envelope.kind == ANSWER:
        if "answer" not in body:
            raise _bad(envelope, "an answer needs the field 'answer'")
        return ANSWER, body["answer"]
    if envelope.kind == BALLOT:
        return BALLOT, body
    if envelope.kind == ERROR:
        kind = _field(envelope, body, "type", str, 200)
        message = body.get("message", "")
        if not isinstance(message, str):
            raise _bad(envelope, "field 'message' must be text")
        return ERROR, Failure(kind, message[:MAX_ERROR_TEXT])
    raise _bad(envelope, f"unknown reply kind {envelope.kind!r}")


def parse_line(envelope: Envelope) -> tuple[str, str | None]:
    """A hotline set-up message: ``(to, address)``; ``address`` is None in a request."""
    body = _body(envelope)
    to = _field(envelope, body, "to", str, MAX_NAME_LENGTH)
    if "address" not in body:
        return to, None
    return to, _mesh(envelope, _field(envelope, body, "address", str, MAX_ADDRESS_LENGTH), "address")
