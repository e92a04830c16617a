"""Ballots, rules and the pure tally (``consensus.decide.ballot``, ``_rules``, ``_tally``).

The tally is checked against a naive reference (``tests/_reference_tally.py``) on
generated electorates, ballots, options, rules and quorums; then edge cases, rule
properties, the soundness (and, on the brute-forced completions, exactness) of
``is_decided``, argument errors, and the wire forms of ballots and decisions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction as F
from typing import Any

import pytest
from _reference_tally import MALFORMED, RefResult, reference_tally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.decide.ballot import MAX_REASON_LENGTH, Ballot
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import Decision, is_decided, tally
from consensus.errors import InvalidBallot, InvalidDecision
from patterns import ConsensusError, decode_body, encode_body

MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OPTION_POOL: list[Any] = ["a", "b", "c", "d", 1, 2.5, False, b"x"]
# Never options: a bool that equals an option (True == 1, 0 == False), an
# unhashable value, NaN, and text that is no option. 1.0 selects the option 1.
OTHER_CHOICES: list[Any] = ["zzz", True, 0, 1.0, [1], math.nan]
NAMES = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]
OUTSIDERS = ["zed", "yan"]
# (what the implementation is given, the exact value the reference uses)
WEIGHTS = [(0, F(0)), (1, F(1)), (2, F(2)), (0.5, F(1, 2)), (1 / 3, F(1, 3)), (1.5, F(3, 2)),
           (0.1, F(1, 10)), (0.2, F(1, 5)), (0.3, F(3, 10))]  # fmt: skip
CONFIDENCES = [(0.0, F(0)), (0.5, F(1, 2)), (1.0, F(1)), (0.3, F(3, 10)), (2 / 3, F(2, 3)), (1, F(1))]
FRACTIONS = [
    (2 / 3, F(2, 3)),
    (0.75, F(3, 4)),
    (0.9, F(9, 10)),
    (1.0, F(1)),
    (0.6, F(3, 5)),
    (0.51, F(51, 100)),
]
MALFORMED_WIRE: list[dict[Any, Any]] = [
    {"choice": "a", "bogus": 1},
    {"confidence": 0.5},
    {"choice": "a", "confidence": 2},
    {"choice": "a", "confidence": True},
    {"choice": "a", "vote": "x"},
    {"choice": "a", "vote": -1},
    {"choice": "a", "reason": 7},
    {1: "a"},
]
TIE_NAMES = {TieBreak.NONE: "none", TieBreak.FIRST_LISTED: "first", TieBreak.STATUS_QUO: "status_quo"}


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type (so that 1 and True, 1 and 1.0 stay apart)."""
    return type(a) is type(b) and a == b


@dataclass
class Scenario:
    """One generated vote: arguments for ``tally`` and the same vote for the reference."""

    pairs: list[tuple[str, Any]]  # (voter, ballot as given to the implementation)
    ballots: Any  # pairs, or a dict of them when no voter repeats
    options: list[Any]
    electorate: Any
    rule: Rule
    quorum: int | None
    vote: int | None
    ref_pairs: list[tuple[str, Any]]
    ref_electorate: dict[str, F]
    ref_rule: dict[str, Any]

    def run(self, **changes: Any) -> Decision:
        kwargs = {"options": self.options, "rule": self.rule, "electorate": self.electorate,
                  "quorum": self.quorum, "vote": self.vote} | changes  # fmt: skip
        return tally(
            changes.pop("ballots", self.ballots), **{k: v for k, v in kwargs.items() if k != "ballots"}
        )

    def reference(self, extra: Sequence[tuple[str, Any]] = ()) -> RefResult:
        return reference_tally(self.ref_pairs + list(extra), options=self.options, electorate=self.ref_electorate,
                               quorum=self.quorum, vote=self.vote, **self.ref_rule)  # fmt: skip


FORMS = ["ballot", "ballot", "raw", "wire", "malformed"]
# A ballot packed into one integer (few draws keep generation fast; 0 is the simplest
# ballot): voter, choice, confidence, vote id, form, malformed variant, keep a null vote key.
BALLOT_RADIXES = (16, 16, len(CONFIDENCES), 3, len(FORMS), len(MALFORMED_WIRE), 2)
BALLOT_SPECS = st.integers(0, math.prod(BALLOT_RADIXES) - 1)


def unpack(spec: int) -> list[int]:
    digits = []
    for radix in BALLOT_RADIXES:
        spec, digit = divmod(spec, radix)
        digits.append(digit)
    return digits


RULE_SPECS = st.tuples(st.sampled_from(Weighting), st.sampled_from(TieBreak), st.integers(0, 7),
                       st.sampled_from(FRACTIONS))  # fmt: skip
