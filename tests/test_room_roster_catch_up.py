"""Over real NNG sockets, between processes: a member that lost a roster update catches up.

No periodic roster any more: the member's heartbeats name the roster version it holds, and
the host sends the roster again when that version is behind (docs/rooms.md 3.5)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from conftest import Peers, read_line

import consensus


async def next_line(proc: subprocess.Popen[str], prefix: str) -> str:
    while not (line := await read_line(proc)).startswith(prefix):
        pass
    return line


@pytest.mark.parametrize("older", [False, True], ids=["versioned", "older-member"])
async def test_a_member_that_lost_the_roster_naming_a_newcomer_gets_it_again(
    room_address: Callable[[str], str], peers: Peers, older: bool
) -> None:
    """ann loses the roster that lists bob; it gets it again on request (its heartbeats name
    the version it holds) or, as a member older than that field, from the periodic roster."""
    address = room_address("ipc")
    # Beats of 0.2 s keep the periodic roster quick; 50 missed (10 s) before a member is
    # dropped: a child starved for 0.6 s on a busy machine would otherwise expire, rejoin
    # and get bob in its welcome, which is not the healing this test is about.
    async with consensus.host(address, heartbeat=0.2, missed_heartbeats=50) as room:
        options = ["--drop-roster-with", "bob", "--members-events"] + ["--no-roster-version"] * older
        ann = peers.agent(address, "ann", *options)
        assert await next_line(ann, "joined") == "joined"
        await room.wait_for_members(1)
        bob = peers.agent(address, "bob")
        assert await read_line(bob) == "joined"
        assert (await next_line(ann, "dropped roster ")).startswith("dropped roster ")
        while await next_line(ann, "members ") != 'members ["ann","bob"]':
            pass  # (the welcome's roster first: ann alone)
        stats = room.statistics()
        if older:
            assert stats.rosters_resent == stats.roster_requests == 0  # the periodic roster healed it
        else:
            assert stats.rosters_resent >= 1 and stats.roster_requests >= stats.rosters_resent
        assert stats.members == 2 and stats.expired == 0
