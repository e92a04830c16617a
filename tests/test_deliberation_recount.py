"""Decision.recount and fallback rules (issue 14): a recount is a fresh tally with the same
electorate and weights; a fallback is decided by its first deciding rule."""

from __future__ import annotations

import itertools
from dataclasses import replace
from fractions import Fraction as F
from typing import Any

import pytest
from _tally_cases import OUTSIDERS, Scenario, scenarios, through_cbor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.decide.ballot import Ballot
from consensus.decide.decision import Decision
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import is_decided, tally
from consensus.decide.vote import VoteRound

SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def with_rules(draw: st.DrawFn, count: int) -> tuple[Scenario, list[Rule]]:
    """A scenario and ``count`` further rules valid for its options."""
    scenario = draw(scenarios())
    rules = [draw(scenarios(options=scenario.options, max_voters=0, max_ballots=0)).rule for _ in range(count)]
    return scenario, rules


@SOME
@given(with_rules(1))
def test_recount_is_a_fresh_tally(case: tuple[Scenario, list[Rule]]) -> None:
    scenario, (other,) = case
    decision = scenario.run()
    assert decision.recount(other) == scenario.run(rule=other)
    assert decision.recount(scenario.rule) == decision
    # A decision that went over the wire recounts the same way: it keeps its electorate.
    received = Decision.from_wire(through_cbor(decision.to_wire()))
    assert received == decision
    assert received.recount(other) == scenario.run(rule=other)


@SOME
@given(with_rules(3))
def test_fallback_is_decided_by_its_first_deciding_rule(case: tuple[Scenario, list[Rule]]) -> None:
    scenario, rules = case
    chain = [scenario.rule, *rules[: 1 + len(scenario.pairs) % 3]]
    singles = [scenario.run(rule=rule) for rule in chain]
    decision = scenario.run(rule=chain)
    deciding = next((single for single in singles if single.outcome is not None), singles[0])
    assert decision == replace(deciding, rule=", else ".join(rule.name for rule in chain))
    assert decision.decided_by == (None if decision.outcome is None else chain[singles.index(deciding)].name)
    assert scenario.run().recount(chain) == decision
    assert Decision.from_wire(through_cbor(decision.to_wire())) == decision


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_voters=4, max_options=3, max_ballots=5), st.data())
def test_is_decided_with_a_fallback_is_sound(scenario: Scenario, data: st.DataObject) -> None:
    chain = [scenario.rule, data.draw(scenarios(options=scenario.options, max_voters=0, max_ballots=0)).rule]
    decision = scenario.run(rule=chain)
    open_members = sorted(decision.missing)
    pending = data.draw(st.lists(st.sampled_from(open_members), max_size=3, unique=True)) if open_members else []
    decided = is_decided(scenario.ballots, options=scenario.options, rule=chain, electorate=scenario.electorate,
                         quorum=scenario.quorum, vote=scenario.vote, pending=set(pending) | set(OUTSIDERS))  # fmt: skip
    if not pending:
        assert decided == decision
    if decided is None:
        return
    assert decided == decision
    moves: list[Any] = [None, Ballot(None)]
    moves += [Ballot(option, confidence) for option in scenario.options for confidence in (0.0, 0.5, 1.0)]
    for completion in itertools.product(moves, repeat=len(pending)):
        extra = [(voter, move) for voter, move in zip(pending, completion) if move is not None]
        done = tally(list(scenario.pairs) + extra, options=scenario.options, rule=chain,
                     electorate=scenario.electorate, quorum=scenario.quorum, vote=scenario.vote)  # fmt: skip
        assert (done.outcome, done.quorum_met) == (decision.outcome, decision.quorum_met)


def test_fallback_example() -> None:
    ballots = {"ann": "a", "bob": "a", "cy": "b", "dee": "c", "eve": None}
    decision = tally(ballots, options=["a", "b", "c"], rule=[Majority(), Plurality()], electorate=list(ballots))
    assert decision.outcome == "a" and decision.decided_by == "Plurality"
    assert decision.rule == "Majority, else Plurality"
    wire = decision.to_wire()
    assert wire["decided_by"] == "Plurality" and "electorate" not in wire  # equal weights: derived
    majority = decision.recount(Majority())
    assert majority.outcome is None and majority.decided_by is None and majority.rule == "Majority"
    assert "decided_by" not in majority.to_wire()
    assert decision.recount([Unanimous(), Supermajority(0.75)]).outcome is None


def test_weights_travel_only_when_unequal() -> None:
    weights = {"ann": 2, "bob": 1, "cy": F(1, 3)}
    decision = tally({"ann": "a", "bob": "b"}, options=["a", "b"], rule=Plurality(), electorate=weights)
    assert decision.to_wire()["electorate"] == {"ann": 2.0, "bob": 1.0, "cy": 1 / 3}
    assert decision.recount(Majority()).outcome == "a"  # 2 of 10/3 is more than half
    old = {key: value for key, value in decision.to_wire().items() if key != "electorate"}
    legacy = Decision.from_wire(old)  # an older sender: unequal weights, not said which
    assert legacy.electorate is None
    with pytest.raises(ValueError, match="cannot be recounted"):
        legacy.recount(Majority())


def test_recount_checks_its_rule() -> None:
    decision = tally({"ann": "a"}, options=["a", "b"], electorate=["ann"])
    with pytest.raises(ValueError, match="status quo 'z'"):
        decision.recount(Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="z"))
    with pytest.raises(ValueError, match="empty"):
        decision.recount([])
    with pytest.raises(TypeError, match="fallback entry 1"):
        decision.recount([Majority(), "Plurality"])  # type: ignore[list-item]
    confident = tally({"ann": Ballot("a", 0.5)}, options=["a"], electorate=["ann", "bob"])
    assert confident.recount(Plurality(weighting=Weighting.CONFIDENCE)).tally == {"a": 0.5}


def test_a_vote_round_takes_a_fallback() -> None:
    vote = VoteRound(1, electorate={"ann": 1, "bob": 1, "cy": 1}, options=["a", "b"],
                     rule=[Majority(), Plurality()], quorum=2)  # fmt: skip
    vote.ballot("ann", {"choice": "a"})
    vote.ballot("bob", {"choice": "b"})
    assert not vote.complete  # cy decides it either way
    vote.ballot("cy", {"choice": "a"})
    decision = vote.decision(elapsed=0.5)
    assert (decision.outcome, decision.decided_by, decision.rule) == ("a", "Majority", "Majority, else Plurality")
