"""Decision rules: which option, if any, wins a counted vote (pure code).

A rule sees a :class:`Standing` (per-option weights, in ``options`` order, and the
electorate's total weight) and returns the index of the winning option or ``None``.
All arithmetic is exact: :class:`fractions.Fraction`, or ``int`` while every sum is whole
(the rules here compare either exactly; see :func:`decide_sums`).

Rules
=====

``Majority()``
    An option wins iff its tallied weight is *more than half* of the electorate's
    total weight. Missing and abstaining members count in the denominator, so
    exactly half never wins.
``Supermajority(fraction)``
    An option wins iff its tallied weight is at least ``fraction`` of the
    electorate's total weight, ``1/2 < fraction <= 1``. Exactly reaching the
    threshold wins: ``Supermajority(2/3)`` passes with 2 of 3 equal voters.
``Unanimous()``
    An option wins iff every member of positive weight cast a (non-abstaining)
    ballot for it. Confidence never matters here: with ``Weighting.CONFIDENCE`` a
    unanimous vote still wins, the tally merely reports the weighted sums.
``Plurality()``
    The option with the highest tallied weight wins, provided that weight is
    positive (some non-abstaining ballot carries positive weight).

The three threshold rules need an electorate of positive total weight; with none,
nothing wins.

Fallbacks
=========

Wherever a rule is taken (``tally(rule=...)``, ``Decision.recount``), an ordered list
of rules is a *fallback*: ``[Majority(), Plurality()]`` tries each rule in turn on the
same ballots and the first one with an outcome decides (``Decision.decided_by`` names
it; ``Decision.rule`` is the whole chain, ``"Majority, else Plurality"``). When none
decides, the decision is the first rule's. Each rule counts with its own weighting.

Weighting
=========

``Weighting.EQUAL`` counts each voter with its electorate weight;
``Weighting.CONFIDENCE`` multiplies that weight by the ballot's confidence. The
denominator of threshold rules is always the electorate's total (unscaled) weight:
a member who stays away counts as if it had full confidence against.

Tie policy
==========

A *tie* (reported in ``Decision.tie`` / ``Decision.tied``, for every rule) means two
or more options share the highest tallied weight and that weight is positive.

* Threshold rules (``Majority``, ``Supermajority``, ``Unanimous``): since every
  threshold is above one half, at most one option can pass, and an option that
  passes is never tied. A tie therefore always means nobody reached the threshold:
  the outcome is ``None`` and ``tie_break`` (and ``status_quo``) have no effect.
* ``Plurality``: a tie among the top options is resolved by ``tie_break``:
  ``TieBreak.NONE`` gives no outcome; ``TieBreak.FIRST_LISTED`` picks the tied option
  listed first in ``options``; ``TieBreak.STATUS_QUO`` picks the rule's
  ``status_quo`` if it is among the tied options, else gives no outcome.

``TieBreak.STATUS_QUO`` requires a ``status_quo``; whenever a ``status_quo`` is set,
the tally requires it to be one of the options (for every rule).

Exact ratios
============

Float inputs (``fraction`` here; weights and confidences in the
tally) are read as the ratio they were written as, see :func:`as_ratio`:
``2/3`` is exactly 2/3 and ``0.9`` exactly 9/10, so ``Supermajority(0.9)`` passes
with 9 of 10 equal voters (the binary value of ``0.9`` is slightly above 9/10).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Final

__all__ = [
    "Majority",
    "Plurality",
    "Rule",
    "Rules",
    "Standing",
    "Supermajority",
    "TieBreak",
    "Unanimous",
    "Weighting",
    "as_ratio",
    "as_rules",
    "chain_name",
    "decide_sums",
    "first_decider",
    "standing_of",
]


class Weighting(Enum):
    """How much a ballot weighs."""

    EQUAL = "equal"
    """The voter's electorate weight."""
    CONFIDENCE = "confidence"
    """The voter's electorate weight times the ballot's confidence."""


class TieBreak(Enum):
    """What a :class:`Plurality` vote does when the top options are tied."""

    NONE = "none"
    """A tie yields no outcome."""
    FIRST_LISTED = "first_listed"
    """The tied option listed first in ``options`` wins."""
    STATUS_QUO = "status_quo"
    """The rule's ``status_quo`` wins if it is among the tied options; else no outcome."""


def as_ratio(value: float | Fraction) -> Fraction:
    """The exact ratio a finite number was written as.

    Ints and Fractions are taken as they are. A float is read as the simplest
    fraction (denominator up to 1000) that rounds to it, else as its shortest
    decimal form: ``2/3`` -> 2/3, ``0.9`` -> 9/10, ``0.1234567`` -> 1234567/10000000.
    """
    if isinstance(value, (int, Fraction)):
        return Fraction(value)
    if isinstance(value, float) and value.is_integer():  # weights of 1.0: skip the search below
        return Fraction(int(value))
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    simple = Fraction(value).limit_denominator(1000)
    if float(simple) == value:
        return simple
    return Fraction(repr(float(value)))


