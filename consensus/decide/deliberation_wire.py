"""The wire form of a finished :class:`~consensus.decide.roundtable.Deliberation`.

What the host sends when it broadcasts a finished deliberation, and what a member that
asked for one (``member.deliberate``) gets back: every round with its positions,
stances, failures and decision, so the receiver rebuilds the same ``Deliberation`` (its
report, agreement, counterpoint and influence are derived from the rounds). Wire form (a
CBOR map; unknown keys refused; see ``docs/deliberation.md`` section 7.2)::

    question      any          as asked
    options       [text]|null  a closed question's options
    rule          text         the rule's display name ("Majority, else Plurality")
    anonymous     bool
    rounds        [round]      oldest first
    stopped_by    text
    converged_at  uint|null
    elapsed       number >= 0
    deliberation  uint         the id, < 2**64

    round: {number, expected: [name], positions: {name: position}, stances: {name: key},
            display: {key: text}, missing: [name], errors: {name: {type, message}},
            left: [name], joined: [name], elapsed, rejected, ignored, decision: map|null}
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Final

from consensus.decide.checks import describe
from consensus.decide.decision import Decision
from consensus.decide.position import MAX_NAME_LENGTH, Position
from consensus.decide.roundtable import Deliberation
from consensus.decide.stances import Round
from consensus.errors import InvalidDecision, InvalidDeliberation, InvalidPosition
from consensus.failure import Failure

__all__ = ["deliberation_from_wire", "deliberation_to_wire"]

_KEYS: Final = frozenset({"question", "options", "rule", "anonymous", "rounds", "stopped_by", "converged_at",
                          "elapsed", "deliberation"})  # fmt: skip
_ROUND_KEYS: Final = frozenset({"number", "expected", "positions", "stances", "display", "missing", "errors",
                                "left", "joined", "elapsed", "rejected", "ignored", "decision"})  # fmt: skip
_MAX_TEXT: Final = 2000


def _round_to_wire(each: Round) -> dict[str, Any]:
    return {
        "number": each.number, "expected": sorted(each.expected),
        "positions": {member: position.to_wire() for member, position in each.positions.items()},
        "stances": dict(each.stances), "display": dict(each.display), "missing": sorted(each.missing),
        "errors": {member: error.to_wire() for member, error in each.errors.items()},
        "left": sorted(each.left), "joined": sorted(each.joined), "elapsed": each.elapsed,
        "rejected": each.rejected, "ignored": each.ignored,
        "decision": None if each.decision is None else each.decision.to_wire(),
    }  # fmt: skip


def deliberation_to_wire(result: Deliberation) -> dict[str, Any]:
    """The CBOR-able map of ``result``."""
    return {
        "question": result.question, "options": None if result.options is None else list(result.options),
        "rule": result.rule, "anonymous": result.anonymous,
        "rounds": [_round_to_wire(each) for each in result.rounds], "stopped_by": result.stopped_by,
        "converged_at": result.converged_at, "elapsed": result.elapsed, "deliberation": result.deliberation,
    }  # fmt: skip


def _map(obj: object, keys: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj) or obj.keys() != keys:
        got = (
            sorted(obj)[:8]
            if isinstance(obj, dict) and all(isinstance(k, str) for k in obj)
            else describe(obj)
        )
        raise InvalidDeliberation(f"{what} must be a map with exactly the keys {sorted(keys)}, got {got}")
    return obj


def _names(value: object, what: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(
        isinstance(n, str) and 0 < len(n) <= MAX_NAME_LENGTH for n in value
    ):
        raise InvalidDeliberation(f"{what} must be a list of member names, got {describe(value)}")
    return frozenset(value)


def _by_name(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
        isinstance(n, str) and 0 < len(n) <= MAX_NAME_LENGTH for n in value
    ):
        raise InvalidDeliberation(f"{what} must be a map from member names, got {describe(value)}")
    return value


def _count(value: object, what: str, limit: int = 2**64) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise InvalidDeliberation(f"{what} must be an unsigned integer, got {describe(value)}")
    return value


def _seconds(value: object, what: str) -> float:
    if not isinstance(value, (int, float)) or type(value) is bool or not math.isfinite(value) or value < 0:
        raise InvalidDeliberation(f"{what} must be a finite number >= 0, got {describe(value)}")
    return float(value)


def _texts(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= _MAX_TEXT and len(v) <= _MAX_TEXT
        for k, v in value.items()
    ):
        raise InvalidDeliberation(f"{what} must map text to text, got {describe(value)}")
    return value


def _round_from_wire(obj: object, at: int) -> Round:
    what = f"round {at}"
    body = _map(obj, _ROUND_KEYS, what)
    expected = _names(body["expected"], f"{what} 'expected'")
    try:
        positions = {name: Position.from_wire(p) for name, p in _by_name(body["positions"], what).items()}
        decision = None if body["decision"] is None else Decision.from_wire(body["decision"])
    except (InvalidPosition, InvalidDecision) as exc:
        raise InvalidDeliberation(f"{what}: {exc}") from exc
    errors = {}
    for name, error in _by_name(body["errors"], f"{what} 'errors'").items():
        if not (isinstance(error, dict) and error.keys() == {"type", "message"}
                and all(isinstance(v, str) and len(v) <= _MAX_TEXT for v in error.values())):  # fmt: skip
            raise InvalidDeliberation(f"{what} 'errors' for {name!r} is not a failure {{type, message}}")
        errors[name] = Failure(error["type"], error["message"])
    stances, display = (
        _texts(body["stances"], f"{what} 'stances'"),
        _texts(body["display"], f"{what} 'display'"),
    )
    missing, left = _names(body["missing"], f"{what} 'missing'"), _names(body["left"], f"{what} 'left'")
    joined = _names(body["joined"], f"{what} 'joined'")
    if not (positions.keys() | errors.keys() | missing | left | joined) <= expected:
        raise InvalidDeliberation(f"{what} names members who were not asked")
    if stances.keys() != positions.keys() or not set(stances.values()) <= display.keys():
        raise InvalidDeliberation(f"{what}: 'stances' must give each position's key, and 'display' each key")
    return Round(number=_count(body["number"], f"{what} 'number'", 2**32), expected=expected,
                 positions=MappingProxyType(positions), stances=MappingProxyType(stances),
                 display=MappingProxyType(display), missing=missing, errors=MappingProxyType(errors), left=left,
                 joined=joined, elapsed=_seconds(body["elapsed"], f"{what} 'elapsed'"),
                 rejected=_count(body["rejected"], f"{what} 'rejected'"),
                 ignored=_count(body["ignored"], f"{what} 'ignored'"), decision=decision)  # fmt: skip


def deliberation_from_wire(obj: object) -> Deliberation:
    """Validate an untrusted, CBOR-decoded deliberation; raises :class:`InvalidDeliberation`."""
    body = _map(obj, _KEYS, "a deliberation")
    options = body["options"]
    if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
        raise InvalidDeliberation(f"'options' must be an array of text or null, got {describe(options)}")
    for key in ("rule", "stopped_by"):
        if not isinstance(body[key], str) or len(body[key]) > _MAX_TEXT:
            raise InvalidDeliberation(f"{key!r} must be text, got {describe(body[key])}")
    if type(body["anonymous"]) is not bool:
        raise InvalidDeliberation(f"'anonymous' must be a boolean, got {describe(body['anonymous'])}")
    rounds = body["rounds"]
    if not isinstance(rounds, list):
        raise InvalidDeliberation(f"'rounds' must be an array, got {describe(rounds)}")
    records = tuple(_round_from_wire(each, at) for at, each in enumerate(rounds, 1))
    if [each.number for each in records] != list(range(1, len(records) + 1)):
        raise InvalidDeliberation("'rounds' must be numbered 1, 2, ... in order")
    converged = body["converged_at"]
    if converged is not None and _count(converged, "'converged_at'") > len(records):
        raise InvalidDeliberation("'converged_at' names a round that is not there")
    return Deliberation(question=body["question"], options=None if options is None else tuple(options),
                        rule=body["rule"], anonymous=body["anonymous"], rounds=records,
                        stopped_by=body["stopped_by"], converged_at=converged,
                        elapsed=_seconds(body["elapsed"], "'elapsed'"),
                        deliberation=_count(body["deliberation"], "'deliberation'"))  # fmt: skip
