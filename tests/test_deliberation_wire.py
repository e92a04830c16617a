"""The wire forms of a deliberation (issue 14): Position (the ``position`` reply) and Prompt (the
``deliberate`` survey body), checked strictly and bounded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _tally_cases import junk, mutations, through_cbor
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.decide import InvalidPosition, Position, Prompt, Seen, normalise_stance
from consensus.decide.position import MAX_ANSWER_LENGTH, MAX_PERSUADERS, MAX_STANCE_LENGTH
from consensus.errors import ConsensusError
from patterns import Envelope, decode, encode

stances = st.text(min_size=1, max_size=40).filter(str.strip)
names = st.text(min_size=1, max_size=12)
positions = st.builds(
    Position,
    stances,
    answer=st.none() | st.text(max_size=60),
    reason=st.none() | st.text(max_size=60),
    confidence=st.floats(0, 1),
    persuaded_by=st.lists(names, max_size=4, unique=True).map(tuple),
    round=st.none() | st.integers(1, 2**32 - 1),
)
SAMPLE = Position("NATS", answer="NATS, because", reason="latency", confidence=0.5, persuaded_by=("bob",), round=2)


@settings(max_examples=300, deadline=None)
@given(positions)
def test_position_wire_round_trip(position: Position) -> None:
    assert Position.from_wire(through_cbor(position.to_wire())) == position


@settings(max_examples=500, deadline=None)
@given(junk | mutations(SAMPLE.to_wire()))
def test_position_from_wire_refuses_junk_cleanly(obj: Any) -> None:
    try:
        position = Position.from_wire(obj)
    except InvalidPosition as exc:
        assert isinstance(exc, ConsensusError) and isinstance(exc, ValueError) and str(exc)
    else:
        assert Position.from_wire(position.to_wire()) == position


@pytest.mark.parametrize(("change", "text"), [
    ({"stance": "  "}, "empty"),
    ({"stance": "x" * (MAX_STANCE_LENGTH + 1)}, "longer than"),
    ({"answer": "x" * (MAX_ANSWER_LENGTH + 1)}, "answer of"),
    ({"persuaded_by": [str(n) for n in range(MAX_PERSUADERS + 1)]}, "at most"),
    ({"persuaded_by": ["a", "a"]}, "twice"),
    ({"persuaded_by": "bob"}, "array"),
    ({"round": 0}, "round"),
    ({"round": True}, "round"),
    ({"confidence": 1.5}, "outside"),
    ({"who": 1}, "unknown keys"),
])  # fmt: skip
def test_position_errors_name_the_problem(change: dict[str, Any], text: str) -> None:
    with pytest.raises(InvalidPosition, match=text):
        Position.from_wire(SAMPLE.to_wire() | change)


def test_position_coerce_and_key() -> None:
    assert Position.coerce("NATS") == Position("NATS")
    assert Position.coerce({"stance": "x"}) == Position("x")
    with pytest.raises(TypeError, match="Position, a map or text"):
        Position.coerce(3)
    assert normalise_stance("  Use\tNATS  ") == "use nats" == normalise_stance("use nats")


prompts = st.builds(
    Prompt,
    st.none() | st.text(max_size=20) | st.integers(),
    st.integers(1, 2**32 - 1),
    st.none() | st.lists(stances, max_size=3).map(tuple),
    st.booleans(),
    st.lists(st.builds(Seen, names, positions), max_size=4, unique_by=lambda seen: seen.label).map(tuple),
    st.integers(0, 2**64 - 1),
)


@settings(max_examples=200, deadline=None)
@given(prompts)
def test_prompt_wire_round_trip(prompt: Prompt) -> None:
    assert Prompt.from_wire(through_cbor(prompt.to_wire())) == prompt
    assert all(seen.position.persuaded_by == () and seen.position.round is None for seen in prompt.positions)


@settings(max_examples=300, deadline=None)
@given(junk | mutations(Prompt("q", 2, None, True, (Seen("P1", SAMPLE),), 7).to_wire()))
def test_prompt_from_wire_refuses_junk_cleanly(obj: Any) -> None:
    try:
        prompt = Prompt.from_wire(obj)
    except InvalidPosition as exc:
        assert str(exc)
    else:
        assert Prompt.from_wire(prompt.to_wire()) == prompt


def test_prompt_others_drops_only_the_members_own_entry() -> None:
    mine, same = Position("x", reason="r"), Position("x", reason="r")
    anonymous = Prompt("q", 2, None, True, (Seen("P1", mine), Seen("P2", same), Seen("P3", Position("y"))))
    assert [seen.label for seen in anonymous.others("ann", mine).positions] == ["P2", "P3"]
    assert len(anonymous.others("ann", None).positions) == 3
    named = Prompt("q", 2, None, False, (Seen("ann", mine), Seen("bob", same)))
    assert [seen.label for seen in named.others("ann", None).positions] == ["bob"]
    with pytest.raises(InvalidPosition, match="same label"):
        Prompt.from_wire(named.to_wire() | {"positions": [Seen("a", mine).to_wire()] * 2})


DOC = Path(__file__).resolve().parent.parent / "docs" / "deliberation.md"


def test_every_deliberation_doc_example_encodes_as_shown_and_is_accepted() -> None:
    """The proposed frames of docs/deliberation.md are what the codec writes, and their bodies
    pass the checks the receiving side will use."""
    found = re.findall(r"^`(Envelope\(.*?\))`, (\d+) bytes:\n\n```hex\n(.*?)^```$",
                       DOC.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)  # fmt: skip
    assert len(found) == 2
    names = {"Envelope": Envelope, "True": True, "False": False, "None": None}
    for source, size, hex_text in found:
        data = bytes.fromhex("".join(hex_text.split()))
        env = eval(source, {"__builtins__": {}}, names)
        assert len(data) == int(size) and encode(env) == data and decode(data) == env, source
        if env.kind == "deliberate":
            prompt = Prompt.from_wire(env.body)
            assert prompt.to_wire() == env.body and prompt.anonymous and prompt.round == 2
        else:
            position = Position.from_wire(env.body)
            assert position.to_wire() == env.body and position.persuaded_by == ("P1",)
