"""The incremental count (``consensus.decide.count.Count``) against the naive model
(``tests/_naive_count.py``: the from-scratch tally it replaced), after every step of
generated votes: ballots (good, malformed, for another vote, from outsiders, twice),
failures and departures, over random electorates (int, Fraction and float weights),
rules and fallbacks, quorums and orders; and the ones built on it (``tally``,
``is_decided``, ``VoteRound``, ``Decision.recount``), which must answer as before.
"""

from __future__ import annotations

from fractions import Fraction as F
from typing import Any

import _naive_count as naive
import pytest
from _tally_cases import (
    CONFIDENCES,
    FEW,
    FRACTIONS,
    MALFORMED_WIRE,
    NAMES,
    OPTIONS,
    OTHER_CHOICES,
    OUTSIDERS,
    SOME,
    Scenario,
    scenarios,
    through_cbor,
)
from hypothesis import given
from hypothesis import strategies as st

from consensus.decide.ballot import Ballot
from consensus.decide.count import Count
from consensus.decide.decision import Decision
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import is_decided, tally
from consensus.decide.vote import VoteRound
from consensus.failure import Failure

VOTE = 5
WEIGHTS: list[Any] = [0, 1, 2, 3, F(1, 3), F(5, 2), F(0), 0.5, 0.1, 1 / 3, 2.0, 1.5, 0.0]


@st.composite
def rules(draw: st.DrawFn, options: list[Any]) -> Rule:
    kind = draw(st.sampled_from([Majority, Supermajority, Unanimous, Plurality]))
    tie_break = draw(st.sampled_from(TieBreak))
    status_quo = None
    if tie_break is TieBreak.STATUS_QUO or draw(st.booleans()):
        status_quo = draw(st.sampled_from(options))
    common: dict[str, Any] = {"weighting": draw(st.sampled_from(Weighting)), "tie_break": tie_break,
                              "status_quo": status_quo}  # fmt: skip
    if kind is Supermajority:
        return Supermajority(draw(st.sampled_from(FRACTIONS))[0], **common)
    rule: Rule = kind(**common)
    return rule


@st.composite
def values(draw: st.DrawFn, options: list[Any]) -> Any:
    """A ballot as a handler or a peer may give it: mostly good, sometimes not."""
    choice = draw(st.sampled_from([*options, *options, None, *OTHER_CHOICES]))
    confidence = draw(st.sampled_from(CONFIDENCES))[0]
    vote = draw(st.sampled_from([None, None, VOTE, VOTE + 1]))
    form = draw(st.sampled_from(["ballot", "ballot", "raw", "wire", "malformed"]))
    if form == "ballot":
        return Ballot(choice, confidence, vote=vote)
    if form == "raw":
        return choice
    if form == "wire":
        return {"choice": choice, "confidence": confidence, "vote": vote}
    return dict(draw(st.sampled_from(MALFORMED_WIRE)))


@st.composite
def votes(draw: st.DrawFn) -> dict[str, Any]:
    """Arguments of a count, and the steps fed to it: ("ballot", voter, value), ("fail", voter) or ("leave", voter)."""
    options = draw(OPTIONS)
    names = NAMES[: draw(st.integers(0, 6))]
    if draw(st.booleans()):
        electorate: Any = list(names)
    else:
        electorate = {name: draw(st.sampled_from(WEIGHTS)) for name in names}
    chain = draw(st.lists(rules(options), min_size=1, max_size=3))
    rule: Any = chain[0] if len(chain) == 1 and draw(st.booleans()) else chain
    voters = names * 3 + OUTSIDERS if names else OUTSIDERS
    step = st.one_of(
        st.tuples(st.just("ballot"), st.sampled_from(voters), values(options)),
        st.tuples(st.sampled_from(["fail", "leave"]), st.sampled_from(voters)),
    )
    return {
        "options": options,
        "rule": rule,
        "electorate": electorate,
        "quorum": draw(st.none() | st.integers(1, len(names) + 1)),
        "vote": draw(st.sampled_from([None, VOTE])),
        "steps": draw(st.lists(step, max_size=14)),
        "pending": draw(st.lists(st.sampled_from(names + OUTSIDERS), unique=True)) if names else [],
        "close_on_ballot": draw(st.booleans()),
    }


# -- the count, step by step, against the naive model -----------------------------------------


@FEW
@given(votes())
def test_count_answers_as_the_naive_model_after_every_step(case: dict[str, Any]) -> None:
    arguments = {key: case[key] for key in ("options", "rule", "electorate", "quorum", "vote")}
    count = Count(**arguments)
    count.expect(case["pending"])
    pending = set(case["pending"])  # the model: names that may still vote (is_decided filters the rest)
    ballots: list[tuple[str, Any]] = []
    chain = naive.as_rules(case["rule"])
    for step in case["steps"]:
        voter = step[1]
        rejected_before = len(count.rejected.get(voter, ()))
        if step[0] == "ballot":
            reason = count.add(voter, step[2])
            ballots.append((voter, step[2]))
            if case["close_on_ballot"]:  # as VoteRound does: a member that has voted is done
                count.close(voter)
                pending.discard(voter)
        else:
            count.close(voter)
            pending.discard(voter)
        fresh = naive.tally(ballots, **arguments)
        decision = Decision.from_count(count)
        assert decision == fresh
        if step[0] == "ballot":  # the reason add() gives is the one the model adds, if any
            grew = len(fresh.rejected.get(voter, ())) > rejected_before
            assert (reason is not None) is grew
            assert reason is None or reason == fresh.rejected[voter][-1]
        settled = naive.is_decided(ballots, **arguments, pending=pending)
        assert (decision if count.settled() else None) == settled
        for at, rule in enumerate(chain):
            model = naive._count(ballots, case["options"], rule, case["electorate"], case["vote"])
            assert count.standing(at) == model.standing()
            assert list(count.weights(at)) == model.weights
            assert count.present == model.present()
        assert count.turnout == len(fresh.ballots)
        assert count.quorum_met is fresh.quorum_met


