"""One poll as a sans-IO state machine, and the values it produces.

The driver tells a :class:`PollRound` what happened (an answer, a handler error, a
member gone) and asks whether the round is complete; the round never reads a clock
or a socket. A round is complete when every member present at its start has
answered, failed or left, or, with ``quorum=k``, once ``k`` answers are in (a
quorum is a count of members, the same for polls and votes: see
:mod:`consensus.decide.quorum`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from consensus.decide.quorum import check_quorum
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
        self._finished = False
        self.rejected = 0

    @property
    def pending(self) -> frozenset[str]:
        return self.expected - self._answers.keys() - self._errors.keys() - self._left

    @property
    def complete(self) -> bool:
        # Counted rather than built from ``pending``: this runs once per reply.
        if self._finished or len(self._answers) + len(self._errors) + len(self._left) == len(self.expected):
            return True
        return self.quorum is not None and len(self._answers) >= self.quorum

    def _admit(self, name: str) -> Verdict:
        return classify(name, finished=self._finished, expected=self.expected, pending=self.pending)

    def answer(self, name: str, value: Any, *, at: float | None = None) -> Verdict:
        """Record an answer; ``at`` is when it arrived (seconds since the poll began)."""
        return self._record(self._answers, name, value, at)

    def fail(self, name: str, error: Failure, *, at: float | None = None) -> Verdict:
        return self._record(self._errors, name, error, at)

    def _record(self, into: dict[str, Any], name: str, value: Any, at: float | None) -> Verdict:
        verdict = self._admit(name)
        if verdict is Verdict.ACCEPTED:
            into[name] = value
            if at is not None:
                self._latencies[name] = at
        else:
            self.rejected += 1
        return verdict

    def left(self, name: str) -> None:
        """A member went away (left, crashed, expired): it will not answer."""
        if not self._finished and name in self.pending:
            self._left.add(name)

    def finish(self) -> None:
        """Close the round: any later reply is ``CLOSED`` (late)."""
        self._finished = True

    def result(self, question: Any, *, elapsed: float, poll_id: int = 0) -> PollResult:
        return PollResult(
            question=question,
            answers=MappingProxyType(dict(self._answers)),
            missing=self.expected - self._answers.keys() - self._errors.keys(),
            errors=MappingProxyType(dict(self._errors)),
            left=frozenset(self._left),
            elapsed=elapsed,
            quorum=self.quorum,
            quorum_met=self.quorum is None or len(self._answers) >= self.quorum,
            rejected=self.rejected,
            poll_id=poll_id,
            expected=self.expected,
            latencies=MappingProxyType(dict(self._latencies)),
        )
