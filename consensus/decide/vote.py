"""One vote as a sans-IO state machine over the pure tally.

Like :class:`~consensus.decide.poll.PollRound`, a :class:`VoteRound` is fed ballots,
handler errors and departures, and says when it is complete: when every member of
the electorate has voted, failed or left, or (with a quorum) as soon as no ballot
still possible could change the outcome. It keeps one
:class:`~consensus.decide.count.Count` for its life, so each ballot is counted once,
and the question "could any ballot still change it?" costs the same at the 60th
ballot as at the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from consensus.decide.ballot import Ballot
from consensus.decide.count import Count
from consensus.decide.decision import Decision
from consensus.decide.poll import Verdict, classify
from consensus.decide.rules import Rules
from consensus.decide.signing import signature_problem
from consensus.errors import InvalidBallot
from consensus.failure import Failure

__all__ = ["VoteRound"]


class VoteRound:
    """The state of one vote: the electorate, ballots cast, errors, departures.

    ``quorum`` is ``None`` or a count of members (an ``int >= 1``, the same meaning as a
    poll's, see :mod:`consensus.decide.quorum`): met once that many members of the
    electorate cast an accepted ballot, whatever their weights.
    """

    def __init__(
        self,
        vote_id: int,
        *,
        electorate: Mapping[str, float],
        options: Sequence[Any],
        rule: Rules,
        quorum: int | None = None,
    ) -> None:
        self.vote_id = vote_id
        self.electorate = dict(electorate)
        self.options = tuple(options)
        self.rule = rule
        self.quorum = quorum
        self._voted: set[str] = set()
        self._errors: dict[str, Failure] = {}
        self._left: set[str] = set()
        self._invalid: dict[str, list[str]] = {}
        self._finished = False
        self._decided = False  # with a quorum: no ballot still possible can change the decision
        self.rejected = 0
        # Checks the arguments as tally() does. Every member is open until it votes, fails or leaves.
        self._count = Count(options=self.options, rule=rule, electorate=self.electorate, quorum=quorum,
                            vote=vote_id)  # fmt: skip
        self._count.expect(self.electorate)

    @property
    def pending(self) -> frozenset[str]:
        return frozenset(self.electorate) - self._voted - self._errors.keys() - self._left

    @property
    def complete(self) -> bool:
        # Counted rather than built from ``pending`` (the three sets are disjoint): this runs
        # once per ballot, and a new set per ballot is quadratic in the room's size.
        if self._finished or self._decided:
            return True
        return len(self._voted) + len(self._errors) + len(self._left) == len(self.electorate)

    def _admit(self, name: str) -> Verdict:
        done = name in self._voted or name in self._errors or name in self._left
        return classify(name, finished=self._finished, expected=self.electorate, pending=() if done else (name,))

    def _reject(self, name: str, reason: str) -> None:
        self.rejected += 1
        self._invalid.setdefault(name, []).append(reason)

    def ballot(self, name: str, raw: Any) -> Verdict:
        """A reply carrying a ballot (untrusted wire form, or a :class:`Ballot`)."""
        verdict = self._admit(name)
        if verdict is not Verdict.ACCEPTED:
            self._reject(name, f"ballot {verdict.value}")
            return verdict
        try:
            ballot = raw if isinstance(raw, Ballot) else Ballot.from_wire(raw)
            if (problem := signature_problem(self.vote_id, self.options, name, ballot)) is not None:
                raise InvalidBallot(problem)
        except InvalidBallot as exc:
            self._reject(name, str(exc))
            self._errors[name] = Failure("InvalidBallot", str(exc))
            self._count.close(name)
            self._check_decided()
            return Verdict.ACCEPTED
        self._count.add(name, ballot)
        self._count.close(name)  # also when the count rejected the ballot: the member has voted
        self._voted.add(name)
        self._check_decided()
        return verdict

    def fail(self, name: str, error: Failure) -> Verdict:
        verdict = self._admit(name)
        if verdict is Verdict.ACCEPTED:
            self._errors[name] = error
            self._count.close(name)
            self._check_decided()
        else:
            self.rejected += 1
        return verdict

    def left(self, name: str) -> None:
        done = name in self._voted or name in self._errors or name in self._left
        if not self._finished and not done and name in self.electorate:
            self._left.add(name)
            self._count.close(name)
            self._check_decided()

    def _check_decided(self) -> None:
        if self.quorum is not None and not self._decided:
            self._decided = self._count.settled()

    def finish(self) -> None:
        self._finished = True

    def decision(self, *, elapsed: float) -> Decision:
        # Ballots taken after an early decision (before finish) count too, as in a fresh tally.
        result = Decision.from_count(self._count)
        rejected = {name: tuple(reasons) for name, reasons in result.rejected.items()}
        for name, reasons in self._invalid.items():
            rejected[name] = rejected.get(name, ()) + tuple(reasons)
        return dataclasses.replace(
            result,
            rejected=MappingProxyType(rejected),
            rejected_count=result.rejected_count + sum(len(r) for r in self._invalid.values()),
            errors=MappingProxyType(dict(self._errors)),
            left=frozenset(self._left),
            elapsed=elapsed,
            vote=self.vote_id,
        )
