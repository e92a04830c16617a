"""The wire bodies of member calls: a member asks the host to run a poll, a vote or a deliberation.

``call`` (member -> host, control bus)::

    {"name", "token", "call": id, "kind": "poll", "question", "timeout"[, "quorum"]}
    {"name", "token", "call": id, "kind": "vote", "motion", "options", "timeout"
     [, "quorum"][, "rule"][, "weights"]}
    {"name", "token", "call": id, "kind": "deliberate", "question", "timeout", "rounds"
     [, "options"][, "rule": a rule or an array of rules][, "until": [names]][, "anonymous"]}

``result`` (host -> the caller, control bus, addressed like a welcome)::

    {"name", "token", "call": id, "poll": <PollResult wire form>}
    {"name", "token", "call": id, "decision": <Decision wire form>}
    {"name", "token", "call": id, "deliberation": <Deliberation wire form>}
    {"name", "token", "call": id, "refused": reason}

A ``call`` whose caller or id cannot be read is malformed (dropped and counted); one
whose arguments are wrong is *refused*: the caller hears why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Final

from consensus.decide.decision import Decision
from consensus.decide.deliberation_wire import deliberation_from_wire, deliberation_to_wire
from consensus.decide.poll import PollResult
from consensus.decide.roundtable import Deliberation
from consensus.decide.rule_wire import rule_from_wire, rule_to_wire
from consensus.decide.rules import Rule
from consensus.decide.until import Until, decided, no_change, unanimous
from consensus.errors import InvalidDecision, InvalidDeliberation, InvalidPollResult
from consensus.room.protocol import MAX_ERROR_TEXT, _bad, _body, _field, parse_hello
from consensus.room.roster import MAX_NAME_LENGTH
from patterns import Envelope

__all__ = ["CALL", "MAX_CALL_ROUNDS", "MAX_CALL_TIMEOUT", "RESULT", "UNTIL", "Call", "CallAnswer",
           "DeliberationArgs", "call_body", "parse_call", "parse_result", "result_body"]  # fmt: skip

CALL: Final = "call"  # member -> host
RESULT: Final = "result"  # host -> the calling member
MAX_CALL_TIMEOUT: Final = 86400.0  # a day: a call's timeout above this is refused
POLL_CALL: Final = "poll"
VOTE_CALL: Final = "vote"
DELIBERATE_CALL: Final = "deliberate"
MAX_CALL_ROUNDS: Final = 100  # a deliberation call of more rounds is refused
UNTIL: Final[dict[str, Until]] = {"unanimous": unanimous, "no_change": no_change, "decided": decided}
"""The stop predicates a member may name in a deliberation call (code cannot travel)."""


@dataclass(frozen=True, slots=True)
class DeliberationArgs:
    """What a deliberation call adds to a call: as ``room.deliberate`` takes them
    (``until``: names from :data:`UNTIL`; ``rules``: one rule, or a fallback)."""

    rounds: int = 3
    options: tuple[str, ...] | None = None
    rules: tuple[Rule, ...] = ()
    until: tuple[str, ...] = ()
    anonymous: bool = False

    @classmethod
    def of(cls, rounds: int, options: Any, rule: Any, until: Any, anonymous: bool) -> DeliberationArgs:
        """From ``member.deliberate``'s arguments; ``ValueError``/``TypeError`` for what cannot travel."""
        if type(rounds) is not int or not 1 <= rounds <= MAX_CALL_ROUNDS:
            raise ValueError(f"rounds must be an int in 1..{MAX_CALL_ROUNDS}, got {rounds!r}")
        rules = () if rule is None else (rule,) if isinstance(rule, Rule) else tuple(rule)
        predicates = () if until is None else (until,) if callable(until) or isinstance(until, str) else tuple(until)
        if not all(isinstance(each, Rule) for each in rules):
            raise TypeError(f"rule must be a Rule or a list of them, got {rule!r}")
        names = []
        for predicate in predicates:
            if isinstance(predicate, str):
                name, known = predicate, predicate in UNTIL
            else:
                name = getattr(predicate, "__name__", "")
                known = UNTIL.get(name) is predicate
            if not known:
                raise ValueError(f"until={predicate!r}: a member's deliberation takes only {sorted(UNTIL)}")
            names.append(name)
        return cls(rounds, None if options is None else tuple(options), rules, tuple(names), bool(anonymous))


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
    deliberation: DeliberationArgs | None = None
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
    deliberation: Deliberation | None = None


