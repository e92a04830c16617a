"""The pure tally (``consensus.decide.tally``): edge cases (empty electorates, abstentions,
ties, thresholds, zero weights, quorums, confidence weighting, tie breaks) and the
rejections it names.
"""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from consensus.decide.ballot import Ballot
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import tally

# -- edge cases -----------------------------------------------------------------------------


ALL_RULES = [
    Majority(),
    Supermajority(2 / 3),
    Unanimous(),
    Plurality(),
    Plurality(tie_break=TieBreak.FIRST_LISTED),
]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
@pytest.mark.parametrize("quorum", [None, 1, 3])
def test_empty_electorate(rule: Rule, quorum: int | None) -> None:
    decision = tally([("ann", "yes")], options=["yes", "no"], rule=rule, electorate=[], quorum=quorum)
    assert decision.outcome is None
    assert decision.quorum_met is (quorum is None)
    assert decision.electorate_weight == 0.0
    assert decision.rejected == {"ann": ("'ann' is not in the electorate",)}
    assert decision.missing == frozenset() and dict(decision.tally) == {"yes": 0.0, "no": 0.0}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_all_abstain(rule: Rule) -> None:
    decision = tally({"ann": None, "bob": Ballot(None)}, options=["yes", "no"], rule=rule, electorate=["ann", "bob"],
                     quorum=2)  # fmt: skip
    assert decision.outcome is None and decision.quorum_met
    assert decision.abstained == {"ann", "bob"} and decision.missing == frozenset()
    assert not decision.tie and decision.tied == ()
    assert decision.participating_weight == 2.0


def test_majority_even_split_is_a_tie_without_outcome() -> None:
    decision = tally({"ann": "yes", "bob": "no"}, options=["yes", "no"], electorate=["ann", "bob"])
    assert decision.outcome is None
    assert decision.tie and decision.tied == ("yes", "no")


def test_majority_needs_more_than_half_of_the_electorate() -> None:
    electorate = ["ann", "bob", "cy", "dee"]
    half = tally({"ann": "yes", "bob": "yes"}, options=["yes", "no"], electorate=electorate)
    assert half.outcome is None and not half.tie
    more = tally({"ann": "yes", "bob": "yes", "cy": "yes"}, options=["yes", "no"], electorate=electorate)
    assert more.outcome == "yes"
    # Missing and abstaining members count in the denominator.
    abstaining = tally({"ann": "yes", "bob": "yes", "cy": None}, options=["yes", "no"], electorate=electorate)
    assert abstaining.outcome is None


@pytest.mark.parametrize(("fraction", "needed", "of"), [(2 / 3, 2, 3), (0.9, 9, 10), (0.75, 3, 4), (1.0, 5, 5),
                                                         (0.6, 3, 5), (F(2, 3), 4, 6)])  # fmt: skip
def test_supermajority_exact_threshold(fraction: float, needed: int, of: int) -> None:
    electorate = [f"v{i}" for i in range(of)]
    rule = Supermajority(fraction)
    enough = tally(
        {f"v{i}": "yes" for i in range(needed)}, options=["yes", "no"], rule=rule, electorate=electorate
    )
    assert enough.outcome == "yes"
    short = tally({f"v{i}": "yes" for i in range(needed - 1)}, options=["yes", "no"], rule=rule,
                  electorate=electorate)  # fmt: skip
    assert short.outcome is None


def test_rule_names() -> None:
    assert (
        Majority().name == "Majority" and Unanimous().name == "Unanimous" and Plurality().name == "Plurality"
    )
    assert Supermajority(2 / 3).name == "Supermajority(2/3)"
    assert Supermajority(0.9).name == "Supermajority(9/10)"
    assert Supermajority(1).name == "Supermajority(1)"
    assert Supermajority(0.6667).fraction == F(6667, 10000)


def test_zero_weight_voters() -> None:
    electorate = {"ann": 1, "bob": 0, "cy": 0}
    decision = tally({"ann": "yes", "bob": "no"}, options=["yes", "no"], electorate=electorate)
    assert decision.outcome == "yes" and dict(decision.tally) == {"yes": 1.0, "no": 0.0}
    unanimous = tally({"ann": "yes"}, options=["yes", "no"], rule=Unanimous(), electorate=electorate)
    assert unanimous.outcome == "yes"
    # Only zero-weight voters: they meet a quorum (a count of members), yet nothing can win.
    nobody = tally({"bob": "yes", "cy": "yes"}, options=["yes", "no"], rule=Plurality(), electorate={"bob": 0, "cy": 0},
                   quorum=2)  # fmt: skip
    assert nobody.outcome is None and nobody.quorum_met and not nobody.tie
    counted = tally({"bob": "yes"}, options=["yes"], rule=Unanimous(), electorate={"bob": 0}, quorum=1)
    assert counted.quorum_met and counted.outcome is None