@SOME
@given(votes())
def test_tally_and_is_decided_answer_as_before(case: dict[str, Any]) -> None:
    arguments = {key: case[key] for key in ("options", "rule", "electorate", "quorum", "vote")}
    pairs = [(step[1], step[2]) for step in case["steps"] if step[0] == "ballot"]
    assert tally(pairs, **arguments) == naive.tally(pairs, **arguments)
    # An iterator runs out: a fallback still counts it under every rule.
    assert tally(iter(pairs), **arguments) == naive.tally(iter(pairs), **arguments)
    if len({voter for voter, _ in pairs}) == len(pairs):
        assert tally(dict(pairs), **arguments) == naive.tally(dict(pairs), **arguments)
    pending = case["pending"] + [step[1] for step in case["steps"] if step[0] != "ballot"]
    assert is_decided(iter(pairs), **arguments, pending=iter(pending)) == naive.is_decided(
        pairs, **arguments, pending=pending
    )


@SOME
@given(scenarios(), st.data())
def test_recount_answers_as_before(scenario: Scenario, data: st.DataObject) -> None:
    chain = data.draw(st.lists(rules(scenario.options), min_size=1, max_size=3))
    decision = scenario.run()
    for given_ in (decision, Decision.from_wire(through_cbor(decision.to_wire()))):
        if given_.electorate is None:  # unequal weights sent without them: both refuse
            with pytest.raises(ValueError, match="electorate"):
                given_.recount(chain)
            continue
        assert given_.recount(chain) == naive.naive_recount(given_, chain)
        assert given_.recount(chain[0]) == naive.naive_recount(given_, chain[0])


# -- the vote round ---------------------------------------------------------------------------


@st.composite
def vote_rounds(draw: st.DrawFn) -> dict[str, Any]:
    options = draw(OPTIONS)
    names = NAMES[: draw(st.integers(1, 6))]
    electorate = {name: float(draw(st.sampled_from(WEIGHTS))) for name in names}
    chain = draw(st.lists(rules(options), min_size=1, max_size=2))
    choice = st.sampled_from([*options, None, "zzz"])
    event = st.one_of(
        st.tuples(st.just("ballot"), st.sampled_from(names + OUTSIDERS), values(options)),
        st.tuples(st.just("wire"), st.sampled_from(names), st.builds(lambda c, v: {"choice": c, "vote": v}, choice,
                                                                     st.sampled_from([None, VOTE, VOTE + 1]))),
        st.tuples(st.sampled_from(["fail", "left", "finish"]), st.sampled_from(names + OUTSIDERS)),
    )  # fmt: skip
    return {"options": options, "electorate": electorate, "rule": chain[0] if len(chain) == 1 else chain,
            "quorum": draw(st.none() | st.integers(1, len(names) + 1)),
            "events": draw(st.lists(event, max_size=16))}  # fmt: skip


@FEW
@given(vote_rounds())
def test_vote_round_answers_as_before_after_every_event(case: dict[str, Any]) -> None:
    arguments = {key: case[key] for key in ("options", "rule", "electorate", "quorum")}
    rounds = [VoteRound(VOTE, **arguments), naive.NaiveVoteRound(VOTE, **arguments)]
    for event in case["events"]:
        answers = []
        for round_ in rounds:
            if event[0] in ("ballot", "wire"):
                value = event[2]
                if event[0] == "ballot" and not isinstance(value, Ballot):
                    value = Ballot.coerce(value) if not isinstance(value, dict) else value
                answers.append(round_.ballot(event[1], value))
            elif event[0] == "fail":
                answers.append(round_.fail(event[1], Failure("E", "boom")))
            elif event[0] == "left":
                answers.append(round_.left(event[1]))
            else:
                answers.append(round_.finish())
        new, old = rounds
        assert answers[0] == answers[1]
        assert new.complete is old.complete
        assert new.pending == old.pending
        assert new.rejected == old.rejected
        assert new.decision(elapsed=0.25) == old.decision(elapsed=0.25)


def test_a_vote_counts_each_ballot_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 members, a quorum: 64 ballots read, where the from-scratch count read 2000 and more."""
    read = []
    coerce = Ballot.coerce

    def counting(value: object) -> Ballot:
        read.append(value)
        return coerce(value)

    monkeypatch.setattr(Ballot, "coerce", staticmethod(counting))
    names = [f"m{i:02d}" for i in range(64)]
    vote = VoteRound(VOTE, electorate=dict.fromkeys(names, 1.0), options=["a", "b"],
                     rule=[Supermajority(0.9), Plurality()], quorum=40)  # fmt: skip
    for i, name in enumerate(names):
        vote.ballot(name, {"choice": "b" if i % 3 == 2 else "a", "vote": VOTE})
    assert vote.complete
    decision = vote.decision(elapsed=0.0)
    assert (decision.outcome, decision.decided_by) == ("a", "Plurality")
    assert len(read) == 64


def test_is_decided_cases_where_the_quorum_decides() -> None:
    """Settled at once when the quorum cannot be reached any more; open while it can."""
    count = Count(options=["a", "b"], rule=Majority(), electorate=["ann", "bob", "cy"], quorum=3)
    count.expect(["ann", "bob", "cy"])
    count.add("ann", "a")
    assert not count.settled()  # bob and cy may still make the quorum
    count.close("bob")
    assert count.settled() and not count.quorum_met  # 2 voters at most now
    assert Decision.from_count(count).outcome is None