def call_body(name: str, token: int, call_id: int, kind: str, *, subject: Any, timeout: float,
              quorum: int | None = None, options: tuple[Any, ...] = (), rule: Rule | None = None,
              weights: dict[str, float] | None = None,
              deliberation: DeliberationArgs | None = None) -> dict[str, Any]:  # fmt: skip
    """A ``call`` body; ``kind`` is "poll" (``subject`` = question), "vote" (``subject`` =
    motion) or "deliberate" (``subject`` = question; ``deliberation`` its arguments)."""
    body: dict[str, Any] = {"name": name, "token": token, "call": call_id, "kind": kind, "timeout": timeout}
    if kind == POLL_CALL:
        body["question"] = subject
    elif kind == DELIBERATE_CALL:
        args = deliberation or DeliberationArgs()
        body |= {"question": subject, "rounds": args.rounds, "anonymous": args.anonymous}
        if args.options is not None:
            body["options"] = list(args.options)
        if args.rules:
            body["rule"] = [rule_to_wire(each) for each in args.rules]
        if args.until:
            body["until"] = list(args.until)
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
    if kind not in (POLL_CALL, VOTE_CALL, DELIBERATE_CALL):
        return _problem(base, f"the kind of call {str(kind)[:40]!r} is neither 'poll', 'vote' nor 'deliberate'")
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
    if kind == DELIBERATE_CALL:
        return _deliberation_call(base, body)
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


def _deliberation_call(base: Call, body: Any) -> Call:
    rounds, options = body.get("rounds"), body.get("options")
    if "question" not in body or type(rounds) is not int or not 1 <= rounds <= MAX_CALL_ROUNDS:
        return _problem(base, f"a deliberate call needs a 'question' and 'rounds' in 1..{MAX_CALL_ROUNDS}")
    if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
        return _problem(base, "'options' must be an array of text")
    until = body.get("until", [])
    if not isinstance(until, list) or not all(isinstance(n, str) and n in UNTIL for n in until):
        return _problem(base, f"'until' must be an array of names among {sorted(UNTIL)}")
    if type(body.get("anonymous", False)) is not bool:
        return _problem(base, "'anonymous' must be a boolean")
    rule = body.get("rule", [])
    try:
        rules = tuple(rule_from_wire(each) for each in (rule if isinstance(rule, list) else [rule]))
    except ValueError as exc:
        return _problem(base, f"bad rule: {exc}")
    args = DeliberationArgs(rounds, None if options is None else tuple(options), rules, tuple(until),
                            body.get("anonymous", False))  # fmt: skip
    return _with(base, subject=body["question"], deliberation=args)


def _with(call: Call, **changes: Any) -> Call:
    return replace(call, **changes)


def _problem(call: Call, problem: str) -> Call:
    return _with(call, problem=problem)


def result_body(name: str, token: int, call_id: int, *, poll: PollResult | None = None,
                decision: Decision | None = None, refused: str = "",
                deliberation: Deliberation | None = None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"name": name, "token": token, "call": call_id}
    if poll is not None:
        return body | {"poll": poll.to_wire()}
    if deliberation is not None:
        return body | {"deliberation": deliberation_to_wire(deliberation)}
    if decision is not None:
        return body | {"decision": decision.to_wire()}
    return body | {"refused": refused[:MAX_ERROR_TEXT] or "refused"}


def parse_result(envelope: Envelope) -> CallAnswer:
    hello = parse_hello(envelope)
    body = _body(envelope)
    call_id = _field(envelope, body, "call", int)
    present = [key for key in ("poll", "decision", "deliberation", "refused") if key in body]
    if len(present) != 1:
        raise _bad(envelope, "a result holds exactly one of 'poll', 'decision', 'deliberation' and 'refused'")
    try:
        if "poll" in body:
            return CallAnswer(hello.name, hello.token, call_id, poll=PollResult.from_wire(body["poll"]))
        if "decision" in body:
            return CallAnswer(hello.name, hello.token, call_id, decision=Decision.from_wire(body["decision"]))
        if "deliberation" in body:
            result = deliberation_from_wire(body["deliberation"])
            return CallAnswer(hello.name, hello.token, call_id, deliberation=result)
    except (InvalidPollResult, InvalidDecision, InvalidDeliberation) as exc:
        raise _bad(envelope, str(exc)) from exc
    reason = _field(envelope, body, "refused", str, MAX_ERROR_TEXT)
    return CallAnswer(hello.name, hello.token, call_id, refused=reason)
