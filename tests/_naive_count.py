"""The naive model of the count for ``tests/test_count.py``: the from-scratch tally of
the tree before the incremental :class:`~consensus.decide.count.Count` (commit 87923c8),
kept as it was (only renamed): ``tally`` and ``is_decided`` recount every ballot on each
call, ``naive_recount`` is the old ``Decision.recount`` with its own ``Fraction`` count,
and ``NaiveVoteRound`` the old ``VoteRound`` that asked ``is_decided`` after each ballot.
Quadratic in the ballots, and simple: the incremental code must answer as this does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final

from consensus.decide.ballot import Ballot, check_options, select
from consensus.decide.checks import describe
from consensus.decide.decision import Decision
from consensus.decide.poll import Verdict, classify
from consensus.decide.quorum import check_quorum
from consensus.decide.rules import (
    Majority,
    Rule,
    Rules,
    Standing,
    Weighting,
    as_ratio,
    as_rules,
    chain_name,
    top_options,
)
from consensus.decide.signing import signature_problem
from consensus.errors import InvalidBallot
from consensus.failure import Failure

_MAJORITY: Final = Majority()
"""The default rule (rules are frozen, so one instance serves every call)."""


# -- inputs ------------------------------------------------------------------------------


Exact = int | Fraction
"""A weight or a sum of weights: an ``int`` while whole (see the module docstring)."""


def _exact(value: float | Fraction) -> Exact:
    ratio = as_ratio(value)
    return ratio.numerator if ratio.denominator == 1 else ratio


def _fraction(value: Exact) -> Fraction:
    return value if type(value) is Fraction else Fraction(value)


def _check_electorate(electorate: Mapping[str, float] | Iterable[str]) -> dict[str, Exact]:
    if isinstance(electorate, (str, bytes)) or not isinstance(electorate, Iterable):
        raise TypeError(f"electorate must map names to weights or list names, got {describe(electorate)}")
    members: dict[str, Exact] = {}
    if isinstance(electorate, Mapping):
        pairs: Iterable[tuple[object, object]] = electorate.items()
    else:
        pairs = [(name, 1) for name in electorate]
    for name, weight in pairs:
        if not isinstance(name, str):
            raise TypeError(f"electorate member {describe(name)} is not a name (str)")
        if name in members:
            raise ValueError(f"electorate lists {name!r} twice")
        if type(weight) is bool or not isinstance(weight, (int, float, Fraction)):
            raise TypeError(f"weight of {name!r} must be a number, got {describe(weight)}")
        if (isinstance(weight, float) and not math.isfinite(weight)) or weight < 0:
            raise ValueError(f"weight of {name!r} is {weight!r}; weights must be finite and >= 0")
        members[name] = weight if type(weight) is int else _exact(weight)
    return members


# -- counting ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Count:
    """Everything a tally learns from the ballots, exactly."""

    options: tuple[Any, ...]
    index: dict[Any, int]
    members: dict[str, Exact]
    total: Exact  # of the members' weights (they never change)
    by_confidence: bool
    status_quo: int | None
    weights: list[Exact]
    support: list[Exact]
    accepted: dict[str, Ballot]
    rejected: dict[str, list[str]]

    def standing(self, extra: Exact = 0, towards: int | None = None) -> Standing:
        """The standing, with ``extra`` weight (at full confidence) added to option ``towards``."""
        weights, support = list(self.weights), list(self.support)
        if towards is not None:
            weights[towards] += extra
            support[towards] += extra
        return Standing(tuple(map(_fraction, weights)), tuple(map(_fraction, support)), _fraction(self.total),
                        self.status_quo)  # fmt: skip

    def present(self) -> Exact:
        """Total weight of the members with an accepted ballot."""
        return sum(self.members[voter] for voter in self.accepted)

    def admit(self, voter: str, value: object, vote: int | None) -> str | None:
        """Count one ballot; returns why it is rejected, or None once it is counted."""
        try:
            ballot = Ballot.coerce(value)
        except InvalidBallot as exc:
            return f"malformed ballot: {exc}"
        if voter not in self.members:
            return f"{voter!r} is not in the electorate"
        if vote is not None and ballot.vote is not None and ballot.vote != vote:
            return f"ballot answers vote {ballot.vote}, not {vote}"
        if voter in self.accepted:
            return f"second ballot from {voter!r}; the first one counts"
        position = None
        if not ballot.abstains:
            position = select(self.options, self.index, ballot.choice)
            if position is None:
                return f"choice {describe(ballot.choice)} is not one of the options {list(self.options)!r}"
        self.accepted[voter] = ballot
        if position is not None:
            weight = self.members[voter]
            self.support[position] += weight
            self.weights[position] += weight * as_ratio(ballot.confidence) if self.by_confidence else weight
        return None


def _count(
    ballots: Mapping[str, Any] | Iterable[tuple[str, Any]],
    options: Sequence[Any],
    rule: Rule,
    electorate: Mapping[str, float] | Iterable[str],
    vote: int | None,
) -> _Count:
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a Rule (Majority(), Plurality(), ...), got {describe(rule)}")
    if vote is not None and type(vote) is not int:
        raise TypeError(f"vote must be an integer id or None, got {describe(vote)}")
    listed, index = check_options(options)
    status_quo = None
    if rule.status_quo is not None:
        status_quo = select(listed, index, rule.status_quo)
        if status_quo is None:
            raise ValueError(f"status quo {rule.status_quo!r} of {rule.name} is not one of {list(listed)!r}")
    members = _check_electorate(electorate)
    zeros: list[Exact] = [0] * len(listed)
    by_confidence = rule.weighting is Weighting.CONFIDENCE
    total = sum(members.values())
    count = _Count(listed, index, members, total, by_confidence, status_quo, list(zeros), list(zeros), {}, {})
    if isinstance(ballots, (str, bytes)) or not isinstance(ballots, Iterable):
        raise TypeError(f"ballots must be a mapping or (voter, ballot) pairs, got {describe(ballots)}")
    pairs: Iterable[Any] = ballots.items() if isinstance(ballots, Mapping) else ballots
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"ballots must be a mapping or (voter, ballot) pairs, got item {describe(pair)}")
        voter, value = pair
        if not isinstance(voter, str):
            raise TypeError(f"voter {describe(voter)} is not a name (str)")
        reason = count.admit(voter, value, vote)
        if reason is not None:
            count.rejected.setdefault(voter, []).append(reason)
    return count


def _judge(rule: Rule, standing: Standing, quorum: int | None, turnout: int) -> tuple[int | None, bool]:
    """(index of the outcome or None, whether the quorum is met)."""
    met = quorum is None or turnout >= quorum
    return (rule.decide(standing) if met else None), met


def _decision(count: _Count, rule: Rule, quorum: int | None) -> Decision:
    standing = count.standing()
    outcome, met = _judge(rule, standing, quorum, len(count.accepted))
    options = count.options
    return Decision(
        outcome=None if outcome is None else options[outcome],
        tally=MappingProxyType({option: float(w) for option, w in zip(options, count.weights)}),
        ballots=MappingProxyType(dict(count.accepted)),
        missing=frozenset(count.members.keys() - count.accepted.keys()),
        abstained=frozenset(voter for voter, ballot in count.accepted.items() if ballot.abstains),
        rejected=MappingProxyType({voter: tuple(reasons) for voter, reasons in count.rejected.items()}),
        rejected_count=sum(len(reasons) for reasons in count.rejected.values()),
        quorum_met=met,
        tie=bool(top_options(count.weights)),
        tied=tuple(options[index] for index in top_options(count.weights)),
        rule=rule.name,
        electorate_weight=float(standing.total),
        participating_weight=float(count.present()),
        options=options,
        electorate=MappingProxyType({name: float(weight) for name, weight in count.members.items()}),
        decided_by=None if outcome is None else rule.name,
    )


def _replayable(ballots: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Mapping[str, Any] | Iterable[Any]:
    """``ballots`` in a form a fallback can count more than once (an iterator runs out)."""
    if isinstance(ballots, (Mapping, str, bytes)) or not isinstance(ballots, Iterable):
        return ballots  # a mapping, or something _count refuses with a clear message
    return list(ballots)


def _fallback(decisions: Sequence[Decision], rules: Sequence[Rule]) -> Decision:
    """The first decision with an outcome (else the first rule's), named after the chain."""
    chosen = next((decision for decision in decisions if decision.outcome is not None), decisions[0])
    return chosen if len(rules) == 1 else dataclasses.replace(chosen, rule=chain_name(rules))


# -- the public functions -------------------------------------------------------------------


def tally(
    ballots: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    options: Sequence[Any],
    rule: Rules = _MAJORITY,
    electorate: Mapping[str, float] | Iterable[str],
    quorum: int | None = None,
    vote: int | None = None,
) -> Decision:
    """Count ``ballots`` under ``rule`` and return the :class:`Decision`.

    ``ballots`` maps voter names to ballots, or is an iterable of ``(voter, ballot)``
    pairs; a ballot may be a :class:`Ballot`, a wire ``dict``, or a bare choice (see
    :meth:`Ballot.coerce`). ``electorate`` maps names to weights (finite, >= 0) or
    lists names (weight 1 each). ``quorum`` and the rejection rules are described in
    the module docstring. Invalid arguments raise ``TypeError``/``ValueError``; bad
    ballots never raise, they are rejected.
    """
    checked_quorum = check_quorum(quorum)
    rules = as_rules(rule)
    replayable = _replayable(ballots) if len(rules) > 1 else ballots
    counts = [_count(replayable, options, each, electorate, vote) for each in rules]
    return _fallback([_decision(count, each, checked_quorum) for count, each in zip(counts, rules)], rules)


def is_decided(
    ballots: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    options: Sequence[Any],
    rule: Rules,
    electorate: Mapping[str, float] | Iterable[str],
    quorum: int | None = None,
    vote: int | None = None,
    pending: Iterable[str],
) -> Decision | None:
    """The :class:`Decision` if no ballots from ``pending`` voters could change it, else None.

    "Change" means change ``outcome`` or ``quorum_met``. ``pending`` names the members
    that may still vote; names outside the electorate, and members that already have
    an accepted ballot, are not pending (their later ballots would be rejected). Each
    pending member may yet abstain, vote for any option with any confidence, or never
    vote. With nobody pending this equals :func:`tally`.
    """
    if isinstance(pending, (str, bytes)) or not isinstance(pending, Iterable):
        raise TypeError(f"pending must be a collection of voter names, got {describe(pending)}")
    checked_quorum = check_quorum(quorum)
    rules = as_rules(rule)
    replayable = _replayable(ballots) if len(rules) > 1 else ballots
    counts = [_count(replayable, options, each, electorate, vote) for each in rules]
    decision = _fallback([_decision(count, each, checked_quorum) for count, each in zip(counts, rules)], rules)
    names = list(pending)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"pending voter {describe(name)} is not a name (str)")
    # A fallback is settled when each of its rules is (sound; possibly later than needed).
    if all(_settled(count, each, checked_quorum, names) for count, each in zip(counts, rules)):
        return decision
    return None


