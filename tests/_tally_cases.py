"""What the tally's tests share (``tests/test_tally_*.py``, and the deliberation tests):
generated scenarios (electorates, ballots, options, rules, quorums) with their check
against the naive reference, and strategies for wire values and junk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction as F
from typing import Any

from _reference_tally import MALFORMED, RefResult, reference_tally
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from consensus.decide.ballot import Ballot
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import Decision, tally
from patterns import decode_body, encode_body

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
