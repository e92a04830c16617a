"""Directed messages from the host to one member: ``room.ask(name, ...)`` and ``room.send(name, ...)``.

The host addresses one member by name and token on the control bus (as it addresses a
welcome); that member's ``on_ask`` handler answers, and the answer comes back on the
control bus. Every other member drops the frame unread: no agent code filters commands
meant for someone else. Wire bodies (``docs/rooms.md`` section 2.9)::

    direct        host -> one member  {"name", "token", "id", "value", "reply": bool[, "timeout"]}
    direct-reply  member -> host      {"name", "token", "id", "value"}
                                      {"name", "token", "id", "error": {"type", "message"}}

``reply`` is true for an ask (the member answers within ``timeout`` seconds) and false
for a send (the member's handler runs; its result is dropped). :class:`DirectAsks` is the
host's table of asks waiting for their answer (pure: the driver waits, this counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from consensus.failure import Failure
from consensus.room.protocol import MAX_ERROR_TEXT, _bad, _body, _field, parse_hello
from patterns import Envelope

__all__ = ["DIRECT", "DIRECT_REPLY", "MAX_DIRECT_TIMEOUT", "Direct", "DirectAsks", "DirectReply", "direct_body",
           "parse_direct", "parse_direct_reply", "reply_body"]  # fmt: skip

DIRECT: Final = "direct"  # host -> one member
DIRECT_REPLY: Final = "direct-reply"  # member -> host
MAX_DIRECT_TIMEOUT: Final = 86400.0  # a day, as a member's call


@dataclass(frozen=True, slots=True)
class Direct:
    """A directed message as its member reads it (``reply``: an ask, to be answered)."""

    name: str
    token: int
    direct_id: int
    value: Any
    reply: bool
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class DirectReply:
    """A member's answer to an ask: ``ok`` with its ``value``, or not with a :class:`Failure`."""

    name: str
    token: int
    direct_id: int
    ok: bool
    value: Any


def direct_body(name: str, token: int, direct_id: int, value: Any, *, reply: bool,
                timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"name": name, "token": token, "id": direct_id, "value": value, "reply": reply}
    if timeout is not None:
        body["timeout"] = timeout
    return body


def parse_direct(envelope: Envelope) -> Direct:
    """Read a ``direct`` frame; raises ``MalformedMessage``."""
    hello = parse_hello(envelope)
    body = _body(envelope)
    direct_id = _field(envelope, body, "id", int)
    reply = body.get("reply")
    if type(reply) is not bool or "value" not in body:
        raise _bad(envelope, "a direct message needs a 'value' and a boolean 'reply'")
    timeout = body.get("timeout")
    if timeout is not None and not (
        type(timeout) in (int, float) and math.isfinite(timeout) and 0 < timeout <= MAX_DIRECT_TIMEOUT
    ):
        raise _bad(envelope, f"'timeout' must be a number of seconds in (0, {MAX_DIRECT_TIMEOUT:g}]")
    return Direct(hello.name, hello.token, direct_id, body["value"], reply,
                  None if timeout is None else float(timeout))  # fmt: skip


def reply_body(name: str, token: int, direct_id: int, outcome: tuple[bool, Any]) -> dict[str, Any]:
    """The ``direct-reply`` body for a handler's ``(True, value)`` or ``(False, Failure)``."""
    ok, value = outcome
    body: dict[str, Any] = {"name": name, "token": token, "id": direct_id}
    if ok:
        return body | {"value": value}
    failure = value if isinstance(value, Failure) else Failure("Error", str(value))
    return body | {"error": Failure(failure.type[:200], failure.message[:MAX_ERROR_TEXT]).to_wire()}


def parse_direct_reply(envelope: Envelope) -> DirectReply:
    """Read a ``direct-reply``; raises ``MalformedMessage``."""
    hello = parse_hello(envelope)
    body = _body(envelope)
    direct_id = _field(envelope, body, "id", int)
    if ("value" in body) == ("error" in body):
        raise _bad(envelope, "a direct reply holds exactly one of 'value' and 'error'")
    if "value" in body:
        return DirectReply(hello.name, hello.token, direct_id, True, body["value"])
    error = body["error"]
    if not (isinstance(error, dict) and isinstance(error.get("type"), str) and 0 < len(error["type"]) <= 200
            and isinstance(error.get("message", ""), str)):  # fmt: skip
        raise _bad(envelope, "'error' must be a map {type, message} of text")
    failure = Failure(error["type"], error.get("message", "")[:MAX_ERROR_TEXT])
    return DirectReply(hello.name, hello.token, direct_id, False, failure)


class DirectAsks:
    """The host's asks waiting for an answer: id -> (member name, token)."""

    def __init__(self) -> None:
        self._next = 0
        self._waiting: dict[int, tuple[str, int]] = {}

    def open(self, name: str, token: int) -> int:
        """A new ask to ``name`` (holding ``token``): its id."""
        self._next += 1
        self._waiting[self._next] = (name, token)
        return self._next

    def answer(self, reply: DirectReply) -> bool:
        """True when ``reply`` answers an ask still waiting, from the member asked."""
        if self._waiting.get(reply.direct_id) != (reply.name, reply.token):
            return False
        del self._waiting[reply.direct_id]
        return True

    def forget(self, direct_id: int) -> None:
        """The asker stopped waiting (answered, timed out, cancelled): a later answer is late."""
        self._waiting.pop(direct_id, None)

    def asked(self, names: set[str]) -> list[tuple[int, str]]:
        """The asks waiting for any of ``names`` (members gone): (id, name)."""
        return [(ident, name) for ident, (name, _) in self._waiting.items() if name in names]
