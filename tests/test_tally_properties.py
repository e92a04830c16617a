"""The pure tally (``consensus.decide.tally``) against a naive reference
(``tests/_reference_tally.py``) on generated scenarios, and its properties: monotonicity,
the rules' order of strictness, the soundness and (on brute-forced completions)
exactness of ``is_decided``.
"""

from __future__ import annotations

import itertools
from fractions import Fraction as F
from typing import Any

import pytest
from _tally_cases import (
    CONFIDENCES,
    FEW,
    MANY,
    NAMES,
    OPTION_POOL,
    OPTIONS,
    OUTSIDERS,
    QUORUMS,
    SOME,
    WEIGHTS,
    Scenario,
    check,
    same,
    scenarios,
)
from hypothesis import given
from hypothesis import strategies as st

from consensus.decide.ballot import Ballot
from consensus.decide.rules import Majority, Plurality, Unanimous, Weighting
from consensus.decide.tally import is_decided, tally

# -- against the reference -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["majority", "supermajority", "unanimous", "plurality"])
def test_tally_matches_reference(kind: str) -> None:
    @MANY
    @given(scenarios(kinds=(kind,)))
    def matches(scenario: Scenario) -> None:
        check(scenario.run(), scenario.reference(), scenario)

    matches()


# -- properties -----------------------------------------------------------------------------


@st.composite
def majority_votes(draw: st.DrawFn) -> tuple[dict[str, Any], list[Any], dict[str, float], Majority, Any]:
    """Clean Majority votes leaning to the first option, with at least one member missing."""
    options = draw(OPTIONS)
    members = draw(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(WEIGHTS)), min_size=2,
                            max_size=len(NAMES), unique_by=lambda member: member[0]))  # fmt: skip
    electorate = {name: weight for name, (weight, _) in members}
    leaning = st.sampled_from([options[0]] * 3 + options + [None])
    ballots = {
        name: Ballot(draw(leaning), draw(st.sampled_from(CONFIDENCES))[0])
        for name, _ in members[:-1]
        if draw(st.integers(0, 3))
    }
    rule = Majority(weighting=draw(st.sampled_from(Weighting)))
    return ballots, options, electorate, rule, draw(QUORUMS)


@SOME
@given(majority_votes())
def test_majority_more_support_for_the_winner_never_hurts(case: Any) -> None:
    ballots, options, electorate, rule, quorum = case
    decision = tally(ballots, options=options, rule=rule, electorate=electorate, quorum=quorum)
    if decision.outcome is None:
        return
    for newcomer in sorted(decision.missing):
        for confidence in (0.0, 0.5, 1.0):
            more = ballots | {newcomer: Ballot(decision.outcome, confidence)}
            again = tally(more, options=options, rule=rule, electorate=electorate, quorum=quorum)
            assert same(again.outcome, decision.outcome)


@SOME
@given(st.lists(st.sampled_from(OPTION_POOL), min_size=2, max_size=2, unique=True).flatmap(
    lambda options: scenarios(options=options)))  # fmt: skip
def test_unanimous_implies_majority_implies_plurality(scenario: Scenario) -> None:
    weighting = scenario.rule.weighting
    outcomes = {
        name: scenario.run(rule=rule(weighting=weighting)).outcome
        for name, rule in (("unanimous", Unanimous), ("majority", Majority), ("plurality", Plurality))
    }
    if outcomes["unanimous"] is not None and weighting is Weighting.EQUAL:
        # With confidence weighting a unanimous vote may carry little weight.
        assert same(outcomes["majority"], outcomes["unanimous"])
    if outcomes["majority"] is not None:
        assert same(outcomes["plurality"], outcomes["majority"])


@SOME
@given(scenarios())
def test_is_decided_with_nobody_pending_is_the_tally(scenario: Scenario) -> None:
    decided = is_decided(scenario.pairs, options=scenario.options, rule=scenario.rule,
                         electorate=scenario.electorate, quorum=scenario.quorum, vote=scenario.vote,
                         pending=OUTSIDERS)  # fmt: skip
    assert decided == scenario.run()


NEVER = object()


@FEW
@given(scenarios(max_voters=5, max_options=3, max_ballots=6), st.data())
def test_is_decided_is_sound_and_exact(scenario: Scenario, data: st.DataObject) -> None:
    decision = scenario.run()
    open_members = sorted(decision.missing)
    pending = (
        data.draw(st.lists(st.sampled_from(open_members), min_size=1, max_size=3, unique=True))
        if open_members
        else []
    )
    ignored = data.draw(
        st.lists(st.sampled_from(sorted(decision.ballots) + OUTSIDERS), unique=True, max_size=2)
    )
    decided = is_decided(scenario.ballots, options=scenario.options, rule=scenario.rule,
                         electorate=scenario.electorate, quorum=scenario.quorum, vote=scenario.vote,
                         pending=set(pending) | set(ignored))  # fmt: skip
    confidences = [F(0), F(1, 2), F(1)] if scenario.rule.weighting is Weighting.CONFIDENCE else [F(1)]
    moves: list[Any] = [NEVER, (None, F(1), None)]
    moves += [(option, confidence, None) for option in scenario.options for confidence in confidences]
    changed = False
    for completion in itertools.product(moves, repeat=len(pending)):
        extra = [(voter, move) for voter, move in zip(pending, completion) if move is not NEVER]
        ref = scenario.reference(extra)
        if not same(ref.outcome, decision.outcome) or ref.quorum_met is not decision.quorum_met:
            changed = True
            break
    # The extremes is_decided looks at are among the completions tried here, so on
    # these completions it is exact, not only sound.
    assert (decided is None) is changed
    if decided is not None:
        assert decided == decision


def test_is_decided_examples() -> None:
    options = ["yes", "no"]
    electorate = ["ann", "bob", "cy"]
    early = is_decided({"ann": "yes", "bob": "yes"}, options=options, rule=Majority(), electorate=electorate,
                       pending={"cy"})  # fmt: skip
    assert early is not None and early.outcome == "yes"
    assert is_decided({"ann": "yes"}, options=options, rule=Majority(), electorate=electorate,
                      pending={"bob", "cy"}) is None  # fmt: skip
    # cy will never vote: the tie stays unresolved.
    stuck = is_decided({"ann": "yes", "bob": "no"}, options=options, rule=Majority(), electorate=electorate,
                       pending=set())  # fmt: skip
    assert stuck is not None and stuck.outcome is None
    # Quorum 3 may still be met by cy: not decided, although the outcome is fixed.
    assert is_decided({"ann": "yes", "bob": "yes"}, options=options, rule=Majority(), electorate=electorate,
                      quorum=3, pending={"cy"}) is None  # fmt: skip
    # A pending name that already voted, or is an outsider, is not pending.
    done = is_decided({"ann": "yes", "bob": "no", "cy": "no"}, options=options, rule=Plurality(),
                      electorate=electorate, pending={"ann", "zed"})  # fmt: skip
    assert done is not None and done.outcome == "no"
