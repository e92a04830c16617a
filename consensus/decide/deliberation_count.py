"""The running count of one deliberation round: :class:`StanceCount` (pure code).

A round's decision is the tally of its positions as ballots for their stances
(:func:`~consensus.decide.stances.tally_stances`). That tally builds a ballot and a
:class:`~consensus.decide.count.Count` for every position at the round's end, checking
again what the round has checked already: every position's stance, confidence and
reason, every member's weight; in a room, on the critical path between the round's last
reply and the next prompt (figures: ``docs/deliberation.md`` section 9).

A ``StanceCount`` adds each accepted position's weight to its stance's support as the
reply arrives (one sum), and at the round's end builds the same
:class:`~consensus.decide.decision.Decision` from those sums: the options are known
then (an open question's are its stances as shown), the rules decide on the same
:class:`~consensus.decide.rules.Standing` a ``Count`` gives them, and the ballots are
made of the checked positions without checking them again. Exactness is the
``Count``'s: whole weights are summed as ``int`` (and decided on as such,
:func:`~consensus.decide.rules.first_decider`), confidences read with
:func:`~consensus.decide.rules.as_ratio`. It takes the rounds of the common case,
every weight a whole number (a room's members all weigh 1); :meth:`StanceCount.of`
returns None for any other electorate, whose rounds the general tally counts.
``tests/test_deliberation_count.py`` compares the two, and the naive tally, on
generated rounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from consensus.decide.ballot import Ballot, select
from consensus.decide.decision import Decision
from consensus.decide.position import Position
from consensus.decide.rules import Exact, Rule, Weighting, as_ratio, chain_name, first_decider, top_options
from consensus.failure import Failure

__all__ = ["StanceCount"]

_NO_REJECTIONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({})
_new = object.__new__
_set = object.__setattr__


def _ballot(choice: str, position: Position) -> Ballot:
    """The ballot ``Ballot(choice, position.confidence, position.reason)``, built without its
    checks: a position's confidence and reason passed the same checks (the same limits)."""
    made = _new(Ballot)
    _set(made, "choice", choice)
    _set(made, "confidence", position.confidence)
    _set(made, "reason", position.reason)
    _set(made, "vote", None)
    _set(made, "signature", None)
    return made


class StanceCount:
    """The support of each stance of one round so far, by stance key."""

    __slots__ = ("_rules", "_support", "_total", "_weights")

    def __init__(self, weights: dict[str, int], rules: tuple[Rule, ...]) -> None:
        self._weights = weights  # member -> whole weight (checked by of())
        self._rules = rules
        self._total = sum(weights.values())
        self._support: dict[str, int] = {}  # stance key -> summed weight of its holders

    @classmethod
    def of(cls, electorate: Mapping[str, float], rules: tuple[Rule, ...]) -> StanceCount | None:
        """A count for a round asking ``electorate`` (member -> weight), or None unless every
        weight is a whole number >= 0 (the tally then counts the round)."""
        weights: dict[str, int] = {}
        for name, weight in electorate.items():
            if type(weight) is float and weight >= 0 and weight.is_integer():
                weights[name] = int(weight)
            elif type(weight) is int and weight >= 0:
                weights[name] = weight
            else:
                return None
        return cls(weights, rules)

    def add(self, name: str, stance: str) -> None:
        """``name`` (a member asked) holds ``stance`` (its key): counted once per member."""
        support = self._support
        support[stance] = support.get(stance, 0) + self._weights[name]

    def decision(
        self,
        positions: Mapping[str, Position],
        stances: Mapping[str, str],
        display: Mapping[str, str],
        options: Sequence[str],
        *,
        errors: Mapping[str, Failure],
        left: frozenset[str],
        elapsed: float,
    ) -> Decision | None:
        """The round's decision, as :func:`~consensus.decide.stances.tally_stances` gives it
        with ``errors``, ``left`` and ``elapsed`` (``options``: the question's, or the
        stances as shown; not empty). None when the tally would refuse the round (two equal
        options, from a key that is not a function of the stance; a status quo that is none
        of the options): the caller tallies it, which says why."""
        listed = tuple(options)
        index = {option: at for at, option in enumerate(listed)}
        if len(index) != len(listed):
            return None
        rules = self._rules
        status_quos = [None if rule.status_quo is None else select(listed, index, rule.status_quo) for rule in rules]
        if any(at is None and rule.status_quo is not None for at, rule in zip(status_quos, rules, strict=True)):
            return None
        support: list[int] = [0] * len(listed)
        for stance, weight in self._support.items():
            support[index[display[stance]]] = weight
        # As a Count weighs: confidence-weighted sums only when a rule asks for them.
        confident: list[Exact] = []
        if any(rule.weighting is Weighting.CONFIDENCE for rule in rules):
            confident = [0] * len(listed)
            weights = self._weights
            for name, position in positions.items():
                confident[index[display[stances[name]]]] += weights[name] * as_ratio(position.confidence)
        at, outcome = first_decider(rules, support, confident, self._total, status_quos)
        weighed = confident if rules[at].weighting is Weighting.CONFIDENCE else support
        tied = top_options(weighed)
        members = self._weights
        ballots = {name: _ballot(display[stances[name]], position) for name, position in positions.items()}
        return Decision(
            outcome=None if outcome is None else listed[outcome],
            tally=MappingProxyType({option: float(weight) for option, weight in zip(listed, weighed, strict=True)}),
            ballots=MappingProxyType(ballots),
            missing=frozenset(members.keys() - positions.keys()),
            abstained=frozenset(),
            rejected=_NO_REJECTIONS,
            rejected_count=0,
            quorum_met=True,
            tie=bool(tied),
            tied=tuple(listed[option] for option in tied),
            rule=chain_name(rules),
            electorate_weight=float(self._total),
            participating_weight=float(sum(support)),
            options=listed,
            errors=errors,
            left=left,
            elapsed=elapsed,
            electorate=MappingProxyType({name: float(weight) for name, weight in members.items()}),
            decided_by=None if outcome is None else rules[at].name,
        )
