"""Deliberation (issue 14, the pure part): the round state machine, the stop predicates and the
summaries, against the naive reference in ``_reference_deliberation``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _reference_deliberation import (
    RefDeliberation,
    RefPosition,
    RefRound,
    ref_agreement,
    ref_counterpoint,
    ref_final,
    ref_influence,
)
from _reference_deliberation import key as ref_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.decide import (
    Deliberation,
    Deliberator,
    Phase,
    Position,
    Round,
    decided,
    no_change,
    unanimous,
)
from consensus.decide.ballot import Ballot
from consensus.decide.poll import Verdict
from consensus.decide.rules import Majority, Plurality, TieBreak
from consensus.decide.tally import tally
from consensus.failure import Failure

SOME = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["ann", "bob", "cy", "dee", "eve"]
STANCES = ["NATS", "nats", " Nats ", "Redis", "redis", "ZeroMQ"]  # keys: nats, redis, zeromq
CLOSED = ["NATS", "Redis"]
CONFIDENCES = [0.25, 0.5, 0.75, 1.0]  # dyadic: sums are exact, so ties are real ties
REASONS = [None, "it is fast", "it is everywhere", "latency"]
PREDICATES = {"unanimous": unanimous, "no_change": no_change, "decided": decided}
RULES: dict[str, Any] = {"majority": Majority(), "plurality": Plurality(),
                         "fallback": [Majority(), Plurality(tie_break=TieBreak.FIRST_LISTED)]}  # fmt: skip

OPS = st.one_of(
    st.tuples(st.just("answer"), st.sampled_from(NAMES + ["zed"]), st.sampled_from(STANCES),
              st.sampled_from(CONFIDENCES), st.sampled_from(REASONS),
              st.lists(st.sampled_from(NAMES + ["P1", "P2", "P3", "P9", "nobody"]), max_size=3, unique=True),
              st.sampled_from([None, None, "current", 99])),
    st.tuples(st.just("fail"), st.sampled_from(NAMES)),
    st.tuples(st.just("junk"), st.sampled_from(NAMES)),
    st.tuples(st.just("left"), st.sampled_from(NAMES)),
    st.tuples(st.just("join"), st.sampled_from(NAMES)),
)  # fmt: skip


def outcome_key(deliberation_round: Round) -> str | None:
    return deliberation_round.outcome_key


def check_round(got: Round, ref: RefRound, options: list[str] | None, rule: Any) -> None:
    assert got.number == ref.number
    assert got.expected == ref.expected
    assert list(got.positions) == ref.order
    for member, position in got.positions.items():
        want = ref.positions[member]
        assert (position.stance, position.confidence, position.reason) == (want.stance, want.confidence, want.reason)
        assert list(position.persuaded_by) == want.persuaded_by
        assert position.round == ref.number
    assert dict(got.stances) == ref.stances()
    assert dict(got.display) == ref.display(options)
    assert got.missing == ref.expected - set(ref.positions) - ref.errors
    assert set(got.errors) == ref.errors
    assert got.left == ref.left
    assert got.joined == ref.joined
    assert got.rejected == ref.rejected
    assert got.ignored == ref.ignored
    # The round's decision is the tally of its positions as ballots for the shown stances.
    display = ref.display(options)
    listed = options if options is not None else list(display.values())
    if not listed:
        assert got.decision is None
        return
    ballots = [(m, Ballot(display[ref_key(ref.positions[m].stance)], ref.positions[m].confidence,
                          ref.positions[m].reason)) for m in ref.order]  # fmt: skip
    fresh = tally(ballots, options=listed, rule=rule, electorate={m: 1.0 for m in ref.expected})
    assert got.decision is not None
    assert (got.decision.outcome, dict(got.decision.tally), got.decision.decided_by) == (
        fresh.outcome, dict(fresh.tally), fresh.decided_by)  # fmt: skip
    ref.outcome_key = None if fresh.outcome is None else ref_key(fresh.outcome)
    assert got.outcome_key == ref.outcome_key


def run(data: st.DataObject) -> tuple[Deliberator, RefDeliberation, Any]:
    members = data.draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5), label="members")
    options = data.draw(st.sampled_from([None, None, CLOSED]), label="options")
    anonymous = data.draw(st.booleans(), label="anonymous")
    rounds = data.draw(st.integers(1, 4), label="rounds")
    until = data.draw(st.lists(st.sampled_from(sorted(PREDICATES)), unique=True, max_size=2), label="until")
    rule = RULES[data.draw(st.sampled_from(sorted(RULES)), label="rule")]
    impl = Deliberator("which broker?", members, options=options, rule=rule, rounds=rounds,
                       until=[PREDICATES[name] for name in until], anonymous=anonymous)  # fmt: skip
    ref = RefDeliberation(members, options=options, anonymous=anonymous, rounds=rounds, until=until)
    while not impl.done:
        assert not ref.done
        prompt = impl.open_round()
        current = ref.open()
        assert prompt.round == current.number
        assert [seen.label for seen in prompt.positions] == list(current.labels)
        wire = json.dumps(prompt.to_wire())
        if anonymous:  # the anonymous view goes on the wire: no name anywhere in it
            assert not any(f'"{name}"' in wire for name in NAMES)
        for name in current.expected:
            shown = impl.prompt_for(name)
            assert all(current.labels[seen.label] != name for seen in shown.positions)
            assert len(shown.positions) == len(prompt.positions) - (name in current.labels.values())
        for op in data.draw(st.lists(OPS, max_size=12), label=f"round {current.number}"):
            if op[0] == "answer":
                _, name, stance, confidence, reason, persuaded_by, tag = op
                number = current.number if tag == "current" else tag
                impl.answer(name, Position(stance, reason=reason, confidence=confidence,
                                           persuaded_by=tuple(persuaded_by), round=number).to_wire())  # fmt: skip
                ref.answer(name, RefPosition(stance, confidence, reason, None, persuaded_by), number)
            elif op[0] == "fail":
                impl.fail(op[1], Failure("Timeout", "too slow"))
                ref.fail(op[1])
            elif op[0] == "junk":
                impl.answer(op[1], {"stance": 5})
                ref.fail(op[1])
            elif op[0] == "left":
                impl.left(op[1])
                ref.leave(op[1])
            else:
                impl.join(op[1])
                ref.join(op[1])
            assert impl.pending == current.pending()
            assert impl.complete == (not current.pending())
        got = impl.close_round(elapsed=1.0)
        check_round(got, current, options, rule)
        ref.close()
        assert impl.done == ref.done
        assert impl.phase is (Phase.DONE if ref.done else Phase.READY)
    assert ref.done and impl.stopped_by == ref.stopped_by and impl.converged_at == ref.converged_at
    return impl, ref, rule


@SOME
@given(st.data())
def test_deliberation_matches_reference(data: st.DataObject) -> None:
    impl, ref, _ = run(data)
    result = impl.result(elapsed=3.0)
    assert len(result.rounds) == len(ref.rounds)
    assert result.stopped_by == ref.stopped_by and result.converged_at == ref.converged_at
    final = {member: (ref_key(f.position.stance), f.changed) for member, f in result.final.items()}
    assert final == ref_final(ref.rounds)
    assert {p: list(m) for p, m in result.influence.items()} == ref_influence(ref.rounds)
    if ref.rounds:
        last = ref.rounds[-1]
        stance, count, of = ref_agreement(last)
        agreement = result.agreement
        assert (agreement.count, agreement.of) == (count, of)
        assert (None if agreement.stance is None else ref_key(agreement.stance)) == stance
        want = ref_counterpoint(last, {m: 1.0 for m in last.expected})
        got = result.counterpoint
        if want is None:
            assert got is None
        else:
            assert got is not None
            assert (ref_key(got.stance), list(got.members), got.support, got.reason) == want
    text = str(result)
    assert text.startswith("Question: which broker?") and "Final summary: " in text
    assert json.loads(json.dumps(result.to_dict()))["stopped_by"] == result.stopped_by


@SOME
@given(st.data())
def test_predicates_match_reference(data: st.DataObject) -> None:
    impl, ref, _ = run(data)
    for upto in range(1, len(ref.rounds) + 1):
        got, want = impl.rounds[:upto], ref.rounds[:upto]
        from _reference_deliberation import PREDICATES as REF

        for name, predicate in PREDICATES.items():
            assert predicate(got) == REF[name](want), (name, upto)


# -- examples --------------------------------------------------------------------------------


def roundtable() -> Deliberation:
    members = ["Sonar Pro", "GPT-5.4", "Gemini", "Qwen", "Claude", "Grok"]
    deliberator = Deliberator("What is the most effective tool for agents on a local network?", members,
                              rule=[Majority(), Plurality()], rounds=3, until=[unanimous, no_change])  # fmt: skip
    deliberator.open_round()
    first = {"Sonar Pro": "Redis", "GPT-5.4": "NATS", "Gemini": "Redis", "Qwen": "ZeroMQ", "Claude": "nats",
             "Grok": "NATS"}  # fmt: skip
    for name, stance in first.items():
        deliberator.answer(name, Position(stance, answer=f"{stance} is best", confidence=0.5))
    deliberator.close_round(elapsed=1.0)
    deliberator.open_round()
    for name in members:
        if name in ("Sonar Pro", "Qwen"):
            deliberator.answer(name, {"stance": "NATS", "reason": "Claude's argument convinced me that NATS fits",
                                      "persuaded_by": ["Claude"], "round": 2})  # fmt: skip
        elif name == "Gemini":
            deliberator.answer(name, Position("Redis", reason="Redis is the most effective tool because it is "
                                              "everywhere", confidence=0.9))  # fmt: skip
        else:
            deliberator.answer(name, Position("NATS", answer="I maintain my original position: NATS"))
    deliberator.close_round(elapsed=2.0)
    assert deliberator.phase is Phase.READY
    deliberator.open_round()
    for name, position in deliberator.rounds[-1].positions.items():
        deliberator.answer(name, Position(position.stance, answer=position.answer, reason=position.reason,
                                          confidence=position.confidence, round=3))  # fmt: skip
    deliberator.close_round(elapsed=1.0)
    assert deliberator.done
    return deliberator.result(elapsed=4.0)


def test_roundtable_report() -> None:
    result = roundtable()
    assert result.outcome == "NATS" and result.decision is not None and result.decision.decided_by == "Majority"
    assert str(result.agreement) == "5 of 6"
    assert result.stopped_by == "no_change" and result.converged_at == 3
    assert result.counterpoint is not None and result.counterpoint.stance == "Redis"
    assert result.counterpoint.by == "Gemini" and result.counterpoint.members == ("Gemini",)
    assert dict(result.influence) == {"Claude": ("Sonar Pro", "Qwen")}
    assert result.final["Sonar Pro"].changed and result.final["Sonar Pro"].changed_from == "Redis"
    assert not result.final["GPT-5.4"].changed
    text = str(result)
    assert "Answer: NATS (5 of 6 members agreed)" in text
    assert "Counterpoint: Redis: Redis is the most effective tool because it is everywhere" in text
    assert "Sonar Pro (changed mind)  Answer: NATS" in text
    assert "Final summary: converged on NATS in round 3; Claude persuaded Sonar Pro and Qwen to pivot; " \
           "Gemini the lone dissenter." in text  # fmt: skip
    assert json.loads(json.dumps(result.to_dict()))["agreement"] == {"stance": "NATS", "count": 5, "of": 6}


def test_late_replies_and_bad_positions_are_counted() -> None:
    deliberator = Deliberator("q", ["ann", "bob", "cy"], options=["yes", "no"], rounds=2)
    assert deliberator.answer("ann", "yes") is Verdict.CLOSED and deliberator.late == 1
    deliberator.open_round()
    assert deliberator.answer("ann", {"stance": "yes", "round": 7}) is Verdict.CLOSED
    assert deliberator.answer("ann", " YES ") is Verdict.ACCEPTED
    assert deliberator.answer("ann", "no") is Verdict.DUPLICATE
    assert deliberator.answer("bob", "maybe") is Verdict.ACCEPTED  # consumed: bob failed this round
    assert deliberator.answer("zed", "yes") is Verdict.UNEXPECTED
    deliberator.join("dee")
    deliberator.left("cy")
    first = deliberator.close_round(elapsed=1.0)
    assert "none of the options" in first.errors["bob"].message and first.left == {"cy"}
    assert first.rejected == 3 and first.decision is not None and first.decision.outcome is None  # 1 of 3
    deliberator.open_round()
    assert deliberator.pending == {"ann", "bob", "dee"}
    second = deliberator.close_round(elapsed=1.0)
    assert second.joined == {"dee"} and deliberator.done and deliberator.stopped_by == "rounds"


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match="rounds"):
        Deliberator("q", ["a"], rounds=0)
    with pytest.raises(ValueError, match="same stance"):
        Deliberator("q", ["a"], options=["Yes", " yes"])
    with pytest.raises(TypeError, match="until="):
        Deliberator("q", ["a"], until=[3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="twice"):
        Deliberator("q", ["a", "a"])
    with pytest.raises(TypeError, match="key must return text"):
        Deliberator("q", ["a"], options=["x"], key=lambda s: 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="closed question"):
        Deliberator("q", ["a"], rule=Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="x"))
    with pytest.raises(ValueError, match="status quo 'z'"):
        Deliberator("q", ["a"], options=["x"], rule=[Majority(), Plurality(status_quo="z")])
    with pytest.raises(ValueError, match="1..128"):
        Deliberator("q", ["a" * 129])
    nobody = Deliberator("q", [])
    assert nobody.done and nobody.stopped_by == "no members" and nobody.result().rounds == ()


def test_a_failing_until_stops_without_raising() -> None:
    def broken(rounds: Any) -> bool:
        raise RuntimeError("oops")

    deliberator = Deliberator("q", ["a"], until=broken)
    deliberator.open_round()
    deliberator.close_round(elapsed=0.0)
    assert deliberator.done and deliberator.stopped_by == "until=broken failed: RuntimeError: oops"