def _settled(count: _Count, rule: Rule, checked_quorum: int | None, pending: list[str]) -> bool:
    """True if no ballots from the ``pending`` voters could change this rule's decision."""
    still_open = {name for name in pending if name in count.members and name not in count.accepted}
    if not still_open:
        return True
    # Why these extremes suffice. Let P be the pending members' total weight. Every
    # completion lies between "all stay away" (the decision itself) and "all take part":
    # participation (the count of voters) is monotone, so quorum_met is constant iff it
    # agrees at those two. When it is, each option's tallied weight and support range from
    # their current values to current + P, the top reached when all pending members vote
    # for that option at confidence 1 (the "all for o" extremes, which also take part).
    # Threshold rules: an option passing now keeps passing (its weight only grows, the
    # threshold is fixed, and no second option can pass); an option passing in some
    # completion passes when all of P goes to it. Plurality: if y wins some completion,
    # giving all of P to y raises y and puts every rival back to its current weight, so
    # the options tied with y are a subset of those there and y still wins. If the current
    # winner x loses some completion, a rival o has more weight than x there, or as much
    # and the tie does not go to x; giving all of P to o instead keeps x at its current
    # weight (still top among the rest) and o at least as high, so x loses there too.
    extra = sum(count.members[name] for name in still_open)
    turnout = len(count.accepted) + len(still_open)
    current = _judge(rule, count.standing(), checked_quorum, len(count.accepted))
    extremes = [count.standing()] + [count.standing(extra, index) for index in range(len(count.options))]
    return all(_judge(rule, standing, checked_quorum, turnout) == current for standing in extremes)


