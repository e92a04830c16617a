"""The wire forms of ballots and decisions: round trips through CBOR, junk and mutated
maps refused cleanly, and the decision's wire shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from _tally_cases import SOME, Scenario, ballots, junk, mutations, scenarios, through_cbor
from hypothesis import given, settings

from consensus.decide.ballot import Ballot
from consensus.decide.rules import Plurality
from consensus.decide.tally import Decision, tally
from consensus.errors import InvalidBallot, InvalidDecision
from patterns import ConsensusError

# -- wire forms -----------------------------------------------------------------------------


@SOME
@given(ballots)
def test_ballot_wire_round_trip(ballot: Ballot) -> None:
    assert Ballot.from_wire(through_cbor(ballot.to_wire())) == ballot


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
