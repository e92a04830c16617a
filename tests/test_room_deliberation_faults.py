"""Deliberations among agent processes over ipc and tcp, with members that crash, stall,
answer garbage or join mid-way; and anonymous prompts as they travel on the wire."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import trio
from conftest import Peers, read_line, tell

import consensus
from consensus.decide.roundtable import Deliberation
from consensus.endpoints import endpoints
from patterns import decode

TRANSPORTS = pytest.mark.parametrize("transport", ["ipc", "tcp"])


async def start(peers: Peers, address: str, agents: dict[str, list[str]]) -> dict[str, subprocess.Popen[str]]:
    procs = {name: peers.agent(address, name, *options) for name, options in agents.items()}
    for proc in procs.values():
        assert await read_line(proc) == "joined"
    return procs


@TRANSPORTS
@pytest.mark.deadline(90)
async def test_crashes_stalls_and_garbage_are_named_in_their_round(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address, late_window=0.5) as room:
        await start(peers, address, {
            "ann": ["--stance", "NATS"], "bob": ["--stance", "NATS"],
            "crash": ["--stance", "Redis", "--crash-round", "2"],
            "stall": ["--stance", "Redis", "--stall-round", "2"],
            "junk": ["--stance", "NATS", "--garbage", "wire"],
            "kindy": ["--stance", "NATS", "--garbage", "kind"],
            "hand": ["--stance", "NATS", "--garbage", "handler"],
        })  # fmt: skip
        await room.wait_for_members(7)
        result = await room.deliberate("best transport?", rounds=3, timeout=4)
        malformed = room.statistics().malformed
    first, second, third = result.rounds
    assert len(result.rounds) == 3 and result.stopped_by == "rounds"
    for number, record in enumerate(result.rounds, 1):  # the sound members are never hurt
        assert {"ann", "bob"} <= record.positions.keys(), number
        # A wire position that is no position fails its sender (the host's check) ...
        assert record.errors["junk"].type == "InvalidPosition", number
        # ... as does a handler's (the member's own check) ...
        assert record.errors["hand"].type == "InvalidPosition", number
        # ... and a reply of the wrong kind is malformed: its sender stays silent.
        assert "kindy" in record.missing and "kindy" not in record.errors, number
    assert malformed >= 3
    assert first.positions.keys() == {"ann", "bob", "crash", "stall"}
    assert "crash" in second.missing and "crash" in second.left and "crash" not in third.expected
    # The stalled member answers nothing in time (its Timeout error may just make it).
    assert "stall" in second.missing or second.errors["stall"].type == "Timeout"
    assert "stall" in third.positions and "stall" in third.expected
    assert result.final["stall"].round == 3 and result.final["crash"].round == 1
    assert str(result.agreement) == "2 of 6" and result.outcome is None  # 2 NATS of 6 asked


@TRANSPORTS
async def test_a_member_joining_mid_way_takes_part_from_the_next_round(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    results: list[Deliberation] = []
    async with consensus.host(address) as room:
        procs = await start(peers, address, {"ann": ["--stance", "NATS", "--hold-round", "1"],
                                             "bob": ["--stance", "Redis", "--hold-round", "1"]})  # fmt: skip
        await room.wait_for_members(2)

        async def run() -> None:
            results.append(await room.deliberate("best transport?", rounds=3, timeout=20))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            for proc in procs.values():  # round 1 is under way, held by both
                assert await read_line(proc) == "deliberate 1 []"
            cy = peers.agent(address, "cy", "--stance", "Redis", "--persuadable", "NATS")
            assert await read_line(cy) == "joined"
            await room.wait_for_members(3)
            for proc in procs.values():
                tell(proc, "release")
        assert json.loads((await read_line(cy)).split(" ", 2)[2]) == ["ann", "bob"]  # asked in round 2
    (result,) = results
    first, second, third = result.rounds
    assert first.expected == {"ann", "bob"} and "cy" not in first.missing
    assert second.joined == {"cy"} and second.positions.keys() == {"ann", "bob", "cy"}
    assert "cy" in third.positions and not third.joined
    assert result.final["cy"].position.stance == "NATS" and not result.final["cy"].changed
    assert second.positions["cy"].persuaded_by == ("ann",) and dict(result.influence) == {"ann": ("cy",)}


@TRANSPORTS
async def test_anonymous_prompts_carry_no_names_on_the_wire(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    names = ["alice-q7", "bruno-x3", "carla-z9"]
    async with consensus.host(address) as room:
        tap = peers.start("raw-tap", endpoints(address).survey)  # receives every survey as a member does
        assert await read_line(tap) == "ready"
        await start(peers, address, {
            "alice-q7": ["--stance", "NATS", "--reason", "fits agents"],
            "bruno-x3": ["--stance", "Redis", "--reason", "everywhere"],
            "carla-z9": ["--stance", "Kafka", "--reason", "durable", "--persuadable", "NATS"],
        })  # fmt: skip
        await room.wait_for_members(3)
        await room._surveyor.wait_for_peers(4)  # the tap too
        anonymous = await room.deliberate("best transport?", rounds=2, timeout=20, anonymous=True)
        named = await room.deliberate("best transport?", rounds=2, timeout=20)
        frames: list[bytes] = []
        while len(frames) < 4:
            kind, raw = (await read_line(tap)).split(" ")
            assert kind == "frame"
            frames.append(bytes.fromhex(raw))
    assert all(not r.errors and not r.missing for r in anonymous.rounds + named.rounds)
    envelopes = [decode(frame) for frame in frames]
    assert [(e.kind, e.body["round"], e.body["anonymous"]) for e in envelopes] == [
        ("deliberate", 1, True), ("deliberate", 2, True), ("deliberate", 1, False), ("deliberate", 2, False)
    ]  # fmt: skip
    for frame, envelope in zip(frames[:2], envelopes[:2], strict=True):  # not a byte of any name
        assert not any(name.encode() in frame for name in names), envelope.body
    assert sorted(entry["label"] for entry in envelopes[1].body["positions"]) == ["P1", "P2", "P3"]
    # The same prompt, named: the names are there (the tap does see what members see).
    assert sorted(entry["label"] for entry in envelopes[3].body["positions"]) == names
    assert anonymous.final["carla-z9"].changed and anonymous.final["carla-z9"].position.persuaded_by == (
        "alice-q7",
    )


async def test_members_hear_the_finished_deliberation(room_address: Callable[[str], str]) -> None:
    address = room_address("tcp")

    def on_deliberate(question: Any, number: int, others: Any, options: Any) -> Any:  # plain: in a thread
        return consensus.Position("NATS", answer="subjects and queue groups", confidence=0.7)

    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_deliberate=on_deliberate) as ann,
        consensus.join(address, name="bob", on_poll=lambda question: "nats") as bob,
    ):
        await room.wait_for_members(2)
        result = await room.deliberate("best transport?", rounds=2, timeout=10)
        with trio.fail_after(10):
            while ann.last_deliberation is None or bob.last_deliberation is None:
                await trio.sleep(0.01)  # the frames come on the control bus after the result
    assert ann.last_deliberation == result == bob.last_deliberation
    # both said they read the decision from the result: that one frame brought the decision too
    assert ann.last_decision == result.decision == bob.last_decision
    assert str(result.agreement) == "2 of 2" and result.outcome in ("NATS", "nats")  # the first to arrive
