"""A deliberation round's running count (``consensus/decide/deliberation_count.py``) decides
exactly as the tally of its positions does: the whole decision, compared on generated rounds
with the tally (``consensus.decide.tally``) and with the naive from-scratch count
(``tests/_naive_count.py``) of the same ballots."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import _naive_count as naive
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.decide.ballot import Ballot
from consensus.decide.decision import Decision
from consensus.decide.deliberation_count import StanceCount
from consensus.decide.deliberation_round import DeliberationRound
from consensus.decide.position import Position, normalise_stance
from consensus.decide.prompt import Prompt
from consensus.decide.rules import (
    Majority,
    Plurality,
    Supermajority,
    TieBreak,
    Unanimous,
    Weighting,
    as_rules,
)
from consensus.decide.stances import Round, check_stance_options
from consensus.decide.tally import tally
from consensus.failure import Failure

SOME = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]
SPELLINGS = ["NATS", "nats", " Nats ", "Redis", "redis", "ZeroMQ", "zeromq ", "Kafka"]
CLOSED = ["NATS", "Redis", "ZeroMQ", "Kafka"]
CONFIDENCES = [0.0, 0.1, 0.25, 0.3, 0.5, 2 / 3, 0.8, 1.0]
REASONS = [None, "it is fast", "it is everywhere"]
WHOLE = [0.0, 1.0, 1.0, 1.0, 2.0, 3.0]
RULES: list[Any] = [
    Majority(), Plurality(), Plurality(tie_break=TieBreak.FIRST_LISTED), Supermajority(2 / 3), Unanimous(),
    Majority(weighting=Weighting.CONFIDENCE), Plurality(weighting=Weighting.CONFIDENCE),
    [Majority(), Plurality()], [Majority(), Plurality(tie_break=TieBreak.FIRST_LISTED)],
    [Unanimous(), Majority(weighting=Weighting.CONFIDENCE), Plurality(weighting=Weighting.CONFIDENCE)],
    [Plurality(weighting=Weighting.CONFIDENCE), Majority()],
]  # fmt: skip
STATUS_QUO: list[Any] = [  # a closed question's rules may keep a status quo
    Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="Redis"),
    [Majority(status_quo="NATS"), Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="Kafka")],
]


@st.composite
def rounds(draw: st.DrawFn, *, whole: bool = True) -> dict[str, Any]:
    members = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)), label="members")
    weights = st.sampled_from(WHOLE) if whole else st.sampled_from([0.5, 1.5, 0.1, 2.0, 1 / 3])
    electorate = {name: draw(weights, label=f"weight of {name}") for name in members}
    options = draw(st.sampled_from([None, None, CLOSED, CLOSED[:2]]), label="options")
    rule = draw(st.sampled_from(RULES + (STATUS_QUO if options == CLOSED else [])), label="rule")
    stances = [s for s in SPELLINGS if options is None or normalise_stance(s) in map(normalise_stance, options)]
    replies: list[tuple[str, Any]] = []
    for name in draw(st.permutations(members), label="order"):
        what = draw(st.sampled_from(["position", "position", "position", "fail", "silent", "left"]))
        if what == "position":
            stance, confidence = draw(st.sampled_from(stances)), draw(st.sampled_from(CONFIDENCES))
            replies.append((name, Position(stance, reason=draw(st.sampled_from(REASONS)), confidence=confidence)))
        elif what in ("fail", "left"):
            replies.append((name, what))
    return {"electorate": electorate, "options": options, "rule": rule, "replies": replies}


def closed(case: dict[str, Any]) -> tuple[DeliberationRound, Round]:
    options = case["options"]
    prompt = Prompt("which broker?", 1, None if options is None else tuple(options), False, ())
    counting = DeliberationRound(prompt, case["electorate"], labels={}, key=normalise_stance, rule=case["rule"],
                                 options=check_stance_options(options, normalise_stance))  # fmt: skip
    for name, reply in case["replies"]:
        if reply == "fail":
            counting.fail(name, Failure("Timeout", "too slow"))
        elif reply == "left":
            counting.left(name)
        else:
            counting.answer(name, reply.to_wire())
    return counting, counting.close(elapsed=0.25)


def tallied(finished: Round, case: dict[str, Any], count: Any) -> Decision | None:
    """The round's positions tallied from scratch by ``count`` (a tally function)."""
    options = case["options"]
    listed = list(finished.display.values()) if options is None else options
    if not listed:
        return None
    ballots = [(name, Ballot(finished.display[finished.stances[name]], position.confidence, position.reason))
               for name, position in finished.positions.items()]  # fmt: skip
    decision = count(ballots, options=listed, rule=case["rule"], electorate=case["electorate"])
    return dataclasses.replace(decision, errors=finished.errors, left=finished.left, elapsed=finished.elapsed)


@SOME
@given(rounds())
def test_a_rounds_running_count_decides_as_the_tally_and_the_naive_count(case: dict[str, Any]) -> None:
    counting, finished = closed(case)
    assert counting._count is not None  # every weight whole: counted as the replies came
    for count in (tally, naive.tally):
        want = tallied(finished, case, count)
        assert finished.decision == want
        if want is not None:
            assert finished.decision is not None
            assert finished.decision.to_wire() == want.to_wire()
            assert [type(w) for w in finished.decision.tally.values()] == [float] * len(want.options)


@SOME
@given(rounds(whole=False))
def test_fractional_weights_are_left_to_the_tally(case: dict[str, Any]) -> None:
    counting, finished = closed(case)
    assert (counting._count is None) == any(not w.is_integer() for w in case["electorate"].values())
    assert finished.decision == tallied(finished, case, tally)


def test_a_count_takes_only_whole_weights() -> None:
    rules = as_rules(Majority())
    assert StanceCount.of({"ann": 1.0, "bob": 0.0, "cy": 3}, rules) is not None
    for odd in (0.5, -1.0, float("inf"), float("nan"), True, Fraction(1), "1"):
        assert StanceCount.of({"ann": 1.0, "bob": odd}, rules) is None  # type: ignore[dict-item]


def test_a_round_the_tally_refuses_is_refused_as_before() -> None:
    # A status quo in an open question: the tally says it is none of the options; the count does not hide it.
    prompt = Prompt("which broker?", 1, None, False, ())
    counting = DeliberationRound(prompt, {"ann": 1.0}, labels={}, options=None, key=normalise_stance,
                                 rule=Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="NATS"))  # fmt: skip
    counting.answer("ann", {"stance": "Redis"})
    with pytest.raises(ValueError, match="status quo 'NATS'"):
        counting.close(elapsed=0.0)
    # A key that is not a function of the stance: two stances shown alike, two equal options.
    keys = iter(["one", "two"])
    counting = DeliberationRound(prompt, {"ann": 1.0, "bob": 1.0}, labels={}, options=None,
                                 key=lambda stance: next(keys), rule=Majority())  # fmt: skip
    counting.answer("ann", {"stance": "Redis"})
    counting.answer("bob", {"stance": "Redis"})
    with pytest.raises(ValueError, match="equal"):
        counting.close(elapsed=0.0)
