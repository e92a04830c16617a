"""The running count of one vote: :class:`Count` (pure code: no I/O, no clock).

A count is built once per vote and fed ballots, and members that may still vote or
will not; each costs O(1) (a few sums), so a vote of n members costs O(n) to count
and no ballot is ever counted twice. It answers at any time, without recounting:
each rule's :class:`~consensus.decide.rules.Standing` and outcome, whether the quorum
is met, and whether any ballot still possible could change that (:meth:`Count.settled`,
O(rules x options) calls of a rule). :func:`~consensus.decide.tally.tally`,
:func:`~consensus.decide.tally.is_decided`, :class:`~consensus.decide.vote.VoteRound`
and :meth:`Decision.recount <consensus.decide.decision.Decision.recount>` all read one;
:meth:`Decision.from_count <consensus.decide.decision.Decision.from_count>` builds the
decision. Which ballots count, and the quorum, are described in
:mod:`consensus.decide.tally`.

Exactness: sums are kept as ``int`` while every weight is whole, ``Fraction`` once a
fractional weight or a confidence weighting joins them (``int + Fraction`` is exact);
floats are read as the ratio they were written as (:func:`~consensus.decide.rules.as_ratio`).
The rules of :mod:`~consensus.decide.rules` decide on those sums as they are (exact
comparisons either way); any other rule sees them as ``Fraction`` in a ``Standing``
(:func:`~consensus.decide.rules.decide_sums`). Every rule of a fallback shares
the count: which ballots are accepted does not depend on the rule, and the weights only on
its :class:`~consensus.decide.rules.Weighting` (``EQUAL``: the support itself).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Final

from consensus.decide.ballot import Ballot, check_options, select
from consensus.decide.checks import describe
from consensus.decide.quorum import check_quorum
from consensus.decide.rules import (
    Exact,
    Majority,
    Rule,
    Rules,
    Standing,
    Weighting,
    as_ratio,
    as_rules,
    decide_sums,
    first_decider,
    standing_of,
)
from consensus.errors import InvalidBallot

__all__ = ["Count", "Exact"]

_MAJORITY: Final = Majority()
"""The default rule (rules are frozen, so one instance serves every call)."""

def _exact(value: float | Fraction) -> Exact:
    ratio = as_ratio(value)
    return ratio.numerator if ratio.denominator == 1 else ratio


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
        if type(weight) is int:
            members[name] = weight
        elif type(weight) is float and weight.is_integer():
            members[name] = int(weight)  # the room's weights are 1.0: no Fraction on the way to 1
        else:
            members[name] = _exact(weight)
    return members


def _status_quo(rule: Rule, options: tuple[Any, ...], index: Mapping[Any, int]) -> int | None:
    if rule.status_quo is None:
        return None
    found = select(options, index, rule.status_quo)
    if found is None:
        raise ValueError(f"status quo {rule.status_quo!r} of {rule.name} is not one of {list(options)!r}")
    return found


class Count:
    """The ballots of one vote counted so far, under one rule or a fallback of rules.

    The arguments mean what they mean for :func:`~consensus.decide.tally.tally`, and are
    checked the same way (``TypeError``/``ValueError``). Nobody is *open* (may still vote)
    until :meth:`expect` says so; an accepted ballot or :meth:`close` ends that.
    """

    __slots__ = ("_by_confidence", "_confident", "_open", "_open_weight", "accepted", "index", "members",
                 "options", "present", "quorum", "rejected", "rules", "status_quos", "support", "total",
                 "vote")  # fmt: skip

    def __init__(
        self,
        *,
        options: Sequence[Any],
        rule: Rules = _MAJORITY,
        electorate: Mapping[str, float] | Iterable[str],
        quorum: int | None = None,
        vote: int | None = None,
    ) -> None:
        self.quorum: Final = check_quorum(quorum)
        self.rules: Final = as_rules(rule)
        if vote is not None and type(vote) is not int:
            raise TypeError(f"vote must be an integer id or None, got {describe(vote)}")
        self.vote: Final = vote
        self.options, self.index = check_options(options)
        self.status_quos: Final = tuple(_status_quo(each, self.options, self.index) for each in self.rules)
        self.members: Final = _check_electorate(electorate)
        self.total: Final[Exact] = sum(self.members.values())
        self._by_confidence: Final = tuple(each.weighting is Weighting.CONFIDENCE for each in self.rules)
        self.support: list[Exact] = [0] * len(self.options)
        """Electorate weight of each option's voters (the weights under ``Weighting.EQUAL``)."""
        self._confident: list[Exact] = [0] * len(self.options) if any(self._by_confidence) else []
        self.accepted: dict[str, Ballot] = {}
        """The accepted ballots (abstentions too), in the order they were accepted."""
        self.rejected: dict[str, list[str]] = {}
        """One reason per rejected ballot, by voter."""
        self.present: Exact = 0
        """Total weight of the members with an accepted ballot."""
        self._open: set[str] = set()
        self._open_weight: Exact = 0

    # -- feeding it ------------------------------------------------------------------------

    def add(self, voter: str, value: object) -> str | None:
        """Count one ballot (a :class:`Ballot`, a wire ``dict`` or a bare choice); returns why
        it is rejected (also kept in :attr:`rejected`), or None once it is counted."""
        reason = self._admit(voter, value)
        if reason is not None:
            self.rejected.setdefault(voter, []).append(reason)
        return reason

    def _admit(self, voter: str, value: object) -> str | None:
        try:
            ballot = Ballot.coerce(value)
        except InvalidBallot as exc:
            return f"malformed ballot: {exc}"
        weight = self.members.get(voter)
        if weight is None:
            return f"{voter!r} is not in the electorate"
        if self.vote is not None and ballot.vote is not None and ballot.vote != self.vote:
            return f"ballot answers vote {ballot.vote}, not {self.vote}"
        if voter in self.accepted:
            return f"second ballot from {voter!r}; the first one counts"
        position = None
        if not ballot.abstains:
            position = select(self.options, self.index, ballot.choice)
            if position is None:
                return f"choice {describe(ballot.choice)} is not one of the options {list(self.options)!r}"
        self.accepted[voter] = ballot
        self.present += weight
        self.close(voter)
        if position is not None:
            self.support[position] += weight
            if self._confident:
                self._confident[position] += weight * as_ratio(ballot.confidence)
        return None

    def add_all(self, ballots: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Count ``ballots``: a mapping from voter names to ballots, or ``(voter, ballot)`` pairs."""
        if isinstance(ballots, (str, bytes)) or not isinstance(ballots, Iterable):
            raise TypeError(f"ballots must be a mapping or (voter, ballot) pairs, got {describe(ballots)}")
        pairs: Iterable[Any] = ballots.items() if isinstance(ballots, Mapping) else ballots
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ballots must be a mapping or (voter, ballot) pairs, got item {describe(pair)}")
            voter, value = pair
            if not isinstance(voter, str):
                raise TypeError(f"voter {describe(voter)} is not a name (str)")
            self.add(voter, value)

    def expect(self, names: Iterable[str]) -> None:
        """These members may still vote. Names outside the electorate, and members with an
        accepted ballot, are ignored: their later ballots would be rejected."""
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"pending voter {describe(name)} is not a name (str)")
            weight = self.members.get(name)
            if weight is not None and name not in self.accepted and name not in self._open:
                self._open.add(name)
                self._open_weight += weight

    def close(self, name: str) -> None:
        """``name`` will not vote (any more): it failed, left, or its ballot was dealt with."""
        if name in self._open:
            self._open.remove(name)
            self._open_weight -= self.members[name]

    # -- reading it ------------------------------------------------------------------------

    @property
    def turnout(self) -> int:
        """How many members have an accepted ballot (what a quorum counts)."""
        return len(self.accepted)

    @property
    def quorum_met(self) -> bool:
        return self.quorum is None or len(self.accepted) >= self.quorum

    def weights(self, at: int) -> Sequence[Exact]:
        """Tallied weight of each option under rule ``at`` of :attr:`rules` (do not change it)."""
        return self._confident if self._by_confidence[at] else self.support

    def standing(self, at: int = 0) -> Standing:
        """What rule ``at`` of :attr:`rules` decides on."""
        return standing_of(self.weights(at), self.support, self.total, self.status_quos[at])

    def decider(self, met: bool | None = None) -> tuple[int, int | None]:
        """(the rule that decides: the first with an outcome, else the first; its outcome's
        index). ``met``: whether the quorum is met (default: :attr:`quorum_met`); without it
        nothing decides."""
        if not (self.quorum_met if met is None else met):
            return 0, None
        return first_decider(self.rules, self.support, self._confident, self.total, self.status_quos)

    def settled(self) -> bool:
        """True if no ballots from the open members could change the decision (its outcome
        or ``quorum_met``); a fallback is settled when each of its rules is (sound, possibly
        later than needed)."""
        if not self._open:
            return True
        # Why these extremes suffice. Let P be the open members' total weight. Every
        # completion lies between "all stay away" (the decision itself) and "all take part":
        # participation (the count of voters) is monotone, so quorum_met is constant iff it
        # agrees at those two. If it is never met, nothing decides in any completion. If it
        # is always met, each option's tallied weight and support range from their current
        # values to current + P, the top reached when all open members vote for that option
        # at confidence 1 (the "all for o" extremes, which also take part), and the rule's
        # outcome is constant iff it is the current one at every "all for o".
        # Threshold rules: an option passing now keeps passing (its weight only grows, the
        # threshold is fixed, and no second option can pass); an option passing in some
        # completion passes when all of P goes to it. Plurality: if y wins some completion,
        # giving all of P to y raises y and puts every rival back to its current weight, so
        # the options tied with y are a subset of those there and y still wins. If the current
        # winner x loses some completion, a rival o has more weight than x there, or as much
        # and the tie does not go to x; giving all of P to o instead keeps x at its current
        # weight (still top among the rest) and o at least as high, so x loses there too.
        if not self.quorum_met:
            return self.quorum is not None and len(self.accepted) + len(self._open) < self.quorum
        extra = self._open_weight
        support = tuple(self.support)
        total = self.total
        for at, rule in enumerate(self.rules):
            weights = tuple(self._confident) if self._by_confidence[at] else support
            status_quo = self.status_quos[at]
            current = decide_sums(rule, weights, support, total, status_quo)
            for option in range(len(weights)):
                more_weights, more_support = _plus(weights, option, extra), _plus(support, option, extra)
                if decide_sums(rule, more_weights, more_support, total, status_quo) != current:
                    return False
        return True


def _plus(values: tuple[Exact, ...], at: int, extra: Exact) -> tuple[Exact, ...]:
    return (*values[:at], values[at] + extra, *values[at + 1 :])
