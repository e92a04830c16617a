"""Whole deliberations through HostProtocol and MemberProtocols, in memory, with hypothesis
choosing the order of the replies, drops, duplicates, replays of an earlier round and
forged or wrong-kind frames; the result must equal a bare Deliberator fed only the
replies that count."""

from __future__ import annotations

from typing import Any

from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.decide.deliberation import Deliberator
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import DecisionReceived, DeliberationReceived, Handle, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol

NAMES = ["ann", "bob", "cy", "dee"]
STANCES = ["NATS", "Redis", "nats "]  # "nats " is NATS under the default key


def joined(host: HostProtocol, name: str, pipe: int, *, older: bool = False) -> MemberProtocol:
    """A member in the room; ``older``: its join does not say it reads the decision from the result."""
    member = MemberProtocol(name=name, token=pipe, host_mesh=ENDS.mesh, on_poll=False, on_vote=False,
                            on_deliberate=True)  # fmt: skip
    member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
    frame = member.join_frame()
    body = {key: value for key, value in frame.body.items() if not (older and key == "decided")}
    for out in host.receive_control(wire(frame.kind, name, body), pipe, 0.0):
        if isinstance(out, Send) and out.kind == P.WELCOME:
            member.receive_control(wire(out.kind, "host", out.body), 0.0)
    return member


event = st.one_of(
    st.tuples(st.just("reply"), st.integers(0, 3)),
    st.tuples(st.just("duplicate"), st.integers(0, 3)),
    st.tuples(st.just("replay"), st.integers(0, 3)),  # the member's frame of the previous round
    st.tuples(st.just("forged"), st.integers(0, 3)),  # from someone not asked
    st.tuples(st.just("wrong kind"), st.integers(0, 3)),  # an answer to a deliberate
)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 4),
    rounds=st.integers(1, 3),
    anonymous=st.booleans(),
    stances=st.lists(st.lists(st.sampled_from(STANCES), min_size=4, max_size=4), min_size=3, max_size=3),
    events=st.lists(st.lists(event, max_size=12), min_size=3, max_size=3),
    older=st.sets(st.sampled_from(NAMES)),
)
def test_a_deliberation_over_the_wire_equals_the_bare_state_machine(
    count: int, rounds: int, anonymous: bool, stances: list[list[str]], events: list[list[tuple[str, int]]],
    older: set[str],
) -> None:  # fmt: skip
    names = NAMES[:count]
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    members = {name: joined(host, name, at, older=name in older) for at, name in enumerate(names, 1)}
    reference = Deliberator("q", names, rounds=rounds, anonymous=anonymous)
    dkey = host.rounds.open_deliberation("q", deliberation_id=5, now=0.0, rounds=rounds, anonymous=anonymous)
    previous: dict[str, Any] = {}
    number = 0
    while not host.rounds.deliberation_done(dkey):
        now = float(number)
        key, (survey,), _ = host.rounds.open_deliberation_round(dkey, now)
        reference.open_round()
        frames: dict[str, Any] = {}
        for at, (name, member) in enumerate(members.items()):
            (handle,) = member.receive_survey(at, wire(survey.kind, "host", survey.body), now)
            assert isinstance(handle, Handle)
            frames[name] = member.reply(at, (True, stances[number][at]))
            member.sent(at)
        counted: set[str] = set()
        for what, at in events[number]:
            name = names[at % count]
            frame = frames[name]
            if what in ("reply", "duplicate") and (what == "reply" or name in counted):
                host.rounds.reply(key, wire(frame.kind, name, frame.body), now + 0.1)
                if name not in counted:
                    counted.add(name)
                    reference.answer(name, stances[number][names.index(name)])
            elif what == "replay" and name in previous:
                host.rounds.reply(key, wire(previous[name].kind, name, previous[name].body), now + 0.1)
            elif what == "forged":
                host.rounds.reply(key, wire(frame.kind, "eve", frame.body), now + 0.1)
            elif what == "wrong kind":
                host.rounds.reply(key, wire(P.ANSWER, name, P.answer_body("x")), now + 0.1)
        assert all(f.kind == D.POSITION for f in frames.values())
        got = host.rounds.close_deliberation_round(key, now + 0.5)
        host.rounds.replies_done(key)
        expected = reference.close_round(elapsed=0.5)
        assert dict(got.stances) == dict(expected.stances) and got.missing == expected.missing
        assert {n: p.stance for n, p in got.positions.items()} == {n: p.stance for n, p in expected.positions.items()}
        previous = frames
        number += 1
    result, frames_out = host.rounds.close_deliberation(dkey, float(number))
    want = reference.result(elapsed=float(number))
    assert result.stopped_by == want.stopped_by and len(result.rounds) == len(want.rounds)
    assert result.outcome == want.outcome and result.agreement == want.agreement
    # The decision (if any), then the whole deliberation; one frame standing for both when
    # every member said it reads the decision from the result.
    two = result.decision is not None and bool(older & set(names))
    assert [f.kind for f in frames_out] == (["decision", "deliberation"] if two else ["deliberation"])
    for member in members.values():
        heard = [out for frame in frames_out for out in member.receive_control(wire(frame.kind, "host", frame.body),
                                                                               float(number))]  # fmt: skip
        decided = [] if result.decision is None else [DecisionReceived(result.decision)]
        assert heard == [*decided, DeliberationReceived(result)]
    assert host.rounds.held == 0
