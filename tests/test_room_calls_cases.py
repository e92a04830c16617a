"""Member calls and observers in memory: the host's and members' protocol objects, and the
wire forms they rely on (PollResult, rules), with strict checks on hostile input."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import given
from hypothesis import strategies as st

from consensus.decide.poll import PollRound
from consensus.decide.rule_wire import rule_from_wire, rule_to_wire
from consensus.decide.rules import Majority, Plurality, Supermajority, TieBreak, Unanimous, Weighting
from consensus.errors import InvalidPollResult
from consensus.failure import Failure
from consensus.room import calls as C
from consensus.room import protocol as P
from consensus.room.events import CallAnswered, CallRequested, Decline, Ignored, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol, MemberState
from patterns import MalformedMessage


def joined(host: HostProtocol, name: str, *, pipe: int, observer: bool = False) -> MemberProtocol:
    member = MemberProtocol(name=name, token=pipe, host_mesh=ENDS.mesh, on_poll=True, on_vote=True,
                            observer=observer)  # fmt: skip
    member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
    frame = member.join_frame()
    for out in host.receive_control(wire(frame.kind, name, frame.body), pipe, 0.0):
        if isinstance(out, Send):
            member.receive_control(wire(out.kind, "host", out.body), 0.0)
    assert member.state is MemberState.JOINED
    return member


def deliver(host: HostProtocol, member: MemberProtocol, frame: Send, pipe: int) -> list[Any]:
    return host.receive_control(wire(frame.kind, member.name, frame.body), pipe, 0.0)


def test_a_members_poll_call_is_run_and_its_result_reaches_only_the_caller() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann, bob = joined(host, "ann", pipe=1), joined(host, "bob", pipe=2)
    call_id, frame = ann.call_frame(C.POLL_CALL, "ready?", timeout=5, quorum=2)
    (requested,) = deliver(host, ann, frame, 1)
    assert isinstance(requested, CallRequested) and requested.call.subject == "ready?"
    assert requested.call.quorum == 2 and requested.call.timeout == 5.0
    assert deliver(host, ann, frame, 1) == []  # the same call again while it runs: nothing new
    key, _ = host.rounds.open_poll("ready?", quorum=2, now=0.0)
    assert host.members == ("ann", "bob")
    result = host.rounds.close_poll(key, 1.0)
    (out,) = host.calls.result(requested.call, result)
    assert isinstance(out, Send) and out.kind == C.RESULT
    assert bob.receive_control(wire(out.kind, "host", out.body), 1.0) == []  # not bob's
    (answered,) = ann.receive_control(wire(out.kind, "host", out.body), 1.0)
    assert isinstance(answered, CallAnswered) and answered.answer.call_id == call_id
    assert answered.answer.poll == result
    assert ann.receive_control(wire(out.kind, "host", out.body), 1.0) == []  # a duplicate is late
    assert ann.counts["late_results"] == 1 and host.counts["calls"] == 1


def test_calls_are_refused_with_the_reason() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT, member_calls=False)
    ann = joined(host, "ann", pipe=1)
    _, frame = ann.call_frame(C.POLL_CALL, "q", timeout=1)
    (out,) = deliver(host, ann, frame, 1)
    (answered,) = ann.receive_control(wire(out.kind, "host", out.body), 0.0)
    assert isinstance(answered, CallAnswered) and "member_calls=False" in answered.answer.refused
    host.calls.member_calls = True
    for change, why in [({"kind": "dance"}, "neither"), ({"timeout": 0}, "timeout"), ({"timeout": "1"}, "timeout"),
                        ({"quorum": 0}, "quorum"), ({"kind": "vote", "motion": "m"}, "options"),
                        ({"kind": "vote", "motion": "m", "options": [], "rule": {"rule": "dictator"}}, "rule"),
                        ({"kind": "vote", "motion": "m", "options": [], "weights": {"a": -1}}, "weights")]:  # fmt: skip
        (out,) = host.receive_control(wire(C.CALL, "ann", frame.body | change), 1, 0.0)
        assert isinstance(out, Send) and why in out.body["refused"], (change, out)
    stranger = frame.body | {"name": "zed"}  # not a member: refused, never run
    (out,) = host.receive_control(wire(C.CALL, "zed", stranger), 3, 0.0)
    assert isinstance(out, Send) and "not a member" in out.body["refused"]
    assert host.counts["refused_calls"] == 9 and host.counts["calls"] == 0


def test_malformed_calls_and_results_are_counted_and_dropped() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    for body in [None, {"name": "ann", "token": 1}, {"name": "ann", "token": 1, "call": -1}, {"call": 1}]:
        (out,) = host.receive_control(wire(C.CALL, "ann", body), 1, 0.0)
        assert isinstance(out, Ignored)
    assert host.counts["malformed"] == 4
    good = C.result_body("ann", 1, 1, refused="no")
    for body in [good | {"poll": {}}, good | {"refused": 3}, {"name": "ann", "token": 1, "call": 1},
                 {"name": "ann", "token": 1, "call": 1, "poll": {"question": 1}}]:  # fmt: skip
        (out,) = ann.receive_control(wire(C.RESULT, "host", body), 0.0)
        assert isinstance(out, Ignored)


def test_an_observer_is_in_the_room_but_never_polled_nor_in_an_electorate() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    eve = joined(host, "eve", pipe=2, observer=True)
    assert eve.join_frame().body["observer"] is True
    assert host.members == ("ann",) and host.observers == ("eve",)
    roster = host.roster_frame().body
    assert roster["observers"] == ["eve"] and set(roster["members"]) == {"ann", "eve"}
    ann.receive_control(wire(P.ROSTER, "host", roster), 0.0)
    assert ann.observers == frozenset({"eve"})
    key, (survey,) = host.rounds.open_poll("q", quorum=None, now=0.0)
    assert eve.receive_survey(1, wire(survey.kind, "host", survey.body), 0.0) == [Decline(1)]
    result = host.rounds.close_poll(key, 1.0)
    assert result.expected == frozenset({"ann"})
    key, _ = host.rounds.open_vote("m", options=("a",), vote_id=1, rule=None, quorum=None, weights=None, now=0.0)
    decision, _ = host.rounds.close_vote(key, 1.0)
    assert decision.missing == frozenset({"ann"})
    _, frame = eve.call_frame(C.VOTE_CALL, "m", timeout=1, options=("a", "b"))
    (requested,) = deliver(host, eve, frame, 2)  # an observer may call
    assert isinstance(requested, CallRequested) and requested.call.options == ("a", "b")


# ------------------------------------------------------------------ wire forms
answers = st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=5), max_size=4)


@given(answers, st.sets(st.text(min_size=1, max_size=5), max_size=3), st.none() | st.integers(1, 5))
def test_a_poll_result_survives_its_wire_form(given_answers: dict[str, Any], others: set[str],
                                              quorum: int | None) -> None:  # fmt: skip
    poll = PollRound(set(given_answers) | others, quorum=quorum)
    for index, (name, value) in enumerate(given_answers.items()):
        if index % 3 == 2:
            poll.fail(name, Failure("E", str(value)), at=0.5)
        else:
            poll.answer(name, value, at=0.25)
    for name in list(others)[:1]:
        poll.left(name)
    result = poll.result("q", elapsed=1.5, poll_id=7)
    assert type(result).from_wire(result.to_wire()) == result


@pytest.mark.parametrize("change", [
    {"answers": []}, {"missing": "ann"}, {"elapsed": -1}, {"elapsed": float("nan")}, {"quorum": 0},
    {"quorum_met": 1}, {"poll_id": -1}, {"errors": {"ann": "boom"}}, {"answers": {"zed": 1}}, {"extra": 1},
    {"latencies": {"ann": "fast"}},
])  # fmt: skip
def test_a_bad_poll_result_is_rejected(change: dict[str, Any]) -> None:
    poll = PollRound({"ann"})
    poll.answer("ann", 1)
    wire_form = poll.result("q", elapsed=1.0).to_wire() | change
    with pytest.raises(InvalidPollResult):
        type(poll.result("q", elapsed=1.0)).from_wire(wire_form)


@pytest.mark.parametrize("rule", [
    Majority(), Unanimous(weighting=Weighting.CONFIDENCE), Plurality(tie_break=TieBreak.FIRST_LISTED),
    Plurality(tie_break=TieBreak.STATUS_QUO, status_quo="keep"), Supermajority(Fraction(2, 3)),
    Supermajority(0.9),
])  # fmt: skip
def test_a_rule_survives_its_wire_form(rule: Any) -> None:
    assert rule_from_wire(rule_to_wire(rule)) == rule


def test_the_documented_rule_example_parses() -> None:
    assert rule_from_wire({"rule": "supermajority", "fraction": 0.66}) == Supermajority(0.66)


@pytest.mark.parametrize("bad", [
    None, {"rule": "dictator"}, {"rule": "supermajority"}, {"rule": "supermajority", "fraction": 0.4},
    {"rule": "majority", "fraction": 0.7}, {"rule": "majority", "weighting": "loud"},
    {"rule": "plurality", "tie_break": "status_quo"}, {"rule": "majority", "extra": 1},
    {"rule": "plurality", "status_quo": [1]}, {"rule": "supermajority", "fraction": True},
])  # fmt: skip
def test_a_bad_rule_is_rejected(bad: Any) -> None:
    with pytest.raises(ValueError):
        rule_from_wire(bad)


def test_a_member_refuses_to_build_calls_no_host_would_take() -> None:
    member = MemberProtocol(name="ann", token=1, host_mesh=ENDS.mesh, on_poll=False, on_vote=False)
    for timeout, quorum in [(0, None), (-1, None), (1e9, None), (1, 0)]:
        with pytest.raises(ValueError):
            member.call_frame(C.POLL_CALL, "q", timeout=timeout, quorum=quorum)
    with pytest.raises(MalformedMessage):
        C.parse_call(wire(C.CALL, "ann", {"name": "ann"}))
