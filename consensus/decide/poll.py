"""One poll as a sans-IO state machine, and the values it produces.

The driver tells a :class:`PollRound` what happened (an answer, a handler error, a
member gone) and asks whether the round is complete; the round never reads a clock
or a socket. A round is complete when every member present at its start has
answered, failed or left, or, with ``quorum=k``, once ``k`` answers are in (a
quorum is a count of members, the same for polls and votes: see
:mod:`consensus.decide.quorum`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from consensus.decide.checks import describe
from consensus.decide.quorum import check_quorum
from consensus.errors import InvalidPollResult
from consensus.failure import Failure

__all__ = ["PollResult", "PollRound", "Verdict"]


class Verdict(Enum):
    """What a round did with one reply."""

    ACCEPTED = "accepted"
    UNEXPECTED = "unexpected"  # not a member when the round started
    DUPLICATE = "duplicate"  # that member already answered, failed or left
    CLOSED = "closed"  # the round was already finished: a late reply


@dataclass(frozen=True, slots=True)
class PollResult:
    """The answers to one poll.

    ``missing`` holds the members present at the start who did not answer (including
    those who ``left`` during the poll); ``errors`` the members whose handler failed;
    ``latencies`` the seconds from the poll's start to each answer or error.
    """

    question: Any
    answers: Mapping[str, Any]
    missing: frozenset[str]
    errors: Mapping[str, Failure]
    left: frozenset[str]
    elapsed: float
    quorum: int | None = None
    quorum_met: bool = True
    rejected: int = 0
    poll_id: int = 0
    expected: frozenset[str] = field(default_factory=frozenset)
    latencies: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def complete(self) -> bool:
        """True when every expected member answered."""
        return not self.missing and not self.errors

    def to_wire(self) -> dict[str, Any]:
        """A CBOR-able map (text keys; the question and answers passed through as they are)."""
        return {
            "question": self.question,
            "answers": dict(self.answers),
            "missing": sorted(self.missing),
            "errors": {name: error.to_wire() for name, error in self.errors.items()},
            "left": sorted(self.left),
            "elapsed": self.elapsed,
            "quorum": self.quorum,
            "quorum_met": self.quorum_met,
            "rejected": self.rejected,
            "poll_id": self.poll_id,
            "expected": sorted(self.expected),
            "latencies": dict(self.latencies),
        }

    @classmethod
    def from_wire(cls, obj: object) -> PollResult:
        """Validate an untrusted, CBOR-decoded poll result; raises :class:`InvalidPollResult`."""
        if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
            raise InvalidPollResult(f"a poll result must be a map with text keys, got {describe(obj)}")
        if obj.keys() != _WIRE_KEYS:
            absent, extra = sorted(_WIRE_KEYS - obj.keys()), sorted(obj.keys() - _WIRE_KEYS)[:5]
            raise InvalidPollResult(f"poll result has missing keys {absent} and unknown keys {extra}")
        answers = _names_map(obj, "answers")
        errors = {}
        for name, error in _names_map(obj, "errors").items():
            if not (isinstance(error, dict) and type(error.get("type")) is str
                    and type(error.get("message")) is str):  # fmt: skip
                raise InvalidPollResult(
                    f"poll result 'errors' for {name!r} is not a failure {{type, message}}"
                )
            errors[name] = Failure(error["type"], error["message"])
        latencies = _names_map(obj, "latencies")
        for name, at in latencies.items():
            _number(at, f"latency of {name!r}")
        quorum = obj["quorum"]
        if quorum is not None and not (type(quorum) is int and quorum >= 1):
            raise InvalidPollResult(
                f"poll result 'quorum' must be null or an int >= 1, got {describe(quorum)}"
            )
        rejected, poll_id = obj["rejected"], obj["poll_id"]
        if type(rejected) is not int or rejected < 0 or type(poll_id) is not int or not 0 <= poll_id < 2**64:
            raise InvalidPollResult("poll result 'rejected' and 'poll_id' must be unsigned integers")
        if type(obj["quorum_met"]) is not bool:
            raise InvalidPollResult("poll result 'quorum_met' must be a boolean")
        expected = _names(obj, "expected")
        missing, left = _names(obj, "missing"), _names(obj, "left")
        if not (answers.keys() | errors.keys() | missing | left) <= expected:
            raise InvalidPollResult("poll result names members who were not expected")
        return cls(
            question=obj["question"],
            answers=MappingProxyType(answers),
            missing=missing,
            errors=MappingProxyType(errors),
            left=left,
            elapsed=_number(obj["elapsed"], "'elapsed'"),
            quorum=quorum,
            quorum_met=obj["quorum_met"],
            rejected=rejected,
            poll_id=poll_id,
            expected=expected,
            latencies=MappingProxyType({name: float(at) for name, at in latencies.items()}),
        )


_WIRE_KEYS: Final = frozenset({"question", "answers", "missing", "errors", "left", "elapsed", "quorum",
                               "quorum_met", "rejected", "poll_id", "expected", "latencies"})  # fmt: skip


def _names_map(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj[key]
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise InvalidPollResult(f"poll result {key!r} must be a map from member names, got {describe(value)}")
    return dict(value)


def _names(obj: dict[str, Any], key: str) -> frozenset[str]:
    value = obj[key]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise InvalidPollResult(f"poll result {key!r} must be a list of member names, got {describe(value)}")
    return frozenset(value)


def _number(value: object, what: str) -> float:
    if not (
        isinstance(value, (int, float)) and type(value) is not bool and math.isfinite(value) and value >= 0
    ):
        raise InvalidPollResult(f"poll result {what} must be a finite number >= 0, got {describe(value)}")
    return float(value)


def classify(name: str, *, finished: bool, expected: Collection[str], pending: Collection[str]) -> Verdict:
    """What a round does with a reply from ``name`` (shared by poll and vote rounds)."""
    if finished:
        return Verdict.CLOSED
    if name not in expected:
        return Verdict.UNEXPECTED
    if name not in pending:
        return Verdict.DUPLICATE
    return Verdict.ACCEPTED


class PollRound:
    """The state of one poll: who is expected, who answered, failed or left.

    ``quorum`` is ``None`` or a count of members (an ``int >= 1``, see
    :mod:`consensus.decide.quorum`): the round completes once that many answers are in.
    """

    def __init__(self, expected: Iterable[str], *, quorum: int | None = None) -> None:
        self.expected = frozenset(expected)
        self.quorum = check_quorum(quorum)
        self._answers: dict[str, Any] = {}
        self._errors: dict[str, Failure] = {}
        self._left: set[str] = set()
        self._latencies: dict[str, float] = {}
        # The expected members who have not answered, failed or left: one lookup admits a
        # reply, and ``complete`` is a test of emptiness (both run once per reply).
        self._waiting = set(self.expected)
        self._finished = False
        self.rejected = 0

    @property
    def pending(self) -> frozenset[str]:
        return frozenset(self._waiting)

    @property
    def complete(self) -> bool:
        if self._finished or not self._waiting:
            return True
        return self.quorum is not None and len(self._answers) >= self.quorum

    def _verdict(self, name: str) -> Verdict:
        """Why a reply from ``name`` is not accepted (the accepting path is inlined by the callers)."""
        return classify(name, finished=self._finished, expected=self.expected, pending=self._waiting)

    def answer(self, name: str, value: Any, *, at: float | None = None) -> Verdict:
        """Record an answer; ``at`` is when it arrived (seconds since the poll began)."""
        waiting = self._waiting
        if name in waiting and not self._finished:
            waiting.remove(name)
            self._answers[name] = value
            if at is not None:
                self._latencies[name] = at
            return Verdict.ACCEPTED
        self.rejected += 1
        return self._verdict(name)

    def fail(self, name: str, error: Failure, *, at: float | None = None) -> Verdict:
        waiting = self._waiting
        if name in waiting and not self._finished:
            waiting.remove(name)
            self._errors[name] = error
            if at is not None:
                self._latencies[name] = at
            return Verdict.ACCEPTED
        self.rejected += 1
        return self._verdict(name)

    def left(self, name: str) -> None:
        """A member went away (left, crashed, expired): it will not answer."""
        if not self._finished and name in self._waiting:
            self._waiting.remove(name)
            self._left.add(name)

    def finish(self) -> None:
        """Close the round: any later reply is ``CLOSED`` (late)."""
        self._finished = True

    def result(self, question: Any, *, elapsed: float, poll_id: int = 0) -> PollResult:
        # A finished round never changes again: its result may share its maps, not copy them.
        answers, errors, latencies = self._answers, self._errors, self._latencies
        if not self._finished:
            answers, errors, latencies = dict(answers), dict(errors), dict(latencies)
        return PollResult(
            question=question,
            answers=MappingProxyType(answers),
            missing=frozenset(self._waiting | self._left),
            errors=MappingProxyType(errors),
            left=frozenset(self._left),
            elapsed=elapsed,
            quorum=self.quorum,
            quorum_met=self.quorum is None or len(self._answers) >= self.quorum,
            rejected=self.rejected,
            poll_id=poll_id,
            expected=self.expected,
            latencies=MappingProxyType(latencies),
        )
