"""The wire bodies of member calls: a member asks the host to run a poll or a vote.

``call`` (member -> host, control bus)::

    {"name", "token", "call": id, "kind": "poll", "question", "timeout"[, "quorum"]}
    {"name", "token", "call": id, "kind": "vote", "motion", "options", "timeout"
     [, "quorum"][, "rule"][, "weights"]}

``result`` (host -> the caller, control bus, addressed like a welcome)::

    {"name", "token", "call": id, "poll": <PollResult wire form>}
    {"name", "token", "call": id, "decision": <Decision wire form>}
    {"name", "token", "call": id, "refused": reason}

A ``call`` whose caller or id cannot be read is malformed (dropped and counted); one
whose arguments are wrong is *refused*: the caller hears why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Final

from consensus.decide.decision import Decision
from consensus.decide.poll import PollResult
from consensus.decide.rule_wire import rule_from_wire, rule_to_wire
from consensus.decide.rules import Rule
from consensus.errors import InvalidDecision, InvalidPollResult
from consensus.room.protocol import MAX_ERROR_TEXT, _bad, _body, _field, parse_hello
from consensus.room.roster import MAX_NAME_LENGTH
from patterns import Envelope

__all__ = ["CALL", "MAX_CALL_TIMEOUT", "RESULT", "Call", "CallAnswer", "call_body", "parse_call",
           "parse_result", "result_body"]  # fmt: skip

CALL: Final = "call"  # member -> host
RESULT: Final = "result"  # host -> the calling member
MAX_CALL_TIMEOUT: Final = 86400.0  # a day: a call's timeout above this is refused
POLL_CALL: Final = "poll"
VOTE_CALL: Final = "vote"


@dataclass(frozen=True, slots=True)
class Call:
    """A member's call as the host reads it. ``problem`` is non-empty when it must be refused."""

    name: str
    token: int
    call_id: int
    kind: str
    timeout: float = 0.0
    quorum: int | None = None
    subject: Any = None  # the question or the motion
    options: tuple[Any, ...] = ()
    rule: Rule | None = None
    weights: dict[str, float] | None = None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """A ``result`` as the caller reads it: exactly one of the three is set."""

    name: str
    token: int
    call_id: int
    poll: PollResult | None = None
    decision: Decision | None = None
    refused: str = ""


def call_body(name: str, token: int, call_id: int, kind: str, *, subject: Any, timeout: float,
              quorum: int | None = None, options: tuple[Any, ...] = (), rule: Rule | None = None,
              weights: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """A ``call`` body; ``kind`` is "poll" (``subject`` = question) or "vote" (``subject`` = motion)."""
    body: dict[str, Any] = {"name": name, "token": token, "call": call_id, "kind": kind, "timeout": timeout}
    if kind == POLL_CALL:
        body["question"] = subject
    else:
        body |= {"motion": subject, "options": list(options)}
        if rule is not None:
            body["rule"] = rule_to_wire(rule)
        if weights is not None:
            body["weights"] = dict(weights)
    if quorum is not None:
        body["quorum"] = quorum
    return body


def parse_call(envelope: Envelope) -> Call:
    """Read a ``call``: raises ``MalformedMessage`` when the caller or the id cannot be read,
    returns a :class:`Call` with a ``problem`` when its arguments are wrong."""
    hello = parse_hello(envelope)
    body = _body(envelope)
    call_id = _field(envelope, body, "call", int)
    kind = body.get("kind")
    base = Call(hello.name, hello.token, call_id, kind if isinstance(kind, str) else "")
    if kind not in (POLL_CALL, VOTE_CALL):
        return _problem(base, f"the kind of call {str(kind)[:40]!r} is neither 'poll' nor 'vote'")
    timeout = body.get("timeout")
    if not isinstance(timeout, (int, float)) or type(timeout) is bool or not 0 < timeout <= MAX_CALL_TIMEOUT:
        return _problem(base, f"the timeout must be a number of seconds in (0, {MAX_CALL_TIMEOUT:g}]")
    quorum = body.get("quorum")
    if quorum is not None and not (type(quorum) is int and quorum >= 1):
        return _problem(base, "the quorum must be a count of members (an int >= 1)")
    base = Call(hello.name, hello.token, call_id, kind, float(timeout), quorum)
    if kind == POLL_CALL:
        if "question" not in body:
            return _problem(base, "a poll call needs a 'question'")
        return _with(base, subject=body["question"])
    if "motion" not in body or not isinstance(body.get("options"), list):
        return _problem(base, "a vote call needs a 'motion' and a list of 'options'")
    rule = None
    if "rule" in body:
        try:
            rule = rule_from_wire(body["rule"])
        except ValueError as exc:
            return _problem(base, f"bad rule: {exc}")
    weights = body.get("weights")
    if weights is not None and not (
        isinstance(weights, dict)
        and all(isinstance(k, str) and len(k) <= MAX_NAME_LENGTH for k in weights)
        and all(
            isinstance(v, (int, float)) and type(v) is not bool and math.isfinite(v) and v >= 0
            for v in weights.values()
        )
    ):
        return _problem(base, "'weights' must map member names to finite numbers >= 0")
    return _with(base, subject=body["motion"], options=tuple(body["options"]), rule=rule,
                 weights=None if weights is None else {k: float(v) for k, v in weights.items()})  # fmt: skip


def _with(call: Call, **changes: Any) -> Call:
    return replace(call, **changes)


def _problem(call: Call, problem: str) -> Call:
    return _with(call, problem=problem)


def result_body(name: str, token: int, call_id: int, *, poll: PollResult | None = None,
                decision: Decision | None = None, refused: str = "") -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"name": name, "token": token, "call": call_id}
    if poll is not None:
        return body | {"poll": poll.to_wire()}
    if decision is not None:
        return body | {"decision": decision.to_wire()}
    return body | {"refused": refused[:MAX_ERROR_TEXT] or "refused"}


def parse_result(envelope: Envelope) -> CallAnswer:
    hello = parse_hello(envelope)
    body = _body(envelope)
    call_id = _field(envelope, body, "call", int)
    present = [key for key in ("poll", "decision", "refused") if key in body]
    if len(present) != 1:
        raise _bad(envelope, "a result holds exactly one of 'poll', 'decision' and 'refused'")
    try:
        if "poll" in body:
            return CallAnswer(hello.name, hello.token, call_id, poll=PollResult.from_wire(body["poll"]))
        if "decision" in body:
            return CallAnswer(hello.name, hello.token, call_id, decision=Decision.from_wire(body["decision"]))
    except (InvalidPollResult, InvalidDecision) as exc:
        raise _bad(envelope, str(exc)) from exc
    reason = _field(envelope, body, "refused", str, MAX_ERROR_TEXT)
    return CallAnswer(hello.name, hello.token, call_id, refused=reason)
