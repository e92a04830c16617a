"""One final frame for a deliberation: a member says in its join that it reads the decision
from the result (``"decided": true``), the roster keeps it per member, and the host sends the
result alone, marked ``decided``, only while every member present said so
(``docs/deliberation.md`` section 7.2)."""

from __future__ import annotations

from typing import Any

import pytest
from _rooms import ENDS, HEARTBEAT, wire

from consensus.decide.deliberation import Deliberator
from consensus.decide.deliberation_wire import deliberation_to_wire
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import DecisionReceived, DeliberationReceived, Ignored, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol
from consensus.room.roster import Roster
from patterns import MalformedMessage


def test_a_hello_says_whether_its_member_reads_the_decision_from_the_result() -> None:
    body = P.hello_body("ann", 1, "ipc:///tmp/x", decided=True)
    assert body["decided"] is True and P.parse_hello(wire(P.JOIN, "ann", body), with_mesh=True).decided
    older = P.hello_body("ann", 1, "ipc:///tmp/x")
    assert "decided" not in older and not P.parse_hello(wire(P.JOIN, "ann", older), with_mesh=True).decided
    assert "decided" not in P.hello_body("ann", 1, decided=True)  # a leave says nothing of it
    for bad in (1, "yes", None):
        with pytest.raises(MalformedMessage, match="'decided'"):
            P.parse_hello(wire(P.JOIN, "ann", body | {"decided": bad}), with_mesh=True)


def test_the_roster_says_decided_only_while_every_member_present_does() -> None:
    roster = Roster(heartbeat=HEARTBEAT)
    assert roster.decided  # nobody to tell
    roster.join("ann", 1, "ipc:///tmp/a", 1, 0.0, decided=True)
    roster.join("bob", 2, "ipc:///tmp/b", 2, 0.0, decided=True)
    assert roster.decided
    roster.join("cy", 3, "ipc:///tmp/c", 3, 0.0, observer=True)  # an observer hears the result too
    assert not roster.decided
    roster.join("cy", 3, "ipc:///tmp/c", 3, 0.1, observer=True, decided=True)  # its join again, saying so
    assert roster.decided
    roster.join("dee", 4, "ipc:///tmp/d", 4, 0.0)
    assert not roster.decided
    roster.heartbeat_from("dee", 4, 0.5)
    assert not roster.decided and roster.get("dee").decided is False  # type: ignore[union-attr]
    roster.leave("dee", 4)
    assert roster.decided


def a_result() -> Any:
    deliberator = Deliberator("best transport?", ["ann", "bob"], rounds=1)
    deliberator.open_round()
    deliberator.answer("ann", {"stance": "NATS", "round": 1})
    deliberator.answer("bob", {"stance": "NATS", "round": 1})
    deliberator.close_round(elapsed=0.1)
    return deliberator.result(elapsed=0.1)


def test_a_result_frame_is_read_marked_or_not_and_nothing_else() -> None:
    result = a_result()
    body = D.result_body(result)
    assert D.parse_result_frame(wire(D.RESULT, "host", body)) == (result, False)
    assert D.parse_result_frame(wire(D.RESULT, "host", body | {"decided": True})) == (result, True)
    assert D.parse_result(wire(D.RESULT, "host", body | {"decided": True})) == result
    for bad in ({"decided": False}, {"decided": 1}, {"other": True}):
        with pytest.raises(MalformedMessage, match="'deliberation' frame"):
            D.parse_result_frame(wire(D.RESULT, "host", body | bad))


def test_a_member_takes_the_decision_from_a_marked_result_only() -> None:
    member = MemberProtocol(name="ann", token=1, host_mesh=ENDS.mesh, on_poll=True, on_vote=False,
                            on_deliberate=True)  # fmt: skip
    result = a_result()
    body = {"deliberation": deliberation_to_wire(result)}
    assert member.receive_control(wire(D.RESULT, "host", body), 0.0) == [DeliberationReceived(result)]
    assert member.counts["decisions"] == 0
    heard = member.receive_control(wire(D.RESULT, "host", body | {"decided": True}), 0.0)
    assert heard == [DecisionReceived(result.decision), DeliberationReceived(result)]
    assert member.counts["decisions"] == 1
    (ignored,) = member.receive_control(wire(D.RESULT, "host", body | {"decided": "yes"}), 0.0)
    assert isinstance(ignored, Ignored) and member.counts["malformed"] == 1


@pytest.mark.parametrize("older", [False, True])
def test_the_host_sends_one_marked_frame_only_when_no_member_present_is_older(older: bool) -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    for pipe, name in enumerate(["ann", "bob"], 1):
        member = MemberProtocol(name=name, token=pipe, host_mesh=ENDS.mesh, on_poll=True, on_vote=False,
                                on_deliberate=True)  # fmt: skip
        member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
        frame = member.join_frame()
        body = {k: v for k, v in frame.body.items() if not (older and name == "bob" and k == "decided")}
        assert any(isinstance(out, Send) and out.kind == P.WELCOME
                   for out in host.receive_control(wire(frame.kind, name, body), pipe, 0.0))  # fmt: skip
    dkey = host.rounds.open_deliberation("best transport?", deliberation_id=9, now=0.0, rounds=1)
    key, _, _ = host.rounds.open_deliberation_round(dkey, 0.0)
    for name in ("ann", "bob"):
        host.rounds.reply(key, wire(D.POSITION, name, {"stance": "NATS", "round": 1}), 0.1)
    host.rounds.close_deliberation_round(key, 0.2)
    result, frames = host.rounds.close_deliberation(dkey, 1.0)
    assert result.decision is not None
    assert [frame.kind for frame in frames] == (["decision", "deliberation"] if older else ["deliberation"])
