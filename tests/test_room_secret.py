"""Rooms and hotlines with a secret, between real processes (the pure parts: test_trust.py).

Agents take the secret from ``NNGC_SECRET`` (``--secret-env``), as a service would, so it
never appears on a command line.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable

import pytest
import trio
from conftest import Peers, read_line, tell

import consensus
from consensus.trust.room import PENDING, PublicKeys, join_kid

TRANSPORTS = ["ipc", "tcp"]
SECRET = "a room secret for the tests"


@pytest.fixture(autouse=True)
def secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNGC_SECRET", SECRET)


async def next_line(proc, prefix: str) -> str:  # type: ignore[no-untyped-def]
    while not (line := await read_line(proc)).startswith(prefix):
        pass
    return line


async def start_agents(peers: Peers, address: str, names: list[str], *options: str) -> list:  # type: ignore[type-arg]
    procs = [peers.agent(address, name, "--secret-env", *options) for name in names]
    for proc in procs:
        assert await read_line(proc) == "joined"
    return procs


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_room_with_a_secret_polls_votes_and_broadcasts(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address, secret=SECRET) as room:
        names = ["ann", "bob", "cy"]
        ann, bob, cy = await start_agents(peers, address, names, "--choice", '"yes"')
        assert await room.wait_for_members(3) == tuple(names)
        result = await room.poll("ready?", timeout=20)
        assert result.answers.keys() == set(names) and not result.missing
        decision = await room.vote("ship it", options=["yes", "no"], timeout=20)
        assert decision.outcome == "yes" and set(decision.ballots) == set(names)
        for agent in (ann, bob, cy):
            tell(agent, "mesh")
            assert await next_line(agent, "mesh") == "mesh ok"
        tell(ann, 'say "signed hello"')
        for agent in (bob, cy):
            assert await next_line(agent, "message ") == 'message ann "signed hello"'
        cy.kill()
        result = await room.poll("still there?", timeout=20)
        assert result.answers.keys() == {"ann", "bob"} and (result.missing | result.left) == {"cy"}
        stats = room.statistics()
        assert stats.unauthenticated == 0 and stats.impersonations == 0


@pytest.mark.parametrize("host_secret", [SECRET, "another secret", None])
async def test_a_member_without_the_rooms_secret_is_told_and_the_host_counts_it(
    host_secret: str | None, room_address: Callable[[str], str], peers: Peers
) -> None:
    """Wrong secret, or the member has one and the host none: the member hears why within
    its join timeout (AuthenticationError), never a silent hang; the member without a
    secret at a room with one likewise."""
    address = room_address("tcp")
    async with consensus.host(address, secret=host_secret) as room:
        options = ("--join-timeout", "8")
        agent = peers.agent(address, "eve", *options) if host_secret == SECRET else \
            peers.agent(address, "eve", "--secret-env", *options)  # fmt: skip
        line = await read_line(agent)
        assert line.startswith("unauthenticated ")
        assert "secret" in line
        assert room.members == ()
        if host_secret is not None:  # the wrong member's hellos, or its plain joins, were refused
            assert room.statistics().unauthenticated > 0


async def test_a_restarted_host_with_a_secret_takes_its_members_back(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    """The new host has new keys: members learn them from its first beat, say hello again,
    and rejoin under new sessions; its polls reach them all."""
    address = room_address("tcp")
    names = ["ann", "bob"]
    host = peers.start(address, "--heartbeat", "0.5", "--secret-env", script="room_host.py")
    assert await read_line(host) == "up"
    agents = await start_agents(peers, address, names, "--host-events", "--host-timeout", "3")
    for _ in range(2):
        tell(host, "members 2")
        assert await next_line(host, "members ") == "members " + json.dumps(names, separators=(",", ":"))
        tell(host, "poll")
        _, answers, missing = (await next_line(host, "polled ")).split(" ", 2)
        assert sorted(json.loads(answers)) == names and json.loads(missing) == []
        host.kill()
        host.wait()
        for agent in agents:
            assert await next_line(agent, "host ") == "host lost"
        host = peers.start(address, "--heartbeat", "0.5", "--secret-env", script="room_host.py")
        assert await read_line(host) == "up"
        for agent in agents:
            assert await next_line(agent, "host ") == "host back"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_hotline_with_a_secret_between_processes(
    transport: str, address: Callable[[str], str], peers: Peers
) -> None:
    where = address(transport)
    listener = peers.start(where, "--listen", "--name", "lis", "--secret-env", script="hotline_agent.py")
    async with consensus.hotline(dial=where, secret=SECRET) as line:
        assert await line.ask({"hi": 1}, timeout=20) == {"echo": {"hi": 1}, "by": "lis"}
        chunks = [chunk async for chunk in line.ask_stream({"stream": 3}, timeout=20)]
        assert [c["chunk"] for c in chunks] == [0, 1, 2]
        assert line._link.pair.statistics().unauthenticated == 0
    tell(listener, "quit")
    stranger_at = address(transport)
    peers.start(stranger_at, "--listen", "--name", "lis2", "--secret-env", script="hotline_agent.py")
    async with consensus.hotline(dial=stranger_at, secret="not the secret") as line:
        with trio.fail_after(60), pytest.raises(consensus.AuthenticationError, match="secret"):
            while True:  # a Timeout while the listener's process is still starting: ask again
                with contextlib.suppress(consensus.Timeout):
                    await line.ask("let me in", timeout=2)


async def test_lines_between_members_with_a_secret(room_address: Callable[[str], str]) -> None:
    address = room_address("tcp")
    async with consensus.host(address, secret=SECRET) as room, \
            consensus.join(address, name="ann", on_ask=lambda v: ("ann", v), secret=SECRET) as ann, \
            consensus.join(address, name="bob", on_ask=lambda v: ("bob", v), secret=SECRET) as bob:  # fmt: skip
        await room.wait_for_members(2)
        with trio.fail_after(20):  # each has the other's keys once the mesh is whole
            await ann.wait_for_mesh()
            await bob.wait_for_mesh()
        line = await ann.hotline("bob", timeout=20)
        assert await line.ask(1, timeout=10) == ["bob", 1]
        back = await bob.hotline("ann", timeout=20)
        assert await back.ask(2, timeout=10) == ["ann", 2]
        assert ann.statistics().unauthenticated == bob.statistics().unauthenticated == 0


async def test_the_host_counts_the_hellos_it_forgot(room_address: Callable[[str], str]) -> None:
    """``room.statistics().hellos_dropped`` is the host keys' count (the bound itself: test_trust.py)."""
    async with consensus.host(room_address("ipc"), secret=SECRET) as room:
        keys = room._protocol.keys
        assert keys is not None and room.statistics().hellos_dropped == 0
        for _ in range(PENDING + 3):
            stranger = PublicKeys(secrets.token_bytes(32), secrets.token_bytes(32))
            assert keys.hello(join_kid(stranger.kx), stranger)
        assert room.statistics().hellos_dropped == 3
        assert room.statistics().sessions_dropped == 0
