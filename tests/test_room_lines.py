"""Hotlines between room members, opened by name (``member.hotline(peer)``), with the
other members as real child processes (``tests/line_agent.py``).

No test sleeps to synchronise: each waits for a line from a child or a roster change,
bounded by the conftest deadline or an explicit ``fail_after``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import trio
from conftest import Peers, read_line, tell

import consensus
from consensus.room import protocol as P
from patterns import Envelope, MalformedMessage

pytestmark = [pytest.mark.timeout(180), pytest.mark.deadline(120)]
# A member silent for 3 beats of 0.5 s is dropped and its lines closed (the roster changed):
# on a busy machine a child process can stall that long. No test here waits for a heartbeat
# to notice anything (a member that quits says so), so the host waits 20 beats (10 s).
MISSED = 20
# Starting a Python child (imports, join) took over 15 s at load 12-20 on 2 cores.
START = 60


async def on_ask(value: Any) -> Any:
    return {"by": "test", "got": value}


async def start_member(peers: Peers, address: str, name: str) -> subprocess.Popen[str]:
    proc = peers.start(address, name, script="line_agent.py")
    with trio.fail_after(START):
        assert await read_line(proc) == "joined"
    return proc


async def wait_for(member: consensus.Member, check: Callable[[tuple[str, ...]], bool]) -> None:
    while not check(member.members):
        await member.wait_members_changed()


async def answer(proc: subprocess.Popen[str]) -> Any:
    """The next answer the child prints (a ``line`` notice may come first: the peer's
    offer can arrive before the child's own request)."""
    while (text := await read_line(proc)).startswith("line "):
        pass
    kind, _, rest = text.partition(" ")
    assert kind == "answer", rest
    return json.loads(rest)


async def opened(proc: subprocess.Popen[str]) -> int:
    tell(proc, "stats")
    kind, _, count = (await read_line(proc)).partition(" ")
    assert kind == "opened"
    return int(count)


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
@pytest.mark.parametrize("mine", ["alpha", "zulu"])  # this side listens (alpha) or dials (zulu)
async def test_a_member_opens_a_hotline_to_another_by_name(
    transport: str, mine: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with (
        consensus.host(address, missed_heartbeats=MISSED) as room,
        consensus.join(address, name=mine, on_ask=on_ask) as me,
    ):
        child = await start_member(peers, address, "mike")
        await wait_for(me, lambda members: "mike" in members)
        with trio.fail_after(15):
            line = await me.hotline("mike")
            assert line.connected
            assert await line.ask([1, 2], timeout=5) == {"by": "mike", "got": [1, 2]}
            assert await read_line(child) == f"line {mine}"  # it appeared on the other side
            tell(child, f"ask {mine} 7")  # the other side asks back over the same line
            assert await answer(child) == {"by": "test", "got": 7}
            assert await me.hotline("mike") is line
            assert await opened(child) == 1 and me.statistics().hotlines_opened == 1
        assert room.statistics().members == 2


async def test_two_members_asking_for_each_other_at_once_share_one_line(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address, missed_heartbeats=MISSED) as room:
        one, two = [await start_member(peers, address, name) for name in ("one", "two")]
        await room.wait_for_members(2)
        await room.wait_for_mesh()
        tell(one, 'ask two "from one"')
        tell(two, 'ask one "from two"')
        with trio.fail_after(15):
            assert await answer(one) == {"by": "two", "got": "from one"}
            assert await answer(two) == {"by": "one", "got": "from two"}
            assert await opened(one) == 1 and await opened(two) == 1


async def test_no_such_member_is_a_line_error(room_address: Callable[[str], str]) -> None:
    address = room_address("inproc")
    async with consensus.host(address, missed_heartbeats=MISSED), consensus.join(address, name="solo") as me:
        with pytest.raises(
            consensus.LineError, match=r"no member named 'ghost' in the room \(members: solo\)"
        ):
            await me.hotline("ghost")
        with pytest.raises(ValueError, match="cannot open a hotline to itself"):
            await me.hotline("solo")


async def test_a_member_that_comes_back_gets_a_new_line(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with (
        consensus.host(address, missed_heartbeats=MISSED),
        consensus.join(address, name="anchor", on_ask=on_ask) as me,
    ):
        first = await start_member(peers, address, "rover")
        await wait_for(me, lambda members: "rover" in members)
        with trio.fail_after(15):
            old = await me.hotline("rover")
            assert await old.ask("before", timeout=5) == {"by": "rover", "got": "before"}
            tell(first, "quit")
            await wait_for(me, lambda members: "rover" not in members)
            with pytest.raises(consensus.LineError, match="no member named 'rover'"):
                await me.hotline("rover", timeout=5)
        assert await trio.to_thread.run_sync(first.wait, START) == 0
        await start_member(peers, address, "rover")  # a new process under the old name
        with trio.fail_after(15):
            await wait_for(me, lambda members: "rover" in members)
            new = await me.hotline("rover")
            assert new is not old
            assert await new.ask("after", timeout=5) == {"by": "rover", "got": "after"}
        assert me.statistics().hotlines_opened == 2


def test_line_messages_are_checked() -> None:
    def parse(body: Any) -> tuple[str, str | None]:
        return P.parse_line(Envelope(P.LINE, "peer", 1, body))

    assert parse({"to": "b"}) == ("b", None)
    assert parse({"to": "b", "address": "tcp://127.0.0.1:5000"}) == ("b", "tcp://127.0.0.1:5000")
    for junk in (None, [], {"to": 1}, {"to": ""}, {"to": "b", "address": "file:///etc/passwd"},
                 {"to": "b", "address": "tcp://127.0.0.1:99999"}, {"to": "b", "address": 5},
                 {"to": "x" * 10_000}):  # fmt: skip
        with pytest.raises(MalformedMessage, match="'line' message from 'peer' is malformed"):
            parse(junk)
