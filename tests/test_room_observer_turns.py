"""A member whose repeated join (same token) turns it into an observer, or back: the roster
changes (docs/rooms.md 3.2), and so do the rounds under way, as for a member leaving or
joining. An observer is never awaited; a new voter is not added to a round already open."""

from __future__ import annotations

from typing import Any

from _rooms import ENDS, HEARTBEAT, wire
from test_room_deliberation import joined

from consensus.decide.poll import Verdict
from consensus.decide.position import Position
from consensus.room import protocol as P
from consensus.room.events import Handle, MembersChanged, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.rounds import ReplyOutcome


def host_with(*names: str, observers: tuple[str, ...] = ()) -> HostProtocol:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    for pipe, name in enumerate(names, 1):
        assert any(isinstance(o, Send) and o.kind == P.WELCOME for o in rejoin(host, name, pipe, name in observers))
    return host


def rejoin(host: HostProtocol, name: str, pipe: int, observer: bool, now: float = 0.0) -> list[Any]:
    """``name``'s join (its token is its pipe's number), first or repeated."""
    body = P.hello_body(name, pipe, f"ipc:///tmp/room-test.m-{name}", observer=observer)
    return host.receive_control(wire(P.JOIN, name, body), pipe, now)


def answer(host: HostProtocol, key: int, name: str, value: Any) -> ReplyOutcome:
    return host.rounds.reply(key, wire(P.ANSWER, name, P.answer_body(value), re=1), 0.5)


def test_a_voter_turning_observer_is_no_longer_awaited_by_the_rounds_under_way() -> None:
    host = host_with("ann", "bob")
    poll, _ = host.rounds.open_poll("ready?", quorum=None, now=0.0)
    vote, _ = host.rounds.open_vote("ship?", options=["yes", "no"], vote_id=7, rule=None, quorum=None,
                                   weights={}, now=0.0)  # fmt: skip
    version = host.roster.version
    out = rejoin(host, "ann", 1, observer=True, now=0.2)
    assert MembersChanged(("bob",)) in out and host.members == ("bob",) and host.observers == ("ann",)
    assert host.roster.version == version + 1 and any(isinstance(o, Send) and o.kind == P.ROSTER for o in out)
    assert not host.rounds.complete(poll)  # bob is still awaited
    answer(host, poll, "bob", "yes")
    assert host.rounds.complete(poll)  # ann is not
    result = host.rounds.close_poll(poll, 1.0)
    assert dict(result.answers) == {"bob": "yes"} and result.left == {"ann"}
    ballot = P.ballot_body("yes", 7)
    host.rounds.reply(vote, wire(P.BALLOT, "bob", ballot, re=2), 0.5)
    assert host.rounds.complete(vote)
    decision, _ = host.rounds.close_vote(vote, 1.0)
    assert decision.left == {"ann"} and set(decision.ballots) == {"bob"}  # as for a voter who left


def test_an_answer_given_before_turning_observer_stays() -> None:
    host = host_with("ann", "bob")
    poll, _ = host.rounds.open_poll("ready?", quorum=None, now=0.0)
    answer(host, poll, "ann", "early")
    rejoin(host, "ann", 1, observer=True, now=0.2)
    answer(host, poll, "bob", "late")
    result = host.rounds.close_poll(poll, 1.0)
    assert dict(result.answers) == {"ann": "early", "bob": "late"} and not result.left


def test_an_observer_turning_voter_is_asked_from_the_next_round_on() -> None:
    host = host_with("ann", "cy", observers=("cy",))
    poll, _ = host.rounds.open_poll("ready?", quorum=None, now=0.0)
    out = rejoin(host, "cy", 2, observer=False, now=0.2)
    assert MembersChanged(("ann", "cy")) in out and host.members == ("ann", "cy") and host.observers == ()
    assert answer(host, poll, "cy", "me too").verdict is Verdict.UNEXPECTED  # not in this round's electorate
    answer(host, poll, "ann", "yes")
    assert host.rounds.complete(poll)
    assert dict(host.rounds.close_poll(poll, 1.0).answers) == {"ann": "yes"}
    later, _ = host.rounds.open_poll("and now?", quorum=None, now=1.0)
    answer(host, later, "ann", "yes")
    assert not host.rounds.complete(later)  # cy is asked now
    answer(host, later, "cy", "yes")
    assert host.rounds.complete(later)


def test_a_repeated_join_that_keeps_the_flag_changes_no_round() -> None:
    host = host_with("ann", "bob")
    poll, _ = host.rounds.open_poll("ready?", quorum=None, now=0.0)
    out = rejoin(host, "ann", 1, observer=False, now=0.2)
    assert not any(isinstance(o, MembersChanged) for o in out)
    answer(host, poll, "bob", "yes")
    assert not host.rounds.complete(poll)  # ann is still awaited


def test_a_deliberation_under_way_asks_an_observer_turned_voter_from_its_next_round() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)  # a member protocol: it answers the prompts
    rejoin(host, "cy", 2, observer=True)
    dkey = host.rounds.open_deliberation("q", deliberation_id=5, now=0.0, rounds=2)
    missing = []
    for number in (1, 2):
        key, (survey,), _ = host.rounds.open_deliberation_round(dkey, float(number))
        if number == 1:
            rejoin(host, "cy", 2, observer=False, now=1.05)  # during the first round
        (handle,) = ann.receive_survey(number, wire(survey.kind, "host", survey.body), float(number))
        assert isinstance(handle, Handle)
        reply = ann.reply(number, (True, Position("NATS")))
        host.rounds.reply(key, wire(reply.kind, "ann", reply.body, re=1), number + 0.1)
        missing.append(set(host.rounds.close_deliberation_round(key, number + 0.2).missing))
        host.rounds.replies_done(key)
    assert missing == [set(), {"cy"}]  # not asked in the round open when it turned; asked in the next