Exact = int | Fraction
"""A weight or a sum of weights: an ``int`` while whole, else a ``Fraction`` (exact either way)."""


@dataclass(frozen=True, slots=True)
class Standing:
    """What a rule decides on. Every sequence is in ``options`` order.

    ``weights``: tallied weight of each option (the rule's weighting applied).
    ``support``: electorate weight of the voters for each option (confidence ignored).
    ``total``: the electorate's total weight.
    ``status_quo``: index of the rule's ``status_quo`` among the options, if set.
    """

    weights: tuple[Fraction, ...]
    support: tuple[Fraction, ...]
    total: Fraction
    status_quo: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule(abc.ABC):
    """Base of every decision rule; subclasses define :attr:`name` and :meth:`decide`.

    A vote with a quorum returns early once no ballot still possible could change its
    outcome (:func:`~consensus.decide.tally.is_decided`), judged from the extremes where the
    pending members all stay away or all back one option. That is sound for a rule whose
    winner, once it wins, keeps winning when it gains weight and its rivals do not, and under
    which an option that wins some completion wins when all the pending weight goes to it:
    true of the rules here; a rule of your own without that property should be used without
    a quorum (the vote then waits for everyone)."""

    weighting: Weighting = Weighting.EQUAL
    tie_break: TieBreak = TieBreak.NONE
    status_quo: Any | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.weighting, Weighting):
            raise TypeError(f"weighting must be a Weighting, got {self.weighting!r}")
        if not isinstance(self.tie_break, TieBreak):
            raise TypeError(f"tie_break must be a TieBreak, got {self.tie_break!r}")
        if self.status_quo is not None:
            try:
                hash(self.status_quo)
            except TypeError:
                raise TypeError(
                    f"status_quo must be an option (hashable), got a {type(self.status_quo).__name__}"
                ) from None
        if self.tie_break is TieBreak.STATUS_QUO and self.status_quo is None:
            raise ValueError("tie_break=TieBreak.STATUS_QUO needs a status_quo option")

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short display name, e.g. ``"Majority"`` or ``"Supermajority(2/3)"``."""

    @abc.abstractmethod
    def decide(self, standing: Standing) -> int | None:
        """Index of the winning option, or ``None`` when nothing wins."""

    def _decide_sums(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact,
                     status_quo: int | None) -> int | None:  # fmt: skip
        """:meth:`decide` on sums (see :func:`decide_sums`): on their :class:`Standing`, here."""
        return self.decide(standing_of(weights, support, total, status_quo))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Threshold(Rule):
    """A rule where an option wins by reaching a threshold above one half."""

    def decide(self, standing: Standing) -> int | None:
        return self._decide_sums(standing.weights, standing.support, standing.total, standing.status_quo)

    def _decide_sums(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact,
                     status_quo: int | None) -> int | None:  # fmt: skip
        if total <= 0:
            return None
        for index in range(len(weights)):
            if self._passes(weights, support, total, index):
                return index  # thresholds above 1/2: no other option can pass
        return None

    @abc.abstractmethod
    def _passes(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact, index: int) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Majority(_Threshold):
    """Wins with more than half of the electorate's total weight."""

    @property
    def name(self) -> str:
        return "Majority"

    def _passes(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact, index: int) -> bool:
        return 2 * weights[index] > total


@dataclass(frozen=True, slots=True)
class Supermajority(_Threshold):
    """Wins with at least ``fraction`` of the electorate's total weight (1/2 < fraction <= 1).

    ``fraction`` is stored as the exact :class:`~fractions.Fraction` it denotes (see
    :func:`as_ratio`).
    """

    fraction: float | Fraction

    def __post_init__(self) -> None:
        Rule.__post_init__(self)
        if type(self.fraction) is bool or not isinstance(self.fraction, (int, float, Fraction)):
            raise TypeError(f"Supermajority fraction must be a number, got {self.fraction!r}")
        ratio = as_ratio(self.fraction)
        if not Fraction(1, 2) < ratio <= 1:
            raise ValueError(f"Supermajority fraction {self.fraction!r} is not in (1/2, 1]")
        object.__setattr__(self, "fraction", ratio)

    @property
    def name(self) -> str:
        return f"Supermajority({self.fraction})"

    def _passes(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact, index: int) -> bool:
        return weights[index] >= Fraction(self.fraction) * total