# A quorum is a count of members (weights do not matter); 7 is every generated voter.
QUORUMS = st.sampled_from([None] * 8 + [1, 2, 3, 4, 5, 7])
OPTIONS = st.lists(st.sampled_from(OPTION_POOL), min_size=1, max_size=4, unique=True)


@st.composite
def scenarios(
    draw: st.DrawFn, *, max_voters: int = 7, max_options: int = 4, max_ballots: int = 10,
    kinds: tuple[str, ...] = ("majority", "supermajority", "unanimous", "plurality"),
    options: list[Any] | None = None, clean: bool | None = None,
) -> Scenario:  # fmt: skip
    """A generated vote; ``clean`` ones (default: either) have only well-formed ballots from
    members for options or abstaining; the others mostly so.
    """
    if clean is None:
        clean = draw(st.booleans())
    if options is None:
        options = draw(OPTIONS)[:max_options]
    size = draw(st.integers(0, max_voters))
    members = list(zip(NAMES[:size], draw(st.lists(st.sampled_from(WEIGHTS), min_size=size, max_size=size))))
    names = [name for name, _ in members]
    if draw(st.booleans()):
        electorate: Any = list(names)
        ref_electorate = {name: F(1) for name in names}
    else:
        electorate = {name: given_ for name, (given_, _) in members}
        ref_electorate = {name: exact for name, (_, exact) in members}

    voters = names if clean and names else names * 2 + OUTSIDERS
    leaning = [options[0]] * 3 if draw(st.booleans()) else []
    choices = leaning + options * 2 + [None] + ([] if clean else OTHER_CHOICES)
    pairs, ref_pairs = [], []
    count = draw(st.integers(0, max_ballots))
    for spec in draw(st.lists(BALLOT_SPECS, min_size=count, max_size=count)):
        voter_at, choice_at, confidence_at, vote_at, form_at, malformed_at, keep = unpack(spec)
        voter, choice = voters[voter_at % len(voters)], choices[choice_at % len(choices)]
        confidence, exact_confidence = CONFIDENCES[confidence_at]
        vote_id = None if clean else [None, 1, 2][vote_at]
        form, malformed = ("ballot" if clean else FORMS[form_at]), MALFORMED_WIRE[malformed_at]
        ref: Any = (choice, exact_confidence, vote_id)
        if form == "ballot":
            value: Any = Ballot(choice, confidence, vote=vote_id)
        elif form == "raw":
            value, ref = choice, (choice, F(1), None)
        elif form == "wire":
            value = {"choice": choice, "confidence": confidence}
            if vote_id is not None or keep:
                value["vote"] = vote_id
        else:
            value, ref = dict(malformed), MALFORMED
        pairs.append((voter, value))
        ref_pairs.append((voter, ref))
    distinct = len({voter for voter, _ in pairs}) == len(pairs)
    ballots: Any = dict(pairs) if distinct and draw(st.booleans()) else pairs

    kind = draw(st.sampled_from(kinds))
    weighting, tie_break, status_quo_at, (given_fraction, exact_fraction) = draw(RULE_SPECS)
    status_quo = None
    if tie_break is TieBreak.STATUS_QUO or status_quo_at < len(options):
        status_quo = options[status_quo_at % len(options)]
    common = {"weighting": weighting, "tie_break": tie_break, "status_quo": status_quo}
    ref_rule: dict[str, Any] = {"kind": kind, "by_confidence": weighting is Weighting.CONFIDENCE,
                                "tie_break": TIE_NAMES[tie_break], "status_quo": status_quo}  # fmt: skip
    if kind == "supermajority":
        ref_rule["fraction"] = exact_fraction
        rule: Rule = Supermajority(given_fraction, **common)
    else:
        factories: dict[str, Callable[..., Rule]] = {"majority": Majority, "unanimous": Unanimous,
                                                     "plurality": Plurality}  # fmt: skip
        rule = factories[kind](**common)

    quorum: int | None = draw(QUORUMS)
    vote = None if clean else draw(st.sampled_from([None, 1, 2]))
    return Scenario(pairs, ballots, options, electorate, rule, quorum, vote,
                    ref_pairs, ref_electorate, ref_rule)  # fmt: skip


def check(decision: Decision, ref: RefResult, scenario: Scenario) -> None:
    assert same(decision.outcome, ref.outcome), (decision.outcome, ref.outcome)
    assert list(decision.tally) == scenario.options
    assert list(decision.tally.values()) == [float(weight) for weight in ref.tally]
    assert list(decision.ballots) == ref.accepted
    assert decision.missing == ref.missing
    assert decision.abstained == ref.abstained
    assert {voter: len(reasons) for voter, reasons in decision.rejected.items()} == ref.rejected
    assert all(
        isinstance(reason, str) and reason for reasons in decision.rejected.values() for reason in reasons
    )
    assert decision.rejected_count == sum(ref.rejected.values())
    assert decision.quorum_met is ref.quorum_met
    assert decision.tie is ref.tie
    assert list(decision.tied) == ref.tied
    assert decision.electorate_weight == float(ref.electorate_weight)
    assert decision.participating_weight == float(ref.participating_weight)
    assert decision.options == tuple(scenario.options)
    assert decision.rule == scenario.rule.name


