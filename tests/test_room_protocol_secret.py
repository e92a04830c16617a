"""Room conversations with a secret, in memory: the host's and the members' protocol
objects talk through the guards the sockets would use (seal after encoding, open and check
before decoding), with a member of the room who tries to speak for another."""

from __future__ import annotations

import dataclasses
from typing import Any

from _rooms import ENDS, HEARTBEAT

from consensus.room import protocol as P
from consensus.room.events import Ignored, Left, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol, MemberState
from consensus.trust import Guard, HostKeys, MemberKeys, Secret
from patterns import Envelope, FirstOpened, Unauthenticated, decode, encode

SECRET = Secret(b"the room's secret")
_ids = iter(range(1, 10**9))


def through(sender: Guard, receiver: Guard, kind: str, name: str, body: Any) -> Envelope:
    """A frame as ``receiver``'s socket hands it on: sealed, opened, decoded, owner checked."""
    data = sender.seal(encode(Envelope(kind=kind, sender=name, id=next(_ids), body=body)), kind)
    opened = receiver.open(data)
    envelope = decode(opened.payload)
    if opened.owner is not None and envelope.sender != opened.owner:
        raise Unauthenticated("impersonation", reason="impersonation", size=len(data))
    if opened.kinds is not None and envelope.kind not in opened.kinds:
        raise Unauthenticated("kind", reason="kind", size=len(data))
    if isinstance(opened, FirstOpened):  # accepted whole: the guard may keep what it learned
        opened.accepted()
    return dataclasses.replace(envelope, session=opened.session)


class Room:
    def __init__(self) -> None:
        self.keys = HostKeys(SECRET)
        self.host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT, keys=self.keys)
        self.members: dict[str, MemberProtocol] = {}

    def to_members(self, outputs: list[Any], now: float = 0.0) -> list[Any]:
        """Deliver the host's control frames to every member (the bus reaches all)."""
        replies: list[Any] = []
        for out in outputs:
            if isinstance(out, Send):
                for name, member in self.members.items():
                    assert member.keys is not None
                    envelope = through(self.keys.control, member.keys.control, out.kind, "host", out.body)
                    replies += [(name, r) for r in member.receive_control(envelope, now) if isinstance(r, Send)]
        return replies

    def to_host(self, name: str, frames: list[Send], pipe: int, now: float = 0.0) -> list[Any]:
        member = self.members[name]
        assert member.keys is not None
        outputs: list[Any] = []
        for frame in frames:
            envelope = through(member.keys.control, self.keys.control, frame.kind, name, frame.body)
            outputs += self.host.receive_control(envelope, pipe, now)
        return outputs

    def join(self, name: str, pipe: int) -> MemberProtocol:
        member = MemberProtocol(name=name, token=0, host_mesh=ENDS.mesh, on_poll=True, on_vote=True,
                                keys=MemberKeys(SECRET, name))  # fmt: skip
        member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
        self.members[name] = member
        pending = [(name, f) for f in member.join_frames()]
        while pending:  # hello -> beat -> hello + join -> welcome ...
            who, frame = pending.pop(0)
            pending += self.to_members(self.to_host(who, [frame], pipe))
        assert member.state is MemberState.JOINED, name
        return member


def test_members_join_a_room_with_a_secret_through_hello_beat_and_join() -> None:
    room = Room()
    ann, bob = room.join("ann", 1), room.join("bob", 2)
    assert room.host.members == ("ann", "bob")
    assert ann.token != bob.token and ann.members.keys() == {"ann", "bob"}
    assert room.host.counts["impersonations"] == 0


def test_a_member_cannot_leave_heartbeat_or_call_for_another() -> None:
    room = Room()
    ann, bob = room.join("ann", 1), room.join("bob", 2)
    assert bob.keys is not None
    for kind, body in [(P.LEAVE, P.hello_body("ann", ann.token)),
                       (P.HEARTBEAT, P.hello_body("ann", ann.token, "ipc:///tmp/evil"))]:  # fmt: skip
        # bob sends under his own session, with ann's name and her token (every member saw it)
        envelope = through(bob.keys.control, room.keys.control, kind, "bob", body)
        (ignored,) = room.host.receive_control(envelope, 2, 1.0)
        assert isinstance(ignored, Ignored) and "names another member" in ignored.reason
        envelope = dataclasses.replace(envelope, sender="ann")  # as if bob's socket lied about its name
        (ignored,) = room.host.receive_control(envelope, 2, 1.0)
        assert isinstance(ignored, Ignored) and "does not own that name" in ignored.reason
    assert room.host.members == ("ann", "bob") and room.host.counts["impersonations"] == 4
    assert room.host.roster.get("ann").mesh == "ipc:///tmp/room-test.m-ann"  # type: ignore[union-attr]


def test_a_new_session_cannot_take_a_live_members_name_nor_its_token() -> None:
    room = Room()
    ann = room.join("ann", 1)
    mallory = MemberProtocol(name="ann", token=0, host_mesh=ENDS.mesh, on_poll=True, on_vote=True,
                             keys=MemberKeys(SECRET, "ann"))  # fmt: skip
    assert mallory.token != ann.token  # a token is the session's id: it cannot be chosen
    mallory.set_mesh("ipc:///tmp/evil")
    room.members["mallory"] = mallory
    assert mallory.keys is not None and mallory.keys.host_keys(room.keys.public)
    hello, join = mallory.join_frames()
    room.to_host("mallory", [hello], 3)
    body = dict(join.body) | {"token": ann.token}  # ann's token, seen by every member
    envelope = through(mallory.keys.control, room.keys.control, P.JOIN, "ann", body)
    (ignored,) = room.host.receive_control(envelope, 3, 0.5)
    assert isinstance(ignored, Ignored) and "does not own that name" in ignored.reason
    envelope = through(mallory.keys.control, room.keys.control, P.JOIN, "ann", join.body)
    outputs = room.host.receive_control(envelope, 3, 0.5)  # with its own token: the name is taken
    assert [o.kind for o in outputs if isinstance(o, Send)] == [P.REFUSE]
    assert room.host.roster.get("ann").mesh == "ipc:///tmp/room-test.m-ann"  # type: ignore[union-attr]


def test_a_member_that_leaves_takes_its_keys_with_it() -> None:
    room = Room()
    ann = room.join("ann", 1)
    outputs = room.to_host("ann", [ann.leave_frame()], 1)
    assert any(isinstance(o, Left) for o in outputs) and room.host.members == ()
    assert "ann" not in room.keys.roster_keys()
    reply = ann.keys.survey.seal(encode(Envelope(kind="answer", sender="ann", id=1, body=1)), "answer")  # type: ignore[union-attr]
    try:
        room.keys.survey.open(reply)
    except Unauthenticated as exc:
        assert exc.reason == "key"
    else:
        raise AssertionError("a departed member's session must be refused")
