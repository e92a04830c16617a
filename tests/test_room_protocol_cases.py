"""Single room conversations in memory: the host's and a member's protocol objects on
the checks of docs/rooms.md (undialable meshes, early surveys, refs, ballots, welcomes)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from _rooms import ENDS, HEARTBEAT, wire

from consensus.decide.ballot import Ballot
from consensus.decide.poll import Verdict
from consensus.room import protocol as P
from consensus.room.events import Handle, HandlerKind, Ignored, Refused, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol, MemberState
from patterns import Envelope, decode, encode


def joined(host: HostProtocol, name: str, *, refs: bool = True, pipe: int = 1) -> MemberProtocol:
    member = MemberProtocol(name=name, token=pipe, host_mesh=ENDS.mesh, on_poll=True, on_vote=True, refs=refs)
    member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
    frame = member.join_frame()
    for out in host.receive_control(wire(frame.kind, name, frame.body), pipe, 0.0):
        if isinstance(out, Send):
            member.receive_control(wire(out.kind, "host", out.body), 0.0)
    assert member.state is MemberState.JOINED
    return member


def test_a_join_whose_mesh_nobody_can_dial_is_refused_with_the_reason() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    for mesh, why in [("bogus", "not of the form scheme://address"), ("http://h:1", "has the scheme 'http'"),
                      ("tcp://h:0", "has no port 1..65535"), ("ws://h:0/mesh", "has no port 1..65535"),
                      (ENDS.control, "this host's control endpoint")]:  # fmt: skip
        body = P.hello_body("ann", 5, mesh)
        for _ in range(2):  # a repeated attempt is refused again and counted once
            (out,) = host.receive_control(wire(P.JOIN, "ann", body), 1, 0.0)
            assert isinstance(out, Send) and out.kind == P.REFUSE and why in out.body["reason"], out
        assert isinstance(out, Send)
        member = MemberProtocol(name="ann", token=5, host_mesh=ENDS.mesh, on_poll=True, on_vote=True)
        (refused,) = member.receive_control(wire(out.kind, "host", out.body), 0.0)
        assert (
            refused == Refused(out.body["reason"], after_welcome=False)
            and member.state is MemberState.REFUSED
        )
    assert host.counts["refused_joins"] == 1 and host.counts["malformed"] == 0 and host.members == ()


def test_a_survey_before_the_welcome_is_kept_and_answered_after_it() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    member = MemberProtocol(name="ann", token=9, host_mesh=ENDS.mesh, on_poll=True, on_vote=False)
    member.set_mesh("ipc:///tmp/room-test.m-ann")
    frame = member.join_frame()
    welcome = [
        o for o in host.receive_control(wire(frame.kind, "ann", frame.body), 1, 0.0) if isinstance(o, Send)
    ]
    key, (survey,) = host.rounds.open_poll("q", quorum=None, now=0.0)
    assert member.receive_survey(1, wire(survey.kind, "host", survey.body), 0.0) == []  # kept
    assert member.receive_survey(2, wire(P.VOTE, "host", P.vote_body(3, "m", ("a",))), 0.0) == []
    outputs = member.receive_control(wire(welcome[0].kind, "host", welcome[0].body), 0.0)
    handles = [o for o in outputs if isinstance(o, Handle)]
    sends = [o for o in outputs if isinstance(o, Send)]
    assert handles == [Handle(1, HandlerKind.POLL, ("q",))]
    assert [(s.kind, s.body["type"]) for s in sends] == [(P.ERROR, "NotSupported")]  # no on_vote
    reply = member.reply(1, (True, 42))
    outcome = host.rounds.reply(key, wire(reply.kind, "ann", reply.body), 0.1)
    assert outcome.verdict is Verdict.ACCEPTED and outcome.complete
    assert dict(host.rounds.close_poll(key, 0.2).answers) == {"ann": 42}


def test_a_member_without_references_makes_the_room_send_inline() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    assert not host.inline and not ann.inline
    bob = joined(host, "bob", refs=False, pipe=2)
    assert bob.join_frame().body["refs"] is False and bob.inline
    assert host.inline and host.roster_frame().inline and host.roster_frame().body["refs"] is False
    assert all(s.inline for s in host.rounds.open_poll("q", quorum=None, now=0.0)[1])
    ann.receive_control(wire(P.ROSTER, "host", host.roster_frame().body), 0.0)
    assert ann.inline  # its mesh broadcasts reach bob too
    host.receive_control(wire(P.LEAVE, "bob", bob.leave_frame().body), 2, 1.0)
    assert not host.inline and host.roster_frame().body.get("refs", True) is True


def test_member_checks_of_welcome_heartbeat_ballots_and_decisions() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann")
    assert ann.heartbeat == HEARTBEAT
    for beat in (0.001, 10_000, True, "1"):  # out of range or not a number: ignored
        body = P.welcome_body("ann", ann.token, {"ann": ann.mesh}, heartbeat=1.0, mesh=ENDS.mesh, refs=True)
        ann.receive_control(wire(P.WELCOME, "host", body | {"heartbeat": beat}), 0.0)
        assert ann.heartbeat == HEARTBEAT
    other = P.welcome_body("ann", ann.token + 1, {"x": "ipc:///x"}, heartbeat=2.0, mesh=ENDS.mesh, refs=True)
    assert ann.receive_control(wire(P.WELCOME, "host", other), 0.0) == []  # another joiner's
    ann.receive_survey(1, wire(P.VOTE, "host", P.vote_body(3, "m", ("a", "b"))), 0.0)
    bad = ann.reply(1, (True, {"choice": "a", "confidence": 2.0}))
    assert bad.kind == P.ERROR and bad.body["type"] == "InvalidBallot"
    ann.sent(1)
    ann.receive_survey(2, wire(P.VOTE, "host", P.vote_body(3, "m", ("a", "b"))), 0.0)
    good = ann.reply(2, (True, "b"))
    assert good.kind == P.BALLOT and good.body == {"choice": "b", "confidence": 1.0, "vote": 3}
    ann.sent(2)
    assert (ann.counts["handler_errors"], ann.counts["votes_cast"]) == (1, 1)
    (ignored,) = ann.receive_control(wire(P.DECISION, "host", {"decision": {"outcome": 1}}), 0.0)
    assert isinstance(ignored, Ignored) and ann.counts["malformed"] == 1


# ---------------------------------------------------------------------- docs/rooms.md examples
ROOMS_DOC = Path(__file__).resolve().parent.parent / "docs" / "rooms.md"


def rooms_examples() -> list[tuple[str, Envelope, bytes]]:
    text = ROOMS_DOC.read_text(encoding="utf-8")
    found = re.findall(
        r"^`(Envelope\(.*?\))`, (\d+) bytes:\n\n```hex\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL
    )
    names = {"Envelope": Envelope, "True": True, "False": False, "None": None}
    examples = []
    for source, size, hex_text in found:
        data = bytes.fromhex("".join(hex_text.split()))
        assert len(data) == int(size), source
        examples.append((source, eval(source, {"__builtins__": {}}, names), data))
    return examples


def test_every_rooms_doc_example_encodes_as_shown_and_passes_the_protocol_checks() -> None:
    """Each example of docs/rooms.md is what the codec writes, and the side that receives it
    accepts it; the bodies the builders make for the same values are the same."""
    examples = rooms_examples()
    assert len(examples) == 16
    for source, env, data in examples:
        assert encode(env) == data and decode(data) == env, source
        body = env.body
        if env.kind in (P.JOIN, P.HEARTBEAT):
            hello = P.parse_hello(env, with_mesh=True)
            assert P.dialable(hello.mesh) is None and body == P.hello_body(
                hello.name, hello.token, hello.mesh
            )
        elif env.kind == P.LEAVE:
            assert body == P.hello_body(*dataclasses.astuple(P.parse_hello(env))[:2])
        elif env.kind == P.WELCOME:
            w = P.parse_welcome(env)
            built = P.welcome_body(
                w.name, w.token, w.members, heartbeat=body["heartbeat"], mesh=body["mesh"], refs=w.refs
            )
            assert w.heartbeat == 0.5 and body == built
        elif env.kind == P.REFUSE:
            hello, reason = P.parse_refuse(env)
            assert body == P.refuse_body(hello.name, hello.token, reason)
        elif env.kind == P.ROSTER:
            assert body == P.roster_body(P.parse_roster(env).members, body["version"], refs=True)
        elif env.kind == P.DECISION:
            decision = P.parse_decision(env)
            assert body == P.decision_body(body["vote"], body["motion"], decision)
        elif env.kind == P.POLL:
            assert P.parse_survey(env).complete and body == P.poll_body(body["question"])
        elif env.kind == P.VOTE:
            s = P.parse_survey(env)
            assert s.complete and body == P.vote_body(s.vote_id, s.motion, tuple(s.options))
        elif env.kind in (P.ANSWER, P.BALLOT, P.ERROR):
            kind, value = P.parse_reply(env)
            if kind == P.BALLOT:
                ballot = Ballot.from_wire(value)  # the host's check; the builder may add defaults
                assert Ballot.from_wire(P.ballot_body(value, body.get("vote"))) == ballot
            elif kind == P.ERROR:
                assert body == P.error_body(value)
            else:
                assert body == P.answer_body(value)
        elif env.kind == P.LINE:
            to, address = P.parse_line(env)
            assert body == P.line_body(to, address)
        else:
            assert env.kind == P.SAY, source
