"""Deliberations wired in memory: a HostProtocol and MemberProtocols passing frames."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _rooms import ENDS, HEARTBEAT, sent, wire

from consensus.decide.position import Position
from consensus.decide.prompt import Seen
from consensus.decide.until import unanimous
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import DecisionReceived, DeliberationReceived, Handle, HandlerKind, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol, MemberState
from patterns import Encoded

Thinker = Callable[[Any, int, tuple[Seen, ...], Any], Any]


def joined(host: HostProtocol, name: str, *, pipe: int, deliberate: bool = True, older: bool = False) -> MemberProtocol:
    """A member in the room; ``older``: its join does not say it reads the decision from the
    result (as a member from before that was said)."""
    member = MemberProtocol(name=name, token=pipe, host_mesh=ENDS.mesh, on_poll=True, on_vote=False,
                            on_deliberate=deliberate)  # fmt: skip
    member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
    frame = member.join_frame()
    assert frame.body["decided"] is True
    body = {key: value for key, value in frame.body.items() if not (older and key == "decided")}
    for out in host.receive_control(wire(frame.kind, name, body), pipe, 0.0):
        if isinstance(out, Send) and out.kind == P.WELCOME:
            member.receive_control(wire(out.kind, "host", out.body), 0.0)
    assert member.state is MemberState.JOINED
    return member


def run_round(host: HostProtocol, dkey: int, members: dict[str, MemberProtocol],
              think: dict[str, Thinker], now: float, seen: list[Any]) -> None:  # fmt: skip
    key, (survey,), _ = host.rounds.open_deliberation_round(dkey, now)
    assert survey.kind == D.DELIBERATE
    seen.append(sent(survey.body))
    for n, (name, member) in enumerate(members.items()):
        (out,) = member.receive_survey(n, wire(survey.kind, "host", survey.body), now)
        assert isinstance(out, Handle)
        if out.handler is HandlerKind.DELIBERATE:
            value = think[name](*out.args)
        else:
            value = f"poll {out.args[0]}"
        reply = member.reply(n, (True, value))
        member.sent(n)
        host.rounds.reply(key, wire(reply.kind, name, reply.body, re=1), now + 0.1)
    host.rounds.close_deliberation_round(key, now + 0.2)
    host.rounds.replies_done(key)  # the driver's reading task ends


def stubborn(stance: str) -> Thinker:
    return lambda question, number, others, options: Position(stance, reason=f"{stance} is best")


def follower(question: Any, number: int, others: tuple[Seen, ...], options: Any) -> Any:
    nats = [seen.label for seen in others if seen.position.stance == "NATS"]
    if number >= 2 and nats:
        return Position("NATS", reason="persuaded", persuaded_by=tuple(nats[:1]))
    return "Redis"


@pytest.mark.parametrize("older", [(), ("cy",)])
def test_a_three_round_deliberation_records_who_changed_and_broadcasts_the_decision(older: tuple[str, ...]) -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    members = {name: joined(host, name, pipe=at, older=name in older) for at, name in enumerate(["ann", "bob", "cy"], 1)}
    think = {"ann": stubborn("NATS"), "bob": stubborn("NATS"), "cy": follower}
    dkey = host.rounds.open_deliberation("best transport?", deliberation_id=7, now=0.0, rounds=3)
    seen: list[Any] = []
    now = 0.0
    while not host.rounds.deliberation_done(dkey):
        run_round(host, dkey, members, think, now, seen)
        now += 1.0
    result, frames = host.rounds.close_deliberation(dkey, now)
    assert len(result.rounds) == 3 and result.stopped_by == "rounds"
    assert result.outcome == "NATS" and str(result.agreement) == "3 of 3"
    assert result.final["cy"].changed and result.final["cy"].changed_from == "Redis"
    assert {k: list(v) for k, v in result.influence.items()} == {"ann": ["cy"]}
    assert [e["label"] for e in seen[1]["positions"]] == ["ann", "bob", "cy"]
    if older:  # a member that does not read the decision from the result: both frames
        frame, told = frames
        assert frame.kind == P.DECISION and sent(frame.body) == P.decision_body(7, "best transport?", result.decision)
        assert sent(told.body) == D.result_body(result)
    else:  # every member reads it from the result: that frame alone, marked
        (told,) = frames
        assert sent(told.body) == D.result_body(result) | {"decided": True}
    for member in members.values():  # every member gets the decision, then the whole deliberation
        decided, heard = [out for frame in frames for out in member.receive_control(wire(frame.kind, "host",
                                                                                         frame.body), now)]  # fmt: skip
        assert isinstance(decided, DecisionReceived) and decided.decision == result.decision
        assert isinstance(heard, DeliberationReceived) and heard.deliberation == result
        assert member.counts["decisions"] == 1
    assert host.rounds.held == 0 and host.counts["deliberation_rounds"] == 3
    assert all(m.counts["positions_sent"] == 3 for m in members.values())


def test_anonymous_surveys_carry_no_names_and_unanimity_stops_early() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    names = ["annabel", "bobbert", "cyprian"]
    members = {name: joined(host, name, pipe=at) for at, name in enumerate(names, 1)}
    think = {"annabel": stubborn("NATS"), "bobbert": stubborn("NATS"), "cyprian": follower}
    dkey = host.rounds.open_deliberation("q", deliberation_id=8, now=0.0, rounds=5, anonymous=True, until=unanimous)
    seen: list[Any] = []
    now = 0.0
    while not host.rounds.deliberation_done(dkey):
        run_round(host, dkey, members, think, now, seen)
        now += 1.0
    result, _ = host.rounds.close_deliberation(dkey, now)
    assert result.stopped_by == "unanimous" and result.converged_at == 2 and len(result.rounds) == 2
    assert all(name not in repr(body) for body in seen for name in names)
    assert [e["label"] for e in seen[1]["positions"]] == ["P1", "P2", "P3"]
    assert result.final["cyprian"].position.persuaded_by[0] in ("annabel", "bobbert")


def test_a_member_with_only_on_poll_answers_with_its_poll_answer_as_stance() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    members = {"ann": joined(host, "ann", pipe=1, deliberate=False)}
    dkey = host.rounds.open_deliberation("q", deliberation_id=9, now=0.0, rounds=1)
    run_round(host, dkey, members, {}, 0.0, [])
    result, _ = host.rounds.close_deliberation(dkey, 1.0)
    assert result.final["ann"].position.stance == "poll q"


def test_leavers_are_named_missing_and_joiners_take_part_from_the_next_round() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann, bob = joined(host, "ann", pipe=1), joined(host, "bob", pipe=2)
    dkey = host.rounds.open_deliberation("q", deliberation_id=10, now=0.0, rounds=2)
    key, (survey,), _ = host.rounds.open_deliberation_round(dkey, 0.0)
    (handle,) = ann.receive_survey(1, wire(survey.kind, "host", survey.body), 0.0)
    reply = ann.reply(1, (True, "yes"))
    host.rounds.reply(key, wire(reply.kind, "ann", reply.body), 0.1)
    host.connection_closed(2, 0.2)  # bob crashes mid-round
    cy = joined(host, "cy", pipe=3)  # cy arrives mid-round: asked from round 2
    assert host.rounds.complete(key)
    first = host.rounds.close_deliberation_round(key, 0.3)
    assert first.left == frozenset({"bob"}) and "bob" in first.missing and "cy" not in first.expected
    key, (survey,), _ = host.rounds.open_deliberation_round(dkey, 1.0)
    for n, (name, member) in enumerate([("ann", ann), ("cy", cy)], 5):
        member.receive_survey(n, wire(survey.kind, "host", survey.body), 1.0)
        reply = member.reply(n, (True, "yes"))
        host.rounds.reply(key, wire(reply.kind, name, reply.body), 1.1)
    second = host.rounds.close_deliberation_round(key, 1.2)
    assert second.joined == frozenset({"cy"}) and set(second.positions) == {"ann", "cy"}
    result, _ = host.rounds.close_deliberation(dkey, 2.0)
    assert str(result.agreement) == "2 of 2"
    del bob, handle


def test_bad_replies_are_counted_and_change_nothing() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    dkey = host.rounds.open_deliberation("q", deliberation_id=11, now=0.0, rounds=1, options=["yes", "no"])
    key, (survey,), _ = host.rounds.open_deliberation_round(dkey, 0.0)
    wrong = host.rounds.reply(key, wire(P.ANSWER, "ann", P.answer_body("yes")), 0.1)
    assert wrong.verdict is None and host.counts["malformed"] == 1
    ann.receive_survey(1, wire(survey.kind, "host", survey.body), 0.0)
    reply = ann.reply(1, (True, "maybe"))  # not an option: the member fails the round
    host.rounds.reply(key, wire(reply.kind, "ann", reply.body), 0.1)
    closed = host.rounds.close_deliberation_round(key, 0.2)
    assert closed.errors["ann"].type == "InvalidPosition"
    poll_key, _ = host.rounds.open_poll("q", quorum=None, now=1.0)
    assert host.rounds.reply(poll_key, wire(D.POSITION, "ann", {"stance": "x"}), 1.1).verdict is None


def test_a_malformed_prompt_is_answered_with_an_error() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    (out,) = ann.receive_survey(1, wire(D.DELIBERATE, "host", {"round": 0}), 0.0)
    assert isinstance(out, Send) and out.kind == P.ERROR and out.body["type"] == "MalformedMessage"


def test_frames_are_encoded_once_unless_the_question_needs_the_general_path() -> None:
    # The host encodes a deliberation's frames as it builds them (no walk of what it built),
    # checking only the question; a question the fast encoder must not take (a byte string,
    # which may belong in shared memory) leaves the frames to the general path, as before.
    for question, vouched in (("best transport?", True), ({"text": "q", "data": b"xy"}, False)):
        host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
        members = {name: joined(host, name, pipe=at, older=name == "bob") for at, name in enumerate(["ann", "bob"], 1)}
        dkey = host.rounds.open_deliberation(question, deliberation_id=5, now=0.0, rounds=2)
        key, (survey,), fitted = host.rounds.open_deliberation_round(dkey, 0.0)
        assert isinstance(survey.body, Encoded) is vouched and sent(survey.body) == fitted.prompt.to_wire()
        for name in members:
            host.rounds.reply(key, wire(D.POSITION, name, {"stance": "NATS", "round": 1}), 0.1)
        host.rounds.close_deliberation_round(key, 0.2)
        result, frames = host.rounds.close_deliberation(dkey, 1.0)
        assert [isinstance(frame.body, Encoded) for frame in frames] == [vouched, vouched]
        assert [sent(frame.body) for frame in frames] == [P.decision_body(5, question, result.decision),
                                                          D.result_body(result)]  # fmt: skip
