"""Deliberations among real agent processes (tests/room_agent.py) over ipc."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from conftest import Peers, read_line

import consensus
from consensus.decide.until import unanimous


async def start(peers: Peers, address: str, agents: dict[str, list[str]]) -> dict[str, subprocess.Popen[str]]:
    procs = {name: peers.agent(address, name, *options) for name, options in agents.items()}
    for proc in procs.values():
        assert await read_line(proc) == "joined"
    return procs


async def test_three_rounds_among_four_agents_one_changes_its_mind(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        await start(peers, address, {"ann": ["--stance", "NATS"], "bob": ["--stance", "NATS"],
                                     "cy": ["--stance", "Redis", "--persuadable", "NATS"],
                                     "dee": ["--stance", "Kafka", "--delay", "0.05"]})  # fmt: skip
        await room.wait_for_members(4)
        result = await room.deliberate("best transport?", rounds=3, timeout=20)
    assert len(result.rounds) == 3 and result.stopped_by == "rounds"
    assert result.outcome == "NATS" and str(result.agreement) == "3 of 4"
    assert result.final["cy"].changed and not result.final["ann"].changed
    assert {k: list(v) for k, v in result.influence.items()} == {"ann": ["cy"]}
    assert result.counterpoint is not None and result.counterpoint.stance == "Kafka"
    assert all(not r.missing and not r.errors for r in result.rounds)


async def test_a_member_crashing_mid_round_is_named_missing(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        await start(peers, address, {"ann": ["--stance", "yes"], "bob": ["--stance", "no", "--crash-round", "2"],
                                     "cy": ["--stance", "yes"]})  # fmt: skip
        await room.wait_for_members(3)
        result = await room.deliberate("ship it?", rounds=3, timeout=20)
    first, second, third = result.rounds
    assert not first.missing and "bob" in second.missing and "bob" in second.left
    assert "bob" not in third.expected and str(result.agreement) == "2 of 2"
    assert second.elapsed < 15, "a crashed member must not hold the round to its deadline"


async def test_anonymous_deliberation_shows_members_only_labels(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        procs = await start(peers, address, {"ann": ["--stance", "NATS"], "bob": ["--stance", "NATS"],
                                             "cy": ["--stance", "Redis", "--persuadable", "NATS"]})  # fmt: skip
        await room.wait_for_members(3)
        result = await room.deliberate("best transport?", rounds=4, timeout=20, anonymous=True, until=unanimous)
    assert result.anonymous and result.stopped_by == "unanimous" and len(result.rounds) == 2
    cy = procs["cy"]
    assert await read_line(cy) == "deliberate 1 []"
    number, labels = (await read_line(cy)).split(" ", 2)[1:]
    assert number == "2" and sorted(json.loads(labels)) == ["P1", "P2"]
    assert result.final["cy"].position.persuaded_by[0] in ("ann", "bob")
