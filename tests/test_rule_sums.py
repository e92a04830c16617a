"""The rules decide on ``int`` sums exactly as on the ``Fraction`` ones they are written for
(``consensus.decide.rules.decide_sums``): whole and fractional weights, every rule, ties,
status quos, fallbacks, and a rule of the user's own (which always gets ``Fraction``)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.decide.rules import (
    Exact,
    Majority,
    Plurality,
    Rule,
    Standing,
    Supermajority,
    TieBreak,
    Unanimous,
    Weighting,
    decide_sums,
    first_decider,
    top_options,
)

SOME = settings(max_examples=800, deadline=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen(Majority):
    """A Majority subclass that records what it was given (a user's rule sees Fractions)."""

    given: list[Standing]

    def decide(self, standing: Standing) -> int | None:
        self.given.append(standing)
        return Majority.decide(self, standing)


def rules(status_quo: int | None) -> st.SearchStrategy[Rule]:
    weighting = st.sampled_from(Weighting)
    quo = None if status_quo is None else f"o{status_quo}"
    breaks = [TieBreak.NONE, TieBreak.FIRST_LISTED] + ([TieBreak.STATUS_QUO] if quo is not None else [])
    return st.one_of(
        st.builds(Majority, weighting=weighting, status_quo=st.just(quo)),
        st.builds(Unanimous, weighting=weighting, status_quo=st.just(quo)),
        st.builds(Supermajority, st.sampled_from([2 / 3, 0.75, 0.9, 1.0, Fraction(3, 5)]), weighting=weighting),
        st.builds(Plurality, weighting=weighting, tie_break=st.sampled_from(breaks), status_quo=st.just(quo)),
    )


def sums(whole: bool) -> st.SearchStrategy[Exact]:
    if whole:
        return st.integers(0, 12)
    return st.one_of(st.integers(0, 12), st.fractions(min_value=0, max_value=12, max_denominator=30))


@st.composite
def standings(draw: st.DrawFn) -> dict[str, Any]:
    whole = draw(st.booleans(), label="whole")
    n = draw(st.integers(0, 5), label="options")
    support = draw(st.lists(sums(whole), min_size=n, max_size=n), label="support")
    # a confidence-weighted sum never exceeds the support; its denominators come from confidences
    shares = draw(st.lists(st.fractions(0, 1, max_denominator=10), min_size=n, max_size=n), label="confidence")
    confident = [s * c for s, c in zip(support, shares, strict=True)]
    total = sum(support) + draw(sums(whole), label="missing weight")
    status_quo = draw(st.none() | st.integers(0, n - 1)) if n else None
    return {"support": support, "confident": confident, "total": total, "status_quo": status_quo}


def fractions(values: list[Exact]) -> tuple[Fraction, ...]:
    return tuple(Fraction(value) for value in values)


@SOME
@given(standings(), st.data())
def test_a_rule_decides_on_sums_as_on_their_fractions(case: dict[str, Any], data: st.DataObject) -> None:
    rule = data.draw(rules(case["status_quo"]), label="rule")
    weights = case["confident"] if rule.weighting is Weighting.CONFIDENCE else case["support"]
    standing = Standing(fractions(weights), fractions(case["support"]), Fraction(case["total"]), case["status_quo"])
    assert decide_sums(rule, weights, case["support"], case["total"], case["status_quo"]) == rule.decide(standing)
    assert top_options(weights) == top_options(standing.weights)


@SOME
@given(standings(), st.data())
def test_a_fallback_decides_on_sums_as_rule_by_rule_on_fractions(case: dict[str, Any], data: st.DataObject) -> None:
    chain = data.draw(st.lists(rules(case["status_quo"]), min_size=1, max_size=3), label="rules")
    quos = [case["status_quo"]] * len(chain)
    expected: tuple[int, int | None] = (0, None)
    for at, rule in enumerate(chain):
        weights = case["confident"] if rule.weighting is Weighting.CONFIDENCE else case["support"]
        outcome = rule.decide(Standing(fractions(weights), fractions(case["support"]), Fraction(case["total"]),
                                       case["status_quo"]))  # fmt: skip
        if outcome is not None:
            expected = (at, outcome)
            break
    assert first_decider(chain, case["support"], case["confident"], case["total"], quos) == expected


@SOME
@given(standings())
def test_a_rule_of_ones_own_gets_fractions(case: dict[str, Any]) -> None:
    given_standings: list[Standing] = []
    rule = Seen(given=given_standings)
    support, total = case["support"], case["total"]
    outcome = decide_sums(rule, support, support, total, None)
    assert outcome == Majority().decide(Standing(fractions(support), fractions(support), Fraction(total)))
    (standing,) = given_standings
    assert all(type(value) is Fraction for value in (*standing.weights, *standing.support, standing.total))
    assert standing == Standing(fractions(support), fractions(support), Fraction(total))
