"""The sans-IO state machines of rooms (poll rounds, vote rounds, the roster) under arbitrary event orders."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import Ballot, Failure, Majority, tally
from consensus.decide import PollRound, Verdict, VoteRound
from consensus.room import Roster
from consensus.room.roster import JoinOutcome

NAMES = ["a", "b", "c", "d", "e"]

poll_events = st.lists(
    st.tuples(st.sampled_from(["answer", "fail", "left", "finish"]), st.sampled_from(NAMES)), max_size=25
)


@settings(max_examples=400)
@given(expected=st.sets(st.sampled_from(NAMES[:4])), events=poll_events, quorum=st.none() | st.integers(1, 4))
def test_poll_round_against_a_naive_reference(
    expected: set[str], events: list[tuple[str, str]], quorum: int | None
) -> None:
    round = PollRound(expected, quorum=quorum)
    status: dict[str, str] = {}  # the reference: first event per expected name wins
    finished = False
    for t, (event, name) in enumerate(events):
        if event == "finish":
            round.finish()
            finished = True
            continue
        if event == "left":
            round.left(name)
            if not finished and name in expected and name not in status:
                status[name] = "left"
            continue
        verdict = (
            round.answer(name, t, at=t)
            if event == "answer"
            else round.fail(name, Failure("E", str(t)), at=t)
        )
        if finished:
            want = Verdict.CLOSED
        elif name not in expected:
            want = Verdict.UNEXPECTED
        elif name in status:
            want = Verdict.DUPLICATE
        else:
            want = Verdict.ACCEPTED
            status[name] = (event, t)  # type: ignore[assignment]
        assert verdict is want
        answers = sum(1 for s in status.values() if s != "left" and s[0] == "answer")
        assert round.pending == expected - status.keys()
        assert round.complete == (finished or not round.pending or (quorum is not None and answers >= quorum))
    result = round.result("q", elapsed=1.0)
    assert dict(result.answers) == {n: s[1] for n, s in status.items() if s != "left" and s[0] == "answer"}
    assert set(result.errors) == {n for n, s in status.items() if s != "left" and s[0] == "fail"}
    assert result.left == {n for n, s in status.items() if s == "left"}
    assert result.missing == expected - result.answers.keys() - result.errors.keys()
    assert set(result.latencies) == result.answers.keys() | result.errors.keys()
    assert result.rejected == sum(1 for e, n in events if e in ("answer", "fail")) - len(
        result.answers
    ) - len(result.errors)


vote_events = st.lists(
    st.tuples(
        st.sampled_from(["ballot", "junk", "fail", "left"]),
        st.sampled_from(NAMES),
        st.sampled_from(["yes", "no", None, "maybe"]),
    ),
    max_size=20,
)


@settings(max_examples=300)
@given(
    electorate=st.dictionaries(st.sampled_from(NAMES[:4]), st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=1),
    events=vote_events,
    quorum=st.none() | st.integers(1, 4),
)
def test_vote_round_decision_matches_the_pure_tally(
    electorate: dict[str, float], events: list[tuple[str, str, Any]], quorum: int | None
) -> None:
    weights = electorate
    round = VoteRound(7, electorate=weights, options=["yes", "no"], rule=Majority(), quorum=quorum)
    accepted: list[tuple[str, Ballot]] = []
    for event, name, choice in events:
        if round.complete and quorum is None:
            break
        if event == "ballot":
            before = round.pending
            round.ballot(name, {"choice": choice, "vote": 7})
            if name in before:
                accepted.append((name, Ballot(choice, vote=7)))
        elif event == "junk":
            round.ballot(name, {"choice": choice, "confidence": "very"})
        elif event == "fail":
            round.fail(name, Failure("E", "boom"))
        else:
            round.left(name)
        assert round.pending <= frozenset(electorate)
    round.finish()
    decision = round.decision(elapsed=0.5)
    reference = tally(
        accepted, options=["yes", "no"], rule=Majority(), electorate=weights, quorum=quorum, vote=7
    )
    assert decision.outcome == reference.outcome
    assert dict(decision.tally) == dict(reference.tally)
    assert decision.quorum_met == reference.quorum_met
    # A quorum is a count of members with an accepted ballot, whatever their weights.
    assert decision.quorum_met == (quorum is None or len(decision.ballots) >= quorum)
    assert decision.vote == 7 and decision.elapsed == 0.5
    assert decision.rejected_count >= reference.rejected_count


BAD_QUORUMS = [(1.0, ValueError), (0.5, ValueError), (Fraction(2, 3), ValueError), (0, ValueError),
               (-1, ValueError), (True, TypeError), ("2", TypeError), ([2], TypeError)]  # fmt: skip


@pytest.mark.parametrize(("quorum", "error"), BAD_QUORUMS)
def test_polls_and_votes_refuse_the_same_quorums(quorum: Any, error: type[Exception]) -> None:
    """One meaning of ``quorum`` (a count of members) for polls, votes and the tally."""
    makers: list[Callable[[], object]] = [
        lambda: PollRound(["a"], quorum=quorum),
        lambda: VoteRound(1, electorate={"a": 1.0}, options=["y"], rule=Majority(), quorum=quorum),
        lambda: tally({}, options=["y"], electorate=["a"], quorum=quorum),
    ]
    messages = set()
    for make in makers:
        with pytest.raises(error) as info:
            make()
        messages.add(str(info.value))
    assert len(messages) == 1 and "quorum" in messages.pop()


roster_events = st.lists(
    st.tuples(
        st.sampled_from(["join", "beat", "leave", "drop", "expire"]),
        st.sampled_from(NAMES[:3]),
        st.integers(1, 3),  # token
        st.integers(1, 4),  # pipe
        st.floats(0, 1.0),  # time step
    ),
    max_size=30,
)


@settings(max_examples=400)
@given(events=roster_events)
def test_roster_invariants(events: list[tuple[str, str, int, int, float]]) -> None:
    roster = Roster(heartbeat=0.5, missed_heartbeats=3)
    now = 0.0
    dropped_pipes: set[int] = set()
    for event, name, token, pipe, step in events:
        now += step
        before = {n: roster.get(n) for n in roster.names}
        version = roster.version
        if event == "join":
            verdict = roster.join(name, token, f"ipc://{name}", pipe, now)
            old = before.get(name)
            if pipe in dropped_pipes:
                assert verdict.outcome is JoinOutcome.REFUSED
            elif old is None:
                assert verdict.outcome is JoinOutcome.ACCEPTED
            elif old.token == token:
                assert verdict.outcome is JoinOutcome.REFRESHED
            elif now - old.last_seen <= 1.0:
                assert verdict.outcome is JoinOutcome.REFUSED and "live member" in verdict.reason
            else:
                assert verdict.outcome is JoinOutcome.REPLACED and verdict.replaced == old
        elif event == "beat":
            ok = roster.heartbeat_from(name, token, now)
            assert ok == (name in before and before[name].token == token)  # type: ignore[union-attr]
        elif event == "leave":
            assert roster.leave(name, token) == (name in before and before[name].token == token)  # type: ignore[union-attr]
        elif event == "drop":
            gone = roster.pipe_closed(pipe)
            dropped_pipes.add(pipe)
            assert set(gone) == {n for n, r in before.items() if r.pipe == pipe}  # type: ignore[union-attr]
        else:
            gone = roster.expire(now)
            assert set(gone) == {n for n, r in before.items() if now - r.last_seen > 1.5}  # type: ignore[union-attr]
            assert all(now - roster.get(n).last_seen <= 1.5 for n in roster.names)  # type: ignore[union-attr]
        # One record per name; the version moves exactly when the set of members changes hands.
        after = {n: roster.get(n) for n in roster.names}
        changed = before.keys() != after.keys() or any(
            before[n].token != after[n].token  # type: ignore[union-attr]
            for n in after
            if n in before
        )
        assert (roster.version != version) == changed
        assert all(r.pipe not in dropped_pipes for r in after.values())  # type: ignore[union-attr]


@settings(max_examples=200)
@given(expected=st.sets(st.sampled_from(NAMES[:4])), before=poll_events, after=poll_events)
def test_a_finished_poll_result_never_changes(
    expected: set[str], before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    """A finished round shares its maps with its result (no copy): nothing may change them."""

    def play(round: PollRound, events: list[tuple[str, str]]) -> None:
        for t, (event, name) in enumerate(events):
            if event == "answer":
                round.answer(name, t, at=t)
            elif event == "fail":
                round.fail(name, Failure("E", str(t)), at=t)
            elif event == "left":
                round.left(name)

    round = PollRound(expected)
    play(round, before)
    round.finish()
    result = round.result("q", elapsed=1.0)
    snapshot = (dict(result.answers), dict(result.errors), dict(result.latencies), result.missing, result.left)
    play(round, after)
    assert (dict(result.answers), dict(result.errors), dict(result.latencies), result.missing,
            result.left) == snapshot  # fmt: skip


roster_joins = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "drop", "expire", "beat"]),
        st.sampled_from(NAMES[:4]),
        st.integers(1, 2),  # token
        st.booleans(),  # refs
        st.booleans(),  # observer
        st.floats(0, 1.0),  # time step
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(events=roster_joins)
def test_roster_participants_and_refs_follow_every_change(events: list[tuple[str, str, int, bool, bool, float]]) -> None:
    """``participants`` and ``refs`` are kept between changes: they must equal a fresh look."""
    roster = Roster(heartbeat=0.5, missed_heartbeats=3)
    now = 0.0
    for event, name, token, refs, observer, step in events:
        now += step
        if event == "join":
            roster.join(name, token, f"ipc://{name}", token, now, refs=refs, observer=observer)
        elif event == "leave":
            roster.leave(name, token)
        elif event == "drop":
            roster.pipe_closed(token)
        elif event == "expire":
            roster.expire(now)
        else:
            roster.heartbeat_from(name, token, now)
        records = [roster.get(n) for n in roster.names]
        assert roster.participants == tuple(sorted(r.name for r in records if r and not r.observer))
        assert roster.refs == all(r.refs for r in records if r)