def naive_recount(self: Decision, rule: Rules) -> Decision:
    """The old ``Decision.recount``: its own Fraction count of the decision's ballots."""
    rules = as_rules(rule)
    if self.electorate is None:
        raise ValueError(
            "this decision does not carry its electorate's weights (built by hand, or sent by an "
            "older peer with unequal weights), so it cannot be recounted"
        )
    options, index = check_options(self.options)
    members = {name: as_ratio(weight) for name, weight in self.electorate.items()}
    counted = [(_status_quo(each, options, index), each) for each in rules]
    first: tuple[Rule, list[Fraction], int | None] | None = None
    for status_quo, each in counted:
        weights = [Fraction(0)] * len(options)
        support = [Fraction(0)] * len(options)
        for voter, ballot in self.ballots.items():
            at = None if ballot.abstains else select(options, index, ballot.choice)
            if at is None or voter not in members:
                continue
            support[at] += members[voter]
            scale = as_ratio(ballot.confidence) if each.weighting is Weighting.CONFIDENCE else Fraction(1)
            weights[at] += members[voter] * scale
        standing = Standing(tuple(weights), tuple(support), sum(members.values(), Fraction(0)), status_quo)
        outcome = each.decide(standing) if self.quorum_met else None
        if first is None or outcome is not None:
            first = (each, weights, outcome)
        if outcome is not None:
            break
    assert first is not None
    decider, weights, outcome = first
    tied = top_options(weights)
    return dataclasses.replace(
        self,
        outcome=None if outcome is None else options[outcome],
        tally=MappingProxyType({option: float(weight) for option, weight in zip(options, weights)}),
        tie=bool(tied),
        tied=tuple(options[at] for at in tied),
        rule=chain_name(rules),
        decided_by=None if outcome is None else decider.name,
    )