def test_quorum_counts_members_whatever_their_weights() -> None:
    electorate = {"ann": 10, "bob": 1, "cy": 1}
    heavy = tally({"ann": "yes"}, options=["yes", "no"], electorate=electorate, quorum=2)
    assert not heavy.quorum_met and heavy.outcome is None and heavy.participating_weight == 10.0
    light = tally({"bob": "no", "cy": None}, options=["yes", "no"], electorate=electorate, quorum=2)
    assert light.quorum_met and light.outcome is None


def test_weights_are_read_as_written() -> None:
    # 0.1 + 0.2 is exactly 0.3: Majority sees exactly half, so no outcome.
    decision = tally({"ann": "yes", "bob": "yes", "cy": "no"}, options=["yes", "no"],
                     electorate={"ann": 0.1, "bob": 0.2, "cy": 0.3})  # fmt: skip
    assert decision.outcome is None and decision.tie


def test_confidence_weighting() -> None:
    ballots = {"ann": Ballot("yes", 0.5), "bob": Ballot("yes", 0.5), "cy": Ballot("no", 1.0)}
    equal = tally(ballots, options=["yes", "no"], rule=Plurality(), electorate=["ann", "bob", "cy"])
    assert equal.outcome == "yes"
    weighted = tally(ballots, options=["yes", "no"], rule=Plurality(weighting=Weighting.CONFIDENCE),
                     electorate=["ann", "bob", "cy"])  # fmt: skip
    assert weighted.outcome is None and weighted.tie and dict(weighted.tally) == {"yes": 1.0, "no": 1.0}
    unsure = {"ann": Ballot("yes", 0.0), "bob": Ballot("yes", 0.1)}
    unanimous = tally(
        unsure, options=["yes"], rule=Unanimous(weighting=Weighting.CONFIDENCE), electorate=list(unsure)
    )
    assert unanimous.outcome == "yes" and dict(unanimous.tally) == {"yes": 0.1}


def test_tie_breaks_apply_to_plurality_only() -> None:
    ballots = {"ann": "b", "bob": "a", "cy": "c"}
    options = ["a", "b", "c"]
    electorate = ["ann", "bob", "cy"]
    assert tally(ballots, options=options, rule=Plurality(), electorate=electorate).outcome is None
    first = Plurality(tie_break=TieBreak.FIRST_LISTED)
    assert tally(ballots, options=options, rule=first, electorate=electorate).outcome == "a"
    status_quo = Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="c")
    assert tally(ballots, options=options, rule=status_quo, electorate=electorate).outcome == "c"
    two = tally({"ann": "a", "bob": "b"}, options=options, rule=status_quo, electorate=electorate)
    assert two.outcome is None and two.tied == ("a", "b")
    split = {"ann": "a", "bob": "b"}
    for rule in (Majority(tie_break=TieBreak.FIRST_LISTED), Supermajority(0.6, tie_break=TieBreak.FIRST_LISTED),
                 Unanimous(tie_break=TieBreak.STATUS_QUO, status_quo="a")):  # fmt: skip
        decision = tally(split, options=options, rule=rule, electorate=["ann", "bob"])
        assert decision.tie and decision.outcome is None


def test_rejections_name_the_problem() -> None:
    decision = tally(
        [("ann", Ballot("yes", vote=9)), ("ann", "maybe"), ("ann", "yes"), ("ann", "no"), ("zed", "yes"),
         ("bob", {"choice": "yes", "confidence": 3}), ("bob", [1])],
        options=["yes", "no"], electorate=["ann", "bob"], vote=4,
    )  # fmt: skip
    reasons = decision.rejected
    assert reasons["ann"][0] == "ballot answers vote 9, not 4"
    assert "'maybe'" in reasons["ann"][1] and "options" in reasons["ann"][1]
    assert reasons["ann"][2] == "second ballot from 'ann'; the first one counts"
    assert reasons["zed"] == ("'zed' is not in the electorate",)
    assert reasons["bob"][0].startswith("malformed ballot:") and "3" in reasons["bob"][0]
    assert "a list" in reasons["bob"][1]
    assert decision.rejected_count == 6
    assert dict(decision.ballots) == {"ann": Ballot("yes")}
    assert decision.missing == {"bob"}


def test_choices_match_options_like_cbor() -> None:
    electorate = ["ann", "bob", "cy", "dee"]
    ballots = {"ann": True, "bob": 1.0, "cy": 0, "dee": False}
    decision = tally(ballots, options=[1, False], rule=Plurality(), electorate=electorate)
    assert dict(decision.tally) == {1: 1.0, False: 1.0}
    assert set(decision.rejected) == {"ann", "cy"}