@dataclass(frozen=True, slots=True, kw_only=True)
class Unanimous(_Threshold):
    """Wins when every member of positive weight voted for the option."""

    @property
    def name(self) -> str:
        return "Unanimous"

    def _passes(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact, index: int) -> bool:
        # Support sums the electorate weights of the option's voters; it equals the
        # total iff no member of positive weight is missing, abstained or voted otherwise.
        return support[index] == total


@dataclass(frozen=True, slots=True, kw_only=True)
class Plurality(Rule):
    """The option with the highest positive tallied weight wins; ties go to ``tie_break``."""

    @property
    def name(self) -> str:
        return "Plurality"

    def decide(self, standing: Standing) -> int | None:
        return self._decide_sums(standing.weights, standing.support, standing.total, standing.status_quo)

    def _decide_sums(self, weights: Sequence[Exact], support: Sequence[Exact], total: Exact,
                     status_quo: int | None) -> int | None:  # fmt: skip
        top = max(weights, default=0)
        if top <= 0:
            return None
        tied = [index for index, weight in enumerate(weights) if weight == top]
        if len(tied) == 1 or self.tie_break is TieBreak.FIRST_LISTED:
            return tied[0]
        if self.tie_break is TieBreak.STATUS_QUO and status_quo in tied:
            return status_quo
        return None


def _fraction(value: Exact) -> Fraction:
    return value if type(value) is Fraction else Fraction(value)


def standing_of(weights: Sequence[Exact], support: Sequence[Exact], total: Exact, status_quo: int | None) -> Standing:
    """The :class:`Standing` of these sums (``int`` while whole, else ``Fraction``): every
    value as a ``Fraction``, as a rule is written for."""
    return Standing(tuple(map(_fraction, weights)), tuple(map(_fraction, support)), _fraction(total), status_quo)


def decide_sums(rule: Rule, weights: Sequence[Exact], support: Sequence[Exact], total: Exact,
                status_quo: int | None) -> int | None:  # fmt: skip
    """``rule.decide`` on these sums (``int`` while whole, else ``Fraction``): the rules of
    this module compare them as they are (every comparison exact), any other rule (a
    subclass too) gets the :class:`Standing` of ``Fraction`` it is written for."""
    if type(rule) in _ON_SUMS:
        return rule._decide_sums(weights, support, total, status_quo)
    return Rule._decide_sums(rule, weights, support, total, status_quo)


def first_decider(rules: Sequence[Rule], support: Sequence[Exact], confident: Sequence[Exact], total: Exact,
                  status_quos: Sequence[int | None]) -> tuple[int, int | None]:  # fmt: skip
    """(the rule of a fallback that decides: the first with an outcome, else the first; its
    outcome's index): each rule on ``confident`` (weight times confidence) or ``support``
    (weight) as its :class:`Weighting` says, ``total`` the electorate's weight."""
    for at, rule in enumerate(rules):
        weights = confident if rule.weighting is Weighting.CONFIDENCE else support
        outcome = decide_sums(rule, weights, support, total, status_quos[at])
        if outcome is not None:
            return at, outcome
    return 0, None


def top_options(weights: Sequence[Exact]) -> list[int]:
    """Indices of the options tied at the highest positive weight (empty if no tie)."""
    top = max(weights, default=0)
    tied = [index for index, weight in enumerate(weights) if weight == top]
    return tied if top > 0 and len(tied) > 1 else []


_ON_SUMS: Final = frozenset({Majority, Supermajority, Unanimous, Plurality})
"""The rules that decide on ``int`` sums as exactly as on ``Fraction`` (exact types: a
subclass may override ``decide``)."""

Rules = Rule | Sequence[Rule]
"""A rule, or an ordered fallback of rules (the first that decides wins)."""


def as_rules(rule: object) -> tuple[Rule, ...]:
    """The rules of ``rule``: one rule, or the non-empty ordered fallback it lists."""
    if isinstance(rule, Rule):
        return (rule,)
    if isinstance(rule, (list, tuple)):
        if not rule:
            raise ValueError("a fallback of rules is empty: list at least one rule")
        for position, each in enumerate(rule):
            if not isinstance(each, Rule):
                raise TypeError(f"fallback entry {position} is not a Rule (Majority(), Plurality(), ...): {each!r}")
        return tuple(rule)
    raise TypeError(f"rule must be a Rule (Majority(), Plurality(), ...) or a list of them, got {type(rule).__name__}")


def chain_name(rules: Sequence[Rule]) -> str:
    """Display name of a fallback: ``"Majority, else Plurality"`` (one rule: its own name)."""
    return ", else ".join(rule.name for rule in rules)