# -- against the reference -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["majority", "supermajority", "unanimous", "plurality"])
def test_tally_matches_reference(kind: str) -> None:
    @MANY
    @given(scenarios(kinds=(kind,)))
    def matches(scenario: Scenario) -> None:
        check(scenario.run(), scenario.reference(), scenario)

    matches()


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


# -- argument errors ------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "text"), [
    ({"options": []}, ValueError, "empty"),
    ({"options": "ab"}, TypeError, "options"),
    ({"options": {"a", "b"}}, TypeError, "options"),
    ({"options": ["a", "a"]}, ValueError, "equal"),
    ({"options": [1, True]}, ValueError, "equal"),
    ({"options": ["a", None]}, ValueError, "abstain"),
    ({"options": [("a",)]}, ValueError, "position 0"),
    ({"options": [math.nan]}, ValueError, "nan"),
    ({"quorum": True}, TypeError, "quorum"),
    ({"quorum": 0}, ValueError, "quorum 0 "),
    ({"quorum": -2}, ValueError, "quorum -2 "),
    ({"quorum": 1.0}, ValueError, "quorum 1.0 is not a count"),
    ({"quorum": 0.5}, ValueError, "quorum 0.5 is not a count"),
    ({"quorum": F(1, 2)}, ValueError, "is not a count of members"),
    ({"quorum": "1"}, TypeError, "quorum"),
    ({"electorate": {"ann": -1}}, ValueError, "'ann'"),
    ({"electorate": {"ann": math.inf}}, ValueError, "'ann'"),
    ({"electorate": {"ann": True}}, TypeError, "'ann'"),
    ({"electorate": ["ann", "ann"]}, ValueError, "twice"),
    ({"electorate": "ann"}, TypeError, "electorate"),
    ({"electorate": [1]}, TypeError, "electorate member 1"),
    ({"rule": Plurality(status_quo="zz")}, ValueError, "'zz'"),
    ({"rule": "Majority"}, TypeError, "rule"),
    ({"vote": "7"}, TypeError, "vote"),
    ({"ballots": [("ann",)]}, TypeError, "pairs"),
    ({"ballots": [(1, "a")]}, TypeError, "voter 1"),
])  # fmt: skip
def test_invalid_arguments(kwargs: dict[str, Any], error: type[Exception], text: str) -> None:
    arguments: dict[str, Any] = {"ballots": {}, "options": ["a", "b"], "electorate": ["ann"]} | kwargs
    with pytest.raises(error, match=None) as info:
        tally(arguments.pop("ballots"), **arguments)
    assert text in str(info.value)
    assert not isinstance(info.value, ConsensusError)


@pytest.mark.parametrize(("make", "error"), [
    (lambda: Supermajority(0.5), ValueError),
    (lambda: Supermajority(1.01), ValueError),
    (lambda: Supermajority(math.nan), ValueError),
    (lambda: Supermajority(True), TypeError),
    (lambda: Supermajority("2/3"), TypeError),  # type: ignore[arg-type]
    (lambda: Plurality(tie_break=TieBreak.STATUS_QUO), ValueError),
    (lambda: Plurality(tie_break="none"), TypeError),  # type: ignore[arg-type]
    (lambda: Majority(weighting="equal"), TypeError),  # type: ignore[arg-type]
    (lambda: Plurality(status_quo=["a"]), TypeError),
    (lambda: Ballot("a", confidence=1.5), ValueError),
    (lambda: Ballot("a", confidence=-0.0001), ValueError),
    (lambda: Ballot("a", confidence=math.nan), ValueError),
    (lambda: Ballot("a", confidence=True), TypeError),
    (lambda: Ballot("a", confidence="1"), TypeError),  # type: ignore[arg-type]
    (lambda: Ballot("a", reason=3), TypeError),  # type: ignore[arg-type]
    (lambda: Ballot("a", reason="x" * (MAX_REASON_LENGTH + 1)), ValueError),
    (lambda: Ballot("a", vote=True), TypeError),
    (lambda: Ballot("a", vote=-1), ValueError),
])  # fmt: skip
def test_invalid_values(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_ballot_basics() -> None:
    assert Ballot(None).abstains and not Ballot("a").abstains
    assert Ballot("a", 1).confidence == 1.0 and type(Ballot("a", 1).confidence) is float
    assert Ballot.coerce("a") == Ballot("a")
    ballot = Ballot("a", 0.5, "because", 3)
    assert Ballot.coerce(ballot) is ballot
    assert Ballot.coerce({"choice": "a", "confidence": 0.5, "reason": "because", "vote": 3}) == ballot
    assert Ballot.coerce(None).abstains
    with pytest.raises(InvalidBallot, match="no 'choice'"):
        Ballot.coerce({"reason": "x"})


# -- wire forms -----------------------------------------------------------------------------


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                    st.text(max_size=8), st.binary(max_size=8))  # fmt: skip
cbor_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)  # fmt: skip
junk = st.recursive(
    scalars | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | st.integers(), inner, max_size=5)
    ),
    max_leaves=12,
)
ballots = st.builds(
    Ballot,
    cbor_values,
    st.floats(0, 1),
    st.none() | st.text(max_size=30),
    st.none() | st.integers(0, 2**64 - 1),
)


