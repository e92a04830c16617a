"""A lost roster update heals on request, in memory: members' heartbeats name the roster
version they hold, and the host sends the roster again when one is behind (no periodic
resend); a flood of such requests is bounded and counted. No clock: the test passes the time."""

from __future__ import annotations

import pytest
from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.room import protocol as P
from consensus.room.events import Output, Send
from consensus.room.host_protocol import FULL_WELCOME, ROSTER_GRACE_BEATS, HostProtocol
from consensus.room.member_protocol import MemberProtocol, MemberState
from patterns import MalformedMessage

NAMES = ("ann", "bob", "cy", "dee", "eve", "fay")


class Room:
    """A host and its members over a control bus that may lose host frames to chosen members."""

    def __init__(self) -> None:
        self.host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT, first_version=0)
        self.members: dict[str, MemberProtocol] = {}
        self.pipes: dict[str, int] = {}
        self.now = 0.0
        self.deaf: set[str] = set()  # members that lose every host frame for now
        self.rosters = 0  # roster frames the host sent

    def host_out(self, outputs: list[Output]) -> None:
        for out in outputs:
            if not isinstance(out, Send):
                continue
            self.rosters += out.kind == P.ROSTER
            envelope = wire(out.kind, "host", out.body)
            for name, member in list(self.members.items()):
                if name not in self.deaf:
                    member.receive_control(envelope, self.now)

    def to_host(self, name: str, frame: Send) -> None:
        envelope = wire(frame.kind, name, frame.body)
        self.host_out(self.host.receive_control(envelope, self.pipes[name], self.now))

    def join(self, name: str) -> None:
        member = MemberProtocol(name=name, token=len(self.pipes) + 1, host_mesh=ENDS.mesh, on_poll=True,
                                on_vote=True)  # fmt: skip
        member.set_mesh(f"ipc:///tmp/room-test.m-{name}")
        self.members[name], self.pipes[name] = member, len(self.pipes) + 1
        self.to_host(name, member.join_frame())

    def leave(self, name: str) -> None:
        self.to_host(name, self.members.pop(name).leave_frame())

    def beat(self) -> None:
        """One heartbeat interval: every member heartbeats, the host beats."""
        self.now += HEARTBEAT
        for name in list(self.members):
            if name in self.members:
                self.to_host(name, self.members[name].heartbeat_frame())
        self.host_out([self.host.beat_frame()])

    def play(self, steps: list[tuple[str, str, set[str]]]) -> None:
        """Each step's action, with the host's frames lost to its set of members meanwhile;
        then no more losses, and each member still joining repeats its join (as its driver
        does until welcomed)."""
        for action, name, deaf in steps:
            self.deaf = deaf
            if action == "join" and name not in self.members:
                self.join(name)
            elif action == "leave" and name in self.members:
                self.leave(name)
            elif action == "restart":  # a new host: its versions from another start
                self.host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
            elif action == "rejoin" and name in self.members:
                self.to_host(name, self.members[name].join_frame())
            else:
                self.beat()
        self.deaf = set()
        for name in [name for name, m in self.members.items() if m.state is MemberState.JOINING]:
            self.to_host(name, self.members[name].join_frame())

    def in_step(self) -> bool:
        meshes = self.host.roster.meshes()
        return all(m.members == meshes and m.roster_version == self.host.roster.version
                   for m in self.members.values())  # fmt: skip


def test_a_lost_roster_update_is_healed_by_the_next_heartbeats() -> None:
    room = Room()
    room.join("ann")
    room.beat()
    room.deaf = {"ann"}
    room.join("bob")  # ann loses the roster that lists bob
    room.deaf = set()
    assert "bob" not in room.members["ann"].members and room.members["ann"].roster_version == 1
    sent = room.rosters
    for _ in range(ROSTER_GRACE_BEATS):  # in the grace, a heartbeat naming version 1 may have crossed it
        room.beat()
    assert room.rosters == sent
    room.beat()
    assert room.in_step() and room.rosters == sent + 1
    assert room.host.counts["roster_requests"] == 1 and room.host.counts["rosters_resent"] == 1
    for _ in range(10):  # and then nothing more: an idle room sends no roster
        room.beat()
    assert room.rosters == sent + 1 and room.host.periodic_roster() == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "leave", "beat"]), st.sampled_from(NAMES),
                          st.sets(st.sampled_from(NAMES))), max_size=25))  # fmt: skip
def test_every_member_holds_the_hosts_roster_within_grace_plus_two_beats(
    steps: list[tuple[str, str, set[str]]],
) -> None:
    """Joins, leaves and beats, each losing the host's frames to any set of members; once the
    losses stop, within ROSTER_GRACE_BEATS + 2 heartbeats every member holds the host's
    roster, and the host sent at most one roster a grace for the requests."""
    room = Room()
    room.play(steps)
    resent, start = room.host.counts["rosters_resent"], room.now
    for _ in range(ROSTER_GRACE_BEATS + 2):
        room.beat()
    assert room.in_step(), (room.host.roster.meshes(), {n: m.members for n, m in room.members.items()})
    grace = room.host.roster_grace
    assert room.host.counts["rosters_resent"] - resent <= (room.now - start) / grace + 1


def test_a_flood_of_stale_heartbeats_makes_at_most_one_roster_a_grace_and_is_counted() -> None:
    room = Room()
    room.join("ann")
    room.join("bob")
    sent = room.rosters
    stale = P.hello_body("bob", room.members["bob"].token, room.members["bob"].mesh, roster=0)
    seconds, per_second = 20.0, 100
    for _ in range(int(seconds * per_second)):  # bob (or whoever holds its session) asks 100 times a second
        room.now += 1 / per_second
        room.host_out(room.host.receive_control(wire(P.HEARTBEAT, "bob", stale), room.pipes["bob"], room.now))
    grace = room.host.roster_grace
    assert room.host.counts["rosters_resent"] == room.rosters - sent <= seconds / grace + 1
    # every stale heartbeat past the grace after the change counts as a request
    assert room.host.counts["roster_requests"] >= (seconds - grace) * per_second - 1
    assert room.host.counts["malformed"] == 0


