"""The room protocol: message kinds and strict checks of the bodies peers send.

Every body that arrives from a peer goes through one of the ``parse_*`` functions
here before the room acts on it; a wrong shape raises :class:`MalformedMessage`
with ``reason="body"``, which the drivers count and log, and nothing else happens.
``docs/rooms.md`` describes the same messages for implementers in other languages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from consensus.decide.ballot import Ballot
from consensus.decide.decision import Decision
from consensus.errors import InvalidDecision
from consensus.failure import Failure
from consensus.room.addresses import dialable
from consensus.room.roster import MAX_NAME_LENGTH, check_name
from patterns import Envelope, MalformedMessage

__all__ = [
    "ANSWER",
    "BALLOT",
    "BEAT",
    "CLOSE",
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
    "RosterInfo",
    "Survey",
    "Welcome",
    "answer_body",
    "ballot_body",
    "beat_body",
    "close_body",
    "decision_body",
    "dialable",
    "error_body",
    "hello_body",
    "line_body",
    "parse_beat",
    "parse_close",
    "parse_decision",
    "parse_hello",
    "parse_line",
    "parse_members",
    "parse_refuse",
    "parse_reply",
    "parse_roster",
    "parse_survey",
    "parse_welcome",
    "poll_body",
    "refuse_body",
    "roster_body",
    "vote_body",
    "welcome_body",
]

# control bus (star around the host)
JOIN: Final = "join"  # member -> host  {"name", "token", "mesh"[, "refs", "roster", "decided"]}
WELCOME: Final = "welcome"  # host -> joiner {"name", "token", "members", "heartbeat", "mesh"[, "refs"]}
REFUSE: Final = "refuse"  # host -> joiner {"name", "token", "reason"}
ROSTER: Final = "roster"  # host -> all    {"members", "version"[, "refs"]}
HEARTBEAT: Final = "heartbeat"  # member -> host {"name", "token", "mesh"[, "refs", "roster", "decided"]}
LEAVE: Final = "leave"  # member -> host {"name", "token"}
DECISION: Final = "decision"  # host -> all {"vote", "motion", "decision"}
BEAT: Final = "beat"  # host -> all {"heartbeat"}: the host is alive (every heartbeat interval)
CLOSE: Final = "close"  # host -> all {"reason"}: the room is closed (sent a few times)
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
MIN_HEARTBEAT: Final = 0.01  # a welcome's heartbeat outside this range is ignored
MAX_HEARTBEAT: Final = 3600.0


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
    """The common part of join, heartbeat and leave: who, and which incarnation.

    ``mesh`` is only checked to be text here: whether it is *dialable* is the host's
    decision (:func:`dialable`), answered with a ``refuse`` rather than dropped."""

    name: str
    token: int
    mesh: str = ""
    refs: bool = True  # False: this member takes no shared-memory references
    observer: bool = False  # True: this member only watches (never polled, never votes)
    roster: int | None = None  # the roster version the member holds (None: it reports none, an older peer)
    decided: bool = False  # True: it reads a deliberation's decision from the result frame marked "decided"


def hello_body(name: str, token: int, mesh: str | None = None, *, refs: bool = True, observer: bool = False,
               roster: int | None = None, decided: bool = False) -> dict[str, Any]:  # fmt: skip
    """The body of a join or heartbeat (with ``mesh``, and ``roster``: the version held;
    ``decided``: the member reads a deliberation's decision from its marked result) or of a leave."""
    body: dict[str, Any] = {"name": name, "token": token}
    if mesh is not None:
        body["mesh"] = mesh
        if not refs:
            body["refs"] = False
        if observer:
            body["observer"] = True
        if roster is not None:
            body["roster"] = roster
        if decided:
            body["decided"] = True
    return body


def parse_hello(envelope: Envelope, *, with_mesh: bool = False) -> Hello:
    body = _body(envelope)
    name = _field(envelope, body, "name", str, MAX_NAME_LENGTH)
    try:
        check_name(name)
    except ValueError as exc:
        raise _bad(envelope, str(exc)) from None
    token = _field(envelope, body, "token", int)
    if not with_mesh:
        return Hello(name, token)
    mesh = _field(envelope, body, "mesh", str, MAX_ADDRESS_LENGTH)
    refs, observer, roster = body.get("refs", True), body.get("observer", False), body.get("roster")
    decided = body.get("decided", False)
    if type(refs) is not bool or type(observer) is not bool or type(decided) is not bool:
        raise _bad(envelope, "fields 'refs', 'observer' and 'decided' must be booleans")
    if roster is not None and not (type(roster) is int and 0 <= roster < 2**64):
        raise _bad(envelope, f"field 'roster' must be an unsigned 64-bit integer, got {roster!r:.40}")
    return Hello(name, token, mesh, refs, observer, roster, decided)


def _mesh(envelope: Envelope, address: str, field: str = "mesh") -> str:
    why = dialable(address)
    if why is not None:
        raise _bad(envelope, f"field {field!r} is not an address members can dial: {why}")
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


# ---------------------------------------------------------------- host -> members (control)
@dataclass(frozen=True, slots=True)
class Welcome:
    name: str
    token: int
    members: dict[str, str]
    heartbeat: float | None  # None: absent or outside MIN_HEARTBEAT..MAX_HEARTBEAT (ignored)
    refs: bool
    observers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RosterInfo:
    members: dict[str, str]
    refs: bool  # False: some member takes no shared-memory references; broadcast inline
    observers: frozenset[str] = frozenset()  # the members (of ``members``) who only watch
    version: int | None = None  # goes up at every change of membership (None: absent)


def welcome_body(name: str, token: int, members: dict[str, str], *, heartbeat: float, mesh: str,
                 refs: bool, observers: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"name": name, "token": token, "members": members, "heartbeat": heartbeat,
                            "mesh": mesh}  # fmt: skip
    if observers:
        body["observers"] = list(observers)
    return body if refs else body | {"refs": False}


def refuse_body(name: str, token: int, reason: str) -> dict[str, Any]:
    return {"name": name, "token": token, "reason": reason}


def roster_body(members: dict[str, str], version: int, *, refs: bool,
                observers: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"members": members, "version": version}
    if observers:
        body["observers"] = list(observers)
    return body if refs else body | {"refs": False}


def _observers(envelope: Envelope, body: Mapping[Any, Any]) -> frozenset[str]:
    value = body.get("observers", [])
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _bad(envelope, "'observers' must be a list of member names")
    return frozenset(value)


def decision_body(vote_id: int, motion: Any, decision: Decision) -> dict[str, Any]:
    return {"vote": vote_id, "motion": motion, "decision": decision.to_wire()}


def _refs(body: Mapping[Any, Any]) -> bool:
    return body.get("refs", True) is not False  # only an explicit false turns references off


def parse_welcome(envelope: Envelope) -> Welcome:
    hello = parse_hello(envelope)
    body = _body(envelope)
    members = parse_members(envelope, body.get("members"))
    beat = body.get("heartbeat")
    heartbeat = None
    if (
        isinstance(beat, (int, float))
        and not isinstance(beat, bool)
        and MIN_HEARTBEAT <= beat <= MAX_HEARTBEAT
    ):
        heartbeat = float(beat)
    return Welcome(hello.name, hello.token, members, heartbeat, _refs(body), _observers(envelope, body))


def parse_refuse(envelope: Envelope) -> tuple[Hello, str]:
    """A refusal: whom it is for, and the reason as text (whatever the host sent)."""
    hello = parse_hello(envelope)
    reason = _body(envelope).get("reason")
    return hello, reason[:MAX_ERROR_TEXT] if isinstance(reason, str) and reason else "refused"


def parse_roster(envelope: Envelope) -> RosterInfo:
    body = _body(envelope)
    version = None if body.get("version") is None else _field(envelope, body, "version", int)
    return RosterInfo(parse_members(envelope, body.get("members")), _refs(body), _observers(envelope, body),
                      version)  # fmt: skip


def beat_body(heartbeat: float) -> dict[str, Any]:
    return {"heartbeat": heartbeat}


def parse_beat(envelope: Envelope) -> float | None:
    """The host's heartbeat interval a ``beat`` announces (None: absent or out of range)."""
    beat = _body(envelope).get("heartbeat")
    if (
        isinstance(beat, (int, float))
        and not isinstance(beat, bool)
        and MIN_HEARTBEAT <= beat <= MAX_HEARTBEAT
    ):
        return float(beat)
    return None


def close_body(reason: str) -> dict[str, Any]:
    return {"reason": reason}


def parse_close(envelope: Envelope) -> str:
    """Why the host closed the room (whatever text it sent; a default otherwise)."""
    reason = envelope.body.get("reason") if isinstance(envelope.body, dict) else None
    return reason[:MAX_ERROR_TEXT] if isinstance(reason, str) and reason else "the host closed the room"


def parse_decision(envelope: Envelope) -> Decision:
    try:
        return Decision.from_wire(_body(envelope).get("decision"))
    except InvalidDecision as exc:
        raise _bad(envelope, str(exc)) from exc


# ---------------------------------------------------------------- surveys and replies
@dataclass(frozen=True, slots=True)
class Survey:
    """A poll (``question``) or a vote (``vote_id``, ``motion``, ``options``) as a member reads it.

    ``complete`` is False when the body lacks what a handler needs (no ``question`` in a
    poll, no ``options`` in a vote): the member answers ``NotSupported``."""

    kind: str
    complete: bool
    question: Any = None
    vote_id: Any = None
    motion: Any = None
    options: Any = None


def poll_body(question: Any) -> dict[str, Any]:
    return {"question": question}


def vote_body(vote_id: int, motion: Any, options: tuple[Any, ...]) -> dict[str, Any]:
    return {"vote": vote_id, "motion": motion, "options": list(options)}


def parse_survey(envelope: Envelope) -> Survey:
    """Never raises: a survey the member cannot use is still answered (with an error)."""
    return survey_of(envelope.kind, envelope.body)


def survey_of(kind: str, body: Any) -> Survey:
    """:func:`parse_survey` of a survey's kind and body (read without an envelope)."""
    if not isinstance(body, dict):
        body = {}
    if kind == POLL:
        return Survey(POLL, "question" in body, question=body.get("question"))
    if kind == VOTE:
        return Survey(VOTE, "options" in body, vote_id=body.get("vote"), motion=body.get("motion"),
                      options=body.get("options"))  # fmt: skip
    return Survey(kind, False)


def answer_body(value: Any) -> dict[str, Any]:
    return {"answer": value}


def ballot_body(value: Any, vote_id: Any, sign: Callable[[Ballot], Ballot] | None = None) -> dict[str, Any]:
    """A handler's return value as a ballot for vote ``vote_id`` (signed by ``sign``, if
    given); raises ValueError or TypeError when it makes no ballot (see :meth:`Ballot.coerce`)."""
    ballot = Ballot.coerce(value)
    ballot = Ballot(ballot.choice, ballot.confidence, ballot.reason, vote_id)
    return (ballot if sign is None else sign(ballot)).to_wire()


def error_body(failure: Failure) -> dict[str, Any]:
    return failure.to_wire()


def parse_reply(envelope: Envelope) -> tuple[str, Any]:
    """Classify a survey reply: ``("answer", value)``, ``("ballot", raw)`` or ``("error", Failure)``."""
    body = envelope.body
    if envelope.kind == ANSWER and type(body) is dict and "answer" in body:
        return ANSWER, body["answer"]  # the common case, once per reply: checked in one line
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


def line_body(to: str, address: str | None = None) -> dict[str, Any]:
    """A hotline set-up message to ``to``: a request (no ``address``) or an offer."""
    return {"to": to} if address is None else {"to": to, "address": address}


def parse_line(envelope: Envelope) -> tuple[str, str | None]:
    """A hotline set-up message: ``(to, address)``; ``address`` is None in a request."""
    body = _body(envelope)
    to = _field(envelope, body, "to", str, MAX_NAME_LENGTH)
    if "address" not in body:
        return to, None
    return to, _mesh(envelope, _field(envelope, body, "address", str, MAX_ADDRESS_LENGTH), "address")