def through_cbor(value: Any) -> Any:
    return decode_body(encode_body(value))


@SOME
@given(ballots)
def test_ballot_wire_round_trip(ballot: Ballot) -> None:
    assert Ballot.from_wire(through_cbor(ballot.to_wire())) == ballot


def mutations(valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid wire map with one key replaced by junk, deleted, or one key added."""
    keys = sorted(valid)

    def mutate(change: tuple[str, str, Any]) -> Any:
        how, key, value = change
        copy = dict(valid)
        if how == "delete":
            copy.pop(key, None)
        else:
            copy[key] = value
        return copy

    return st.tuples(st.sampled_from(["replace", "delete", "add"]), st.sampled_from(keys) | st.text(max_size=5),
                     junk).map(mutate)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(junk | mutations(Ballot("a", 0.5, "r", 1).to_wire()))
def test_ballot_from_wire_refuses_junk_cleanly(obj: Any) -> None:
    try:
        ballot = Ballot.from_wire(obj)
    except InvalidBallot as exc:
        assert isinstance(exc, ConsensusError) and isinstance(exc, ValueError)
        assert str(exc)
    else:
        assert isinstance(ballot, Ballot) and 0.0 <= ballot.confidence <= 1.0
        assert Ballot.from_wire(ballot.to_wire()) == ballot


@SOME
@given(scenarios())
def test_decision_wire_round_trip(scenario: Scenario) -> None:
    decision = scenario.run()
    wire = through_cbor(decision.to_wire())
    assert Decision.from_wire(wire) == decision
    assert all(isinstance(key, str) for key in wire)


def sample_decision() -> Decision:
    return tally([("ann", Ballot("a", 0.5, "r", 1)), ("bob", None), ("zed", "a"), ("cy", "b"), ("dee", "b")],
                 options=["a", "b", 3], rule=Plurality(), electorate={"ann": 1, "bob": 2, "cy": 1, "dee": 1, "eve": 1},
                 quorum=2)  # fmt: skip


@settings(max_examples=700, deadline=None)
@given(junk | mutations(sample_decision().to_wire()))
def test_decision_from_wire_refuses_junk_cleanly(obj: Any) -> None:
    try:
        decision = Decision.from_wire(obj)
    except InvalidDecision as exc:
        assert isinstance(exc, ConsensusError) and isinstance(exc, ValueError)
        assert str(exc)
    else:
        assert Decision.from_wire(decision.to_wire()) == decision


def test_decision_wire_shape() -> None:
    decision = sample_decision()
    assert decision.outcome == "b" and decision.tally == {"a": 1.0, "b": 2.0, 3: 0.0}
    wire = decision.to_wire()
    assert wire["tally"] == [1.0, 2.0, 0.0] and wire["options"] == ["a", "b", 3]
    assert wire["missing"] == ["eve"] and wire["abstained"] == ["bob"]
    assert wire["rejected"] == {"zed": ["'zed' is not in the electorate"]}
    assert Decision.from_wire(wire) == decision
    for key, bad in [("outcome", "zz"), ("tally", [1.0]), ("tally", [1.0, -1.0, 0.0]), ("options", ["a", "a"]),
                     ("rejected_count", -1), ("tie", 1), ("tied", ["q"]), ("rule", None),
                     ("electorate_weight", 2**2000), ("ballots", {"ann": {"choice": "a", "confidence": 9}}),
                     ("missing", [1])]:  # fmt: skip
        with pytest.raises(InvalidDecision, match=key.split("_")[0] if key != "options" else "options"):
            Decision.from_wire(wire | {key: bad})
    with pytest.raises(InvalidDecision, match="missing keys"):
        Decision.from_wire({k: v for k, v in wire.items() if k != "tie"})
    assert replace(decision, rule="x").to_wire()["rule"] == "x"
    assert isinstance(decision.tally, Mapping)