def test_older_members_name_no_version_and_get_the_periodic_roster() -> None:
    room = Room()
    room.join("ann")
    assert room.host.periodic_roster() == []
    old = P.hello_body("old", 99, "ipc:///tmp/room-test.m-old")  # no "roster": an older implementation
    room.pipes["old"] = 99
    room.host_out(room.host.receive_control(wire(P.JOIN, "old", old), 99, room.now))
    (frame,) = room.host.periodic_roster()
    assert frame.kind == P.ROSTER and set(frame.body["members"]) == {"ann", "old"}
    room.host_out(room.host.receive_control(wire(P.LEAVE, "old", P.hello_body("old", 99)), 99, room.now))
    assert room.host.periodic_roster() == []


def test_the_versions_on_the_wire() -> None:
    room = Room()
    room.join("ann")
    beat = room.members["ann"].heartbeat_frame()
    assert beat.body["roster"] == room.host.roster.version == 1
    assert P.parse_hello(wire(P.HEARTBEAT, "ann", beat.body), with_mesh=True).roster == 1
    body = P.hello_body("ann", 1, "ipc:///tmp/x")
    assert "roster" not in body and P.parse_hello(wire(P.JOIN, "ann", body), with_mesh=True).roster is None
    for bad in (-1, 2**64, "1", 1.0, True):
        with pytest.raises(MalformedMessage, match="roster"):
            P.parse_hello(wire(P.HEARTBEAT, "ann", body | {"roster": bad}), with_mesh=True)
        with pytest.raises(MalformedMessage, match="version"):
            P.parse_roster(wire(P.ROSTER, "host", {"members": {}, "version": bad}))
    assert P.parse_roster(wire(P.ROSTER, "host", {"members": {}})).version is None  # absent: not held


def test_a_member_holding_the_old_hosts_version_catches_up_after_a_restart() -> None:
    """A member that lost every frame of its rejoin to a restarted host holds the old host's
    version: were the new host's counted from 0 again, it would equal it (ann's 2 of {ann, bob},
    the new host's 2 of {ann, cy}) and ann would never ask. A host's versions start at random."""
    room = Room()
    room.join("ann")
    room.join("bob")
    room.beat()
    assert room.members["ann"].roster_version == 2
    room.host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)  # restarted; bob is gone
    room.members.pop("bob")
    room.deaf = {"ann"}
    room.beat()  # ann's heartbeat joins it again; it loses the welcome and the roster
    room.join("cy")  # lost to ann too (counting from 0, the new host's version would now be 2)
    room.deaf = set()
    assert room.members["ann"].members.keys() == {"ann", "bob"}
    for _ in range(ROSTER_GRACE_BEATS + 2):
        room.beat()
    assert room.in_step(), room.members["ann"].members


def test_a_repeated_join_in_a_large_room_leaves_no_member_alone() -> None:
    """In a large room a welcome names the joiner only; a join repeated after the roster came
    (it crossed the first welcome) is welcomed again: the member must then ask for the roster."""
    room = Room()
    for i in range(FULL_WELCOME + 1):
        room.join(f"m{i:02d}")
    room.join("zz")
    assert room.in_step() and len(room.members["zz"].members) == FULL_WELCOME + 2
    room.to_host("zz", room.members["zz"].join_frame())  # the driver's resend, answered late
    for _ in range(ROSTER_GRACE_BEATS + 2):
        room.beat()
    assert room.in_step(), room.members["zz"].members


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "leave", "beat", "beat", "restart", "rejoin"]),
                          st.sampled_from(NAMES), st.sets(st.sampled_from(NAMES))), max_size=25))  # fmt: skip
def test_every_member_catches_up_across_host_restarts_and_repeated_joins(
    steps: list[tuple[str, str, set[str]]],
) -> None:
    """As above, with the host restarting (its versions from another start, every member
    joining again by its next heartbeat) and joins repeated by members already welcomed."""
    room = Room()
    room.play(steps)
    for _ in range(ROSTER_GRACE_BEATS + 2):
        room.beat()
    assert room.in_step(), (room.host.roster.meshes(), {n: m.members for n, m in room.members.items()})


def test_a_repeated_join_that_changes_the_roster_sends_it() -> None:
    """A join repeated under the same token may change what the roster says of its member (a
    mesh address, no references): the version goes up and the roster goes out, even if the
    joiner loses its welcome (it would not ask then, and the other members would never hear)."""
    room = Room()
    room.join("ann")
    room.join("bob")
    bob = room.members["bob"]
    version, sent = room.host.roster.version, room.rosters
    room.deaf = {"bob"}
    body = P.hello_body("bob", bob.token, "ipc:///tmp/room-test.m-bob2", refs=False, roster=bob.roster_version)
    room.host_out(room.host.receive_control(wire(P.JOIN, "bob", body), room.pipes["bob"], room.now))
    room.deaf = set()
    assert room.host.roster.version == version + 1 and room.rosters == sent + 1
    room.host_out(room.host.receive_control(wire(P.JOIN, "bob", body), room.pipes["bob"], room.now))  # again
    assert room.host.roster.version == version + 1 and room.rosters == sent + 1
    ann = room.members["ann"]
    assert ann.members["bob"] == "ipc:///tmp/room-test.m-bob2" and ann.room_refs is False
