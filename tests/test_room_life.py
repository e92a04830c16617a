"""A room's life cycle over real processes: a host that comes late, dies, restarts or closes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import trio
from conftest import Peers, read_line, tell

import consensus


async def next_line(proc: subprocess.Popen[str], prefix: str) -> str:
    """The next line of ``proc`` starting with ``prefix`` (other lines may come in between)."""
    while not (line := await read_line(proc)).startswith(prefix):
        pass
    return line


async def test_room_close_ends_every_member_with_room_closed_within_a_second(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("tcp")
    async with consensus.host(address) as room:
        agents = [peers.agent(address, name) for name in ("ann", "bob", "cy")]
        for agent in agents:
            assert await read_line(agent) == "joined"
        await room.wait_for_members(3)
        start = trio.current_time()
        await room.close()
        for agent in agents:
            assert await next_line(agent, "closed") == "closed"
        assert trio.current_time() - start < 1.0
        assert agents[0].wait(timeout=5) == 0


async def test_leaving_the_hosts_block_closes_the_room_for_members(
    room_address: Callable[[str], str],
) -> None:
    address = room_address("ipc")
    ended: list[float] = []

    async def member() -> None:
        try:
            async with consensus.join(address, name="ann", join_timeout=None):
                await trio.sleep_forever()
        except consensus.RoomClosed:
            ended.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(member)  # joins before the host is up: waits for it
        async with consensus.host(address) as room:
            await room.wait_for_members(1)
            left_at = trio.current_time()
    assert ended and ended[0] - left_at < 1.0


async def test_a_join_without_timeout_waits_for_a_host_that_comes_later(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("tcp")
    agent = peers.agent(address, "ann", "--join-timeout", "none", "--log")
    assert "waiting for the room host" in await next_line(agent, "log ")  # one line while it waits
    async with consensus.host(address) as room:
        assert await next_line(agent, "joined") == "joined"
        assert await room.wait_for_members(1) == ("ann",)


async def test_a_member_notices_a_killed_host_and_is_polled_by_its_successor(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    """The host is killed and restarted under its members, five times; every time the first
    poll of the new host reaches every member (a member joins only once the host's polls can
    reach it, so a host never counts a member its survey would miss). Heartbeats of 0.5 s:
    the host drops a member silent for three of them; at 0.2 s, beside two busy loops, one
    poll found a member neither answering nor missing, so not in the room at the poll's
    start: most likely dropped (0.6 s of silence) and re-admitted after the check."""
    address = room_address("tcp")
    names = ["ann", "bob", "cy"]
    host = peers.start(address, "--heartbeat", "0.5", script="room_host.py")
    assert await read_line(host) == "up"
    agents = [peers.agent(address, name, "--host-events", "--host-timeout", "3") for name in names]
    for agent in agents:
        assert await read_line(agent) == "joined"
    for _ in range(5):
        tell(host, "members 3")
        assert await next_line(host, "members ") == "members " + json.dumps(names, separators=(",", ":"))
        tell(host, "poll")
        _, answers, missing = (await next_line(host, "polled ")).split(" ", 2)
        assert sorted(json.loads(answers)) == names and json.loads(missing) == []
        host.kill()
        host.wait()
        for agent in agents:
            assert await next_line(agent, "host ") == "host lost"
        host = peers.start(address, "--heartbeat", "0.5", script="room_host.py")
        assert await read_line(host) == "up"
        for agent in agents:
            assert await next_line(agent, "host ") == "host back"


async def test_on_host_lost_exit_ends_the_member_when_its_host_dies(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    host = peers.start(address, "--heartbeat", "0.2", script="room_host.py")
    assert await read_line(host) == "up"
    agent = peers.agent(address, "ann", "--on-host-lost", "exit", "--host-timeout", "1")
    assert await read_line(agent) == "joined"
    host.kill()
    assert await next_line(agent, "closed") == "closed"
