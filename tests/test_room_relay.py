"""Relayed rooms: past ``relay_above`` members, members link to the host only and the host
sends their broadcasts and line offers on (consensus/room/relay.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from _rooms import ENDS, HEARTBEAT, wire

import consensus
from consensus.room import protocol as P
from consensus.room.events import Dial, Send, Undial
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import MemberProtocol


def test_a_member_drops_its_mesh_links_when_the_room_starts_relaying_and_dials_again_after() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT, relay_above=2)
    members = {}
    for i, name in enumerate(["ann", "bob", "cy"]):
        m = MemberProtocol(name=name, token=i + 1, host_mesh=ENDS.mesh, on_poll=True, on_vote=True)
        m.set_mesh(f"ipc:///tmp/room-test.m-{name}")
        members[name] = m
        frame = m.join_frame()
        host.receive_control(wire(frame.kind, name, frame.body), i + 1, 0.0)
    assert host.relaying and host.roster_frame().body["relay"] is True
    cy = members["cy"]
    two = {"ann": "ipc:///tmp/room-test.m-ann", "bob": "ipc:///tmp/room-test.m-bob", "cy": "ipc:///tmp/room-test.m-cy"}
    plain = P.roster_body(two, 1, refs=True)
    out = cy.receive_control(wire(P.ROSTER, "host", plain), 0.0)
    assert sorted(o.address for o in out if isinstance(o, Dial)) == [two["ann"], two["bob"]]
    out = cy.receive_control(wire(P.ROSTER, "host", plain | {"relay": True}), 0.0)
    assert sorted(o.address for o in out if isinstance(o, Undial)) == [two["ann"], two["bob"]]
    assert cy.relay and cy.inline  # relayed broadcasts go inline
    out = cy.receive_control(wire(P.ROSTER, "host", plain), 0.0)
    assert sorted(o.address for o in out if isinstance(o, Dial)) == [two["ann"], two["bob"]]
    relayable = wire(P.SAY, "ann", "hello")
    assert host.relays(relayable) and not host.relays(wire(P.SAY, "stranger", "x"))
    assert not HostProtocol(name="h", endpoints=ENDS, heartbeat=HEARTBEAT, relay_above=None).relaying
    with pytest.raises(ValueError, match="relay_above"):
        HostProtocol(name="h", endpoints=ENDS, heartbeat=HEARTBEAT, relay_above=-1)
    assert not [o for o in host.receive_control(wire(P.LEAVE, "cy", P.hello_body("cy", 3)), 3, 0.1)
                if isinstance(o, Send) and o.body.get("relay")]  # fmt: skip


@pytest.mark.parametrize("secret", [None, "relay secret"])
async def test_a_relayed_room_carries_broadcasts_and_lines_through_the_host(
    secret: str | None, room_address: Callable[[str], str]
) -> None:
    address = room_address("tcp")
    names = ["ann", "bob", "cy", "dee"]
    async with consensus.host(address, relay_above=2, secret=secret) as room, trio.open_nursery() as nursery:
        members: dict[str, consensus.Member] = {}
        done = trio.Event()

        async def run(name: str) -> None:
            async with consensus.join(address, name=name, on_ask=lambda v, n=name: (n, v), secret=secret) as me:
                members[name] = me
                await done.wait()

        for name in names:
            nursery.start_soon(run, name)
        await room.wait_for_members(4)
        with trio.fail_after(30):
            while len(members) < 4:
                await trio.sleep(0.05)
            for m in members.values():  # each reads the rosters on its own: one's news is not another's
                while not (m._protocol.relay and len(m.members) == 4):
                    await m.wait_members_changed()
            for m in members.values():  # the links made before the room relayed close: the host's only
                while len(m._mesh.peers) != 1:
                    await m._mesh.wait_peers_changed()
        await members["ann"].broadcast("relayed hello")
        for name in ("bob", "cy", "dee"):
            with trio.fail_after(10):
                async for sender, value in members[name].messages():
                    assert (sender, value) == ("ann", "relayed hello")
                    break
        line = await members["dee"].hotline("ann", timeout=20)  # offers go through the host too
        assert await line.ask(7, timeout=10) == ["ann", 7]
        stats = room.statistics()
        assert stats.relayed >= 2 and stats.relay_dropped == 0 and stats.unauthenticated == 0
        done.set()


def test_a_large_room_allows_more_silence_before_it_drops_a_member() -> None:
    from consensus.room.roster import LARGE_ROOM, Roster

    roster = Roster(heartbeat=0.5, missed_heartbeats=3, max_members=1024)
    for i in range(LARGE_ROOM):
        roster.join(f"m{i}", i, f"tcp://127.0.0.1:{1000 + i}", i, 0.0)
    assert roster.expiry == 1.5
    for i in range(LARGE_ROOM, 4 * LARGE_ROOM):
        roster.join(f"m{i}", i, f"tcp://127.0.0.1:{1000 + i}", i, 0.0)
    assert roster.expiry == 6.0
    assert roster.expire(5.9) == [] and len(roster.expire(6.1)) == 4 * LARGE_ROOM
