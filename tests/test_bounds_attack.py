"""Bounded cost per frame against real processes: an attacker (``tests/bounds_attacker.py``,
raw pynng) sends the frames that froze a host and floods its joins; the host refuses them,
counts them, keeps its memory and answers polls meanwhile.

The figures (event-loop stalls, poll times, RSS growth) are printed: run with ``-s`` to
see them. Only generous bounds are asserted, so that a busy 2-core machine cannot fail
them; the reasons and the counters are asserted exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import trio
from conftest import Peers, read_line

import consensus
from consensus.endpoints import endpoints

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def reasons(room: consensus.Room) -> dict[str, int]:
    return dict(room._mesh.statistics().malformed_reasons)


class Stalls:
    """The event loop's longest stall: a ticker that should wake every 5 ms."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            start = trio.current_time()
            await trio.sleep(0.005)
            self.worst = max(self.worst, trio.current_time() - start - 0.005)


@pytest.mark.deadline(120)
async def test_attack_frames_are_refused_and_cost_nothing(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room, trio.open_nursery() as nursery:
        ann = peers.agent(address, "ann")
        assert await read_line(ann) == "joined"
        await room.wait_for_members(1)
        baseline = await room.poll("before?", timeout=10)
        stalls = Stalls()
        nursery.start_soon(stalls.run)
        before = rss()
        attacker = peers.start("frames", endpoints(address).mesh, "8", script="bounds_attacker.py")
        polls = []
        while reasons(room).get("items", 0) < 16 or reasons(room).get("key", 0) < 8:
            result = await room.poll("still there?", timeout=10)
            assert result.answers == {"ann": {"name": "ann", "question": "still there?"}}
            polls.append(result.elapsed)
            await trio.sleep(0.05)  # a poll every 50 ms: the room's normal business, not a flood of ours
        grown = rss() - before
        assert await read_line(attacker) == "sent 24"
        nursery.cancel_scope.cancel()
    assert reasons(room) == {"items": 16, "key": 8}
    assert room._mesh.statistics().malformed == 24
    print(
        f"\n24 attack frames: RSS grew {grown / 1e6:.1f} MB; worst loop stall {stalls.worst * 1e3:.1f} ms; "
        f"polls {baseline.elapsed * 1e3:.0f} ms before, {max(polls) * 1e3:.0f} ms at worst during ({len(polls)})"
    )
    assert grown < 50e6
    assert stalls.worst < 2.0  # was 11 s for one frame; generous for a busy machine


@pytest.mark.deadline(120)
async def test_join_flood_over_one_connection_is_refused(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        ann = peers.agent(address, "ann")
        assert await read_line(ann) == "joined"
        await room.wait_for_members(1)
        roster = room._protocol.roster
        attacker = peers.start("joins", endpoints(address).control, "2000", script="bounds_attacker.py")
        assert await read_line(attacker) == "sent 2000"
        while roster.refused_flood < 1000:  # bus0 may drop a few frames past its queue
            assert len(room.members) <= 1 + roster.admission.limit
            await trio.sleep(0.01)
        assert len(room.members) <= 1 + roster.admission.limit
        result = await room.poll("still there?", timeout=3)
        assert result.answers["ann"] == {"name": "ann", "question": "still there?"}
        print(
            f"\njoin flood: {roster.refused_flood} refused, {len(room.members)} members, "
            f"a poll took {result.elapsed * 1e3:.0f} ms"
        )