def _status_quo(rule: Rule, options: tuple[Any, ...], index: Mapping[Any, int]) -> int | None:
    if rule.status_quo is None:
        return None
    found = select(options, index, rule.status_quo)
    if found is None:
        raise ValueError(f"status quo {rule.status_quo!r} of {rule.name} is not one of {list(options)!r}")
    return found


class NaiveVoteRound:
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
        self._ballots: list[tuple[str, Ballot]] = []
        self._voted: set[str] = set()
        self._errors: dict[str, Failure] = {}
        self._left: set[str] = set()
        self._invalid: dict[str, list[str]] = {}
        self._finished = False
        self._decided: Decision | None = None
        self.rejected = 0
        # Validate the arguments once, up front, with the same code that tallies.
        tally([], options=self.options, rule=rule, electorate=self.electorate, quorum=quorum, vote=vote_id)

    @property
    def pending(self) -> frozenset[str]:
        return frozenset(self.electorate) - self._voted - self._errors.keys() - self._left

    @property
    def complete(self) -> bool:
        # Counted rather than built from ``pending`` (the three sets are disjoint): this runs
        # once per ballot, and a new set per ballot is quadratic in the room's size.
        if self._finished or self._decided is not None:
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
            self._check_decided()
            return Verdict.ACCEPTED
        self._ballots.append((name, ballot))
        self._voted.add(name)
        self._check_decided()
        return verdict

    def fail(self, name: str, error: Failure) -> Verdict:
        verdict = self._admit(name)
        if verdict is Verdict.ACCEPTED:
            self._errors[name] = error
            self._check_decided()
        else:
            self.rejected += 1
        return verdict

    def left(self, name: str) -> None:
        if not self._finished and name in self.pending:
            self._left.add(name)
            self._check_decided()

    def _check_decided(self) -> None:
        if self.quorum is None or self._decided is not None:
            return
        self._decided = is_decided(
            self._ballots,
            options=self.options,
            rule=self.rule,
            electorate=self.electorate,
            quorum=self.quorum,
            vote=self.vote_id,
            pending=self.pending,
        )

    def finish(self) -> None:
        self._finished = True

    def decision(self, *, elapsed: float) -> Decision:
        result = tally(
            self._ballots,
            options=self.options,
            rule=self.rule,
            electorate=self.electorate,
            quorum=self.quorum,
            vote=self.vote_id,
        )
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
