"""The wire form of a finished Deliberation: round trips through the codec, hostile maps refused."""

from __future__ import annotations

from typing import Any

import pytest
from _rooms import wire
from hypothesis import given
from hypothesis import strategies as st
from test_deliberation import SOME, roundtable, run

from consensus.decide.deliberation_wire import deliberation_from_wire, deliberation_to_wire
from consensus.errors import InvalidDeliberation


@SOME
@given(st.data())
def test_every_deliberation_comes_back_the_same(data: st.DataObject) -> None:
    impl, _, _ = run(data)
    result = impl.result(elapsed=3.0)
    back = deliberation_from_wire(wire("deliberation", "host", deliberation_to_wire(result)).body)
    assert back.to_dict() == result.to_dict() and str(back) == str(result)
    assert back.rounds == result.rounds and back.final == result.final


def test_the_roundtable_comes_back_with_its_report() -> None:
    result = roundtable()
    back = deliberation_from_wire(wire("deliberation", "host", deliberation_to_wire(result)).body)
    assert back == result and str(back) == str(result)


def broken(change: Any) -> dict[str, Any]:
    body = deliberation_to_wire(roundtable())
    change(body)
    return body


@pytest.mark.parametrize("change", [
    lambda b: b.pop("rule"),
    lambda b: b.update(extra=1),
    lambda b: b.update(anonymous="no"),
    lambda b: b.update(converged_at=9),
    lambda b: b.update(rounds=b["rounds"][1:]),  # numbered 2, 3
    lambda b: b["rounds"][0].update(expected=["Claude"]),  # names members not asked
    lambda b: b["rounds"][0]["positions"]["Claude"].update(stance=5),
    lambda b: b["rounds"][0].update(stances={}),
    lambda b: b["rounds"][0].update(errors={"Claude": {"type": 1}}),
    lambda b: b["rounds"][0].update(decision={"outcome": "x"}),
    lambda b: b["rounds"][0].update(elapsed=float("nan")),
    lambda b: b["rounds"][0].update(rejected=-1),
])  # fmt: skip
def test_hostile_deliberations_are_refused(change: Any) -> None:
    with pytest.raises(InvalidDeliberation):
        deliberation_from_wire(broken(change))
