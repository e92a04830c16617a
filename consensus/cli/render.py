"""What the command line prints: results as human lines or as JSON-ready values.

Values from the room are CBOR-decoded (text, numbers, lists, maps, bytes, None); JSON has
no bytes, so :func:`jsonable` shows them as hex, and any other value as its ``repr``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from consensus.decide.decision import Decision
from consensus.decide.poll import PollResult
from consensus.failure import Failure
from consensus.work.task import Outcome

__all__ = ["decision_json", "decision_lines", "jsonable", "outcome_json", "poll_json", "poll_lines", "show"]


def jsonable(value: Any) -> Any:
    """``value`` with every part JSON can hold kept, bytes as hex, the rest as text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else json.dumps(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Failure):
        return str(value)
    return repr(value)


def show(value: Any) -> str:
    """One value for a human: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(jsonable(value))


def _errors(errors: Mapping[str, Failure]) -> dict[str, str]:
    return {name: str(failure) for name, failure in sorted(errors.items())}


def poll_json(result: PollResult) -> dict[str, Any]:
    return {
        "question": jsonable(result.question),
        "answers": jsonable(dict(sorted(result.answers.items()))),
        "errors": _errors(result.errors),
        "missing": sorted(result.missing),
        "left": sorted(result.left),
        "quorum": result.quorum,
        "quorum_met": result.quorum_met,
        "elapsed": round(result.elapsed, 3),
    }


def poll_lines(result: PollResult) -> Iterator[str]:
    for name, answer in sorted(result.answers.items()):
        yield f"{name}: {show(answer)}"
    for name, failure in sorted(result.errors.items()):
        yield f"{name}: error: {failure}"
    for name in sorted(result.missing):
        yield f"{name}: no answer in time"
    for name in sorted(result.left):
        yield f"{name}: left the room"
    count = len(result.answers)
    summary = f"{count} answer{'s' if count != 1 else ''} in {result.elapsed:.2f} s"
    if result.quorum is not None:
        summary += f", quorum of {result.quorum} {'met' if result.quorum_met else 'NOT met'}"
    yield summary


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "decided": decision.outcome is not None,
        "outcome": jsonable(decision.outcome),
        "rule": decision.rule,
        "tally": [[jsonable(option), weight] for option, weight in decision.tally.items()],
        "ballots": {
            name: {"choice": jsonable(b.choice), "confidence": b.confidence, "reason": b.reason}
            for name, b in sorted(decision.ballots.items())
        },
        "errors": _errors(decision.errors),
        "missing": sorted(decision.missing),
        "abstained": sorted(decision.abstained),
        "left": sorted(decision.left),
        "quorum_met": decision.quorum_met,
        "tie": decision.tie,
        "tied": jsonable(list(decision.tied)),
        "options": jsonable(list(decision.options)),
        "elapsed": round(decision.elapsed, 3),
    }


def decision_lines(decision: Decision) -> Iterator[str]:
    if decision.outcome is not None:
        yield f"decided: {show(decision.outcome)} ({decision.rule})"
    elif decision.tie:
        yield f"no decision: tie between {', '.join(show(o) for o in decision.tied)} ({decision.rule})"
    elif not decision.quorum_met:
        yield f"no decision: quorum not met ({decision.rule})"
    else:
        yield f"no decision ({decision.rule})"
    tally = ", ".join(f"{show(option)} {weight:g}" for option, weight in decision.tally.items())
    yield f"tally: {tally or 'no ballots'}"
    for name, ballot in sorted(decision.ballots.items()):
        why = f" ({ballot.reason})" if ballot.reason else ""
        yield f"  {name}: {show(ballot.choice)} confidence {ballot.confidence:g}{why}"
    for name, failure in sorted(decision.errors.items()):
        yield f"  {name}: error: {failure}"
    for name in sorted(decision.missing):
        yield f"  {name}: no ballot in time"


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "task": jsonable(outcome.task),
        "result": jsonable(outcome.result),
        "error": None if outcome.error is None else str(outcome.error),
        "worker": outcome.worker,
        "attempts": outcome.attempts,
    }
