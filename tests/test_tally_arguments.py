"""Ballots, rules and the tally refuse bad arguments and values with clear errors
(``consensus.decide.ballot``, ``rules``, ``tally``).
"""

from __future__ import annotations

import math
from fractions import Fraction as F
from typing import Any

import pytest

from consensus.decide.ballot import MAX_REASON_LENGTH, Ballot
from consensus.decide.rules import Majority, Plurality, Supermajority, TieBreak
from consensus.decide.tally import tally
from consensus.errors import InvalidBallot
from patterns import ConsensusError

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
