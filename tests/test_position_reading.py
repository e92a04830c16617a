"""The one-pass reading of a position (``Position.from_wire``) and of a reply
(``DeliberationRound.answer``) against the step-by-step checks they replace
(``tests/_reference_position.py``): every map is accepted as the same position, or refused
with the same reason, and a round fed the same replies ends the same."""

from __future__ import annotations

import math
from typing import Any

from _reference_position import ReferenceRound, from_wire
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.decide import InvalidPosition, Position, Prompt, normalise_stance
from consensus.decide.deliberation_round import DeliberationRound
from consensus.decide.position import MAX_ANSWER_LENGTH, MAX_NAME_LENGTH, MAX_PERSUADERS, MAX_STANCE_LENGTH
from consensus.decide.rules import Majority, Plurality
from consensus.failure import Failure

ABSENT = object()


class Text(str):
    """A text subclass: valid for the constructor, never what CBOR decodes to."""


class Map(dict):  # type: ignore[type-arg]
    """A map subclass, likewise."""


def near(limit: int) -> st.SearchStrategy[str]:
    """Texts of ``limit`` characters and one more, blank or not."""
    return st.sampled_from([fill * length for length in (limit, limit + 1) for fill in ("x", " ", "\u00e9")])


junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(), st.binary(max_size=3),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))  # fmt: skip
texts = st.text(max_size=12) | st.text(max_size=12).map(Text)
names = st.sampled_from(["", "a", "b", "P1", "P2", "m0", "m1", "x" * MAX_NAME_LENGTH, "x" * (MAX_NAME_LENGTH + 1)])
stance = texts | near(MAX_STANCE_LENGTH) | st.sampled_from(["", "  ", "\t\n", "NATS", " nats "]) | junk
answer = st.none() | texts | near(MAX_ANSWER_LENGTH) | junk
reason = st.none() | texts | near(2000) | junk
confidence = (st.floats() | st.sampled_from([0, 1, 2, -1, 2**70, 0.0, -0.0, 1.0, 1.0000001, True, False])
              | junk)  # fmt: skip
persuaded_by = (st.sampled_from([["a", "a"], ["a", 1], [""], ["x" * (MAX_NAME_LENGTH + 1)], [Text("a")], None, "a"])
                | st.lists(names | junk, max_size=4) | st.lists(names, max_size=MAX_PERSUADERS + 2)
                | st.lists(st.text(min_size=1, max_size=3), max_size=MAX_PERSUADERS + 2, unique=True)
                | st.tuples(names) | names | junk)  # fmt: skip
rounds = st.none() | st.sampled_from([0, 1, 2, 3, 2**32 - 1, 2**32, -1, True, 1.0]) | junk
FIELDS = {"stance": stance, "answer": answer, "reason": reason, "confidence": confidence,
          "persuaded_by": persuaded_by, "round": rounds}  # fmt: skip


VALID = {"stance": st.sampled_from(["NATS", " nats ", "x" * MAX_STANCE_LENGTH]),
         "answer": st.none() | st.text(max_size=5), "reason": st.none() | st.text(max_size=5),
         "confidence": st.sampled_from([0, 1, 0.5, 1.0]), "persuaded_by": st.lists(names.filter(bool).filter(
             lambda n: len(n) <= MAX_NAME_LENGTH), max_size=3, unique=True), "round": st.sampled_from([None, 2])}  # fmt: skip


@st.composite
def wire_maps(draw: st.DrawFn) -> Any:
    """Maps of valid fields, each one at times absent or anything else (most are one field
    away from valid: the fast path must not take what the checks refuse)."""
    obj: dict[Any, Any] = {}
    for key, values in FIELDS.items():
        odd = draw(st.integers(0, 5)) == 0
        value = draw(st.just(ABSENT) | values if odd else VALID[key])
        if value is not ABSENT:
            obj[key] = value
    extra = draw(st.sampled_from([None] * 12 + ["who", 7, Text("stance")]))
    if extra is not None:
        obj[extra] = 1
    return draw(st.sampled_from([obj] * 6 + [Map(obj), None, [obj], 7]))


def outcome(read: Any, obj: Any) -> tuple[Any, ...]:
    try:
        position = read(obj)
    except InvalidPosition as exc:
        return ("refused", str(exc))
    fields = (position.stance, position.answer, position.reason, position.confidence, position.persuaded_by,
              position.round)  # fmt: skip
    return ("accepted", position, [type(each) for each in fields], math.copysign(1, position.confidence))


@settings(max_examples=3000, deadline=None)
@given(wire_maps())
def test_one_pass_reading_accepts_and_refuses_as_the_field_by_field_checks(obj: Any) -> None:
    assert outcome(Position.from_wire, obj) == outcome(from_wire, obj)


ODD = {
    "stance": ["", "  ", "\t", Text("x"), None, 7, b"x", *[fill * n for n in (MAX_STANCE_LENGTH, MAX_STANCE_LENGTH + 1)
                                                        for fill in ("x", " ", "\u00e9")]],
    "answer": ["", Text("a"), 7, b"a", "x" * MAX_ANSWER_LENGTH, "x" * (MAX_ANSWER_LENGTH + 1)],
    "reason": ["", Text("a"), 7, [], "x" * 2000, "x" * 2001],
    "confidence": [0, 1, 2, -1, 0.0, -0.0, 1.0, 1.0000001, -1e-300, math.nan, math.inf, -math.inf, True, False, None,
                   "1", 2**70],
    "persuaded_by": [[], ["a"], ["a", "a"], ["a", 1], [""], ["x" * MAX_NAME_LENGTH], ["x" * (MAX_NAME_LENGTH + 1)],
                     [Text("a")], [str(n) for n in range(MAX_PERSUADERS)], [str(n) for n in range(MAX_PERSUADERS + 1)],
                     None, "a", ("a",), [None]],
    "round": [None, 0, 1, 2**32 - 1, 2**32, -1, True, 1.0, "1"],
}  # fmt: skip
BASE = {"stance": "NATS", "answer": "because", "reason": "fits", "confidence": 0.5, "persuaded_by": ["b"], "round": 2}


def test_each_field_at_its_limits_is_read_as_the_checks_read_it() -> None:
    for key, values in ODD.items():
        for value in [ABSENT, *values]:
            for base in (BASE, {"stance": "NATS"}):
                obj = {k: v for k, v in base.items() if k != key}
                if value is not ABSENT:
                    obj[key] = value
                assert outcome(Position.from_wire, obj) == outcome(from_wire, obj), (key, value)


def test_the_common_reply_takes_the_one_pass_reading() -> None:
    # Not a speed claim: the cases the fast path must accept (the rest is the test above).
    for obj in ({"stance": "NATS"}, {"stance": "NATS", "confidence": 0.8, "reason": "fits", "round": 2},
                {"stance": "x", "answer": "a" * MAX_ANSWER_LENGTH, "confidence": 1, "persuaded_by": ["a", "b"]}):  # fmt: skip
        from consensus.decide.position import _read

        assert _read(obj) == from_wire(obj)


MEMBERS = ["m0", "m1", "m2"]
replies = st.lists(
    st.tuples(st.sampled_from([*MEMBERS, "stranger"]),
              wire_maps() | st.sampled_from(["NATS", "Redis", " nats ", ""]) | st.builds(
                  Position, st.sampled_from(["NATS", "Redis", "Kafka"]),
                  persuaded_by=st.lists(st.sampled_from(["m0", "m1", "P1", "zz"]), max_size=3, unique=True).map(tuple),
                  round=st.sampled_from([None, 2, 3])),
              st.booleans()),
    max_size=8,
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(replies, st.booleans(), st.sampled_from([None, ("NATS", "Redis")]))
def test_a_round_takes_replies_as_before(sequence: list[tuple[str, Any, bool]], anonymous: bool,
                                         options: tuple[str, ...] | None) -> None:  # fmt: skip
    labels = {"P1": "m0", "P2": "m1"} if anonymous else {name: name for name in MEMBERS}
    by_key = None if options is None else {normalise_stance(option): option for option in options}
    made = []
    for kind in (DeliberationRound, ReferenceRound):
        prompt = Prompt("q", 2, options, anonymous, ())
        made.append(kind(prompt, dict.fromkeys(MEMBERS, 1.0), labels=labels, options=by_key, key=normalise_stance,
                         rule=[Majority(), Plurality()]))  # fmt: skip
    mine, reference = made
    for name, raw, failed in sequence:
        if failed:
            assert mine.fail(name, Failure("Timeout", "late")) == reference.fail(name, Failure("Timeout", "late"))
        else:
            assert mine.answer(name, raw, at=0.5) == reference.answer(name, raw, at=0.5)
    assert mine.close(elapsed=1.0) == reference.close(elapsed=1.0)
