"""A member joined through ``consensus.aio`` whose loop reads its surveys (docs/asyncio.md §4.6).

A trio host here, an asyncio member in a child process (``tests/loop_survey_agent.py``):
its polls and votes are answered on its loop (handler, reply, deadline), everything else
(before the welcome) goes through trio, the books stay exact, and closing leaves nothing running.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import trio
from conftest import Peers, read_line, tell

import consensus

AGENT = "loop_survey_agent.py"


def member(peers: Peers, address: str, name: str, *options: str) -> subprocess.Popen[str]:
    return peers.start(address, name, *options, script=AGENT)


async def stats(proc: subprocess.Popen[str]) -> dict[str, Any]:
    tell(proc, "stats")
    got: dict[str, Any] = json.loads(await read_line(proc))
    return got


async def ended(proc: subprocess.Popen[str]) -> int:
    return await trio.to_thread.run_sync(proc.wait, 20)


async def test_polls_votes_errors_timeouts_answered_on_the_loop_with_exact_books(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        proc = member(peers, address, "m", "--handler-timeout", "2")  # (see the slow poll)
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        for i in range(20):
            result = await room.poll(i, timeout=5)
            assert result.answers == {"m": {"q": i, "by": "m", "loop": True}}
        assert (await room.vote("ship", options=["a", "b"], timeout=5)).outcome == "a"
        failed = await room.poll("raise", timeout=5)
        assert failed.errors["m"].type == "ValueError" and failed.answers == {}
        # Its handler's time is up at 2 s (handler_timeout), the poll's at 10: the member's
        # Timeout reaches the host well before the host stops waiting. (With the poll's own
        # deadline the member answers only REPLY_MARGIN (50 ms) before the host's, a race
        # on a busy machine.)
        slow = await room.poll({"sleep": 30}, timeout=10)
        assert slow.errors["m"].type == "Timeout" and slow.answers == {}
        assert [await read_line(proc), await read_line(proc)] == ["asleep", "cancelled"]  # the task was cancelled
        big = await room.poll("big", timeout=5)  # too large for the loop's send: trio sends it
        assert big.answers == {"m": b"x" * 300_000}
        after = await room.poll("after", timeout=5)
        assert after.answers["m"]["loop"] is True
        books = await stats(proc)
        assert books["lent"] is True
        assert (books["here"], books["trio"]) == (25, 0)  # every survey answered on the loop
        counts = books["member"]
        assert (counts["polls_answered"], counts["votes_cast"], counts["handler_errors"]) == (22, 1, 2)
        assert (books["received"], books["sent"]) == (25, 25)
        large = b"y" * 300_000  # a large survey and a large reply
        assert (await room.poll(large, timeout=5)).answers == {"m": {"q": large, "by": "m", "loop": True}}
        books = await stats(proc)
        assert (books["here"], books["trio"]) == (26, 0)
        assert (books["received"], books["sent"], books["member"]["polls_answered"]) == (26, 26, 23)
        assert counts["malformed"] == counts["replies_lost"] == 0
        tell(proc, "quit")
        assert await read_line(proc) == "left"
        assert await ended(proc) == 0
        assert room.statistics().late_replies == 0


async def test_surveys_before_the_welcome_are_answered_through_trio(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    async with consensus.host(address, missed_heartbeats=40) as room:  # (a stalled member is not dropped)
        proc = member(peers, address, "early", "--drop-first-welcome")
        await room.wait_for_members(1)  # admitted: the member has not taken its welcome yet
        early = await room.poll("early", timeout=10)  # kept by the member's protocol until its welcome
        assert early.answers == {"early": {"q": "early", "by": "early", "loop": True}}
        assert await read_line(proc) == "ready"
        later = await room.poll("later", timeout=5)
        assert later.answers["early"]["q"] == "later"
        books = await stats(proc)
        assert books["lent"] is True and books["trio"] >= 1 and books["here"] >= 1
        assert books["here"] + books["trio"] == books["received"] == 2
        assert books["member"]["polls_answered"] == books["sent"] == 2
        tell(proc, "quit")
        assert await ended(proc) == 0


async def test_the_loop_pauses_while_trio_has_a_backlog(peers: Peers, room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    # The host must wait for the early answers, or the books below are read while the member
    # still answers them: a member silent for 3 beats of 0.5 s is dropped, and at load 12-20
    # the child stalled that long (the early polls ended without it at 1.5 s, the books read
    # 8 received, 6 sent). Liveness is not what this test is about: 40 beats (20 s).
    async with consensus.host(address, missed_heartbeats=40) as room:
        proc = member(peers, address, "early", "--drop-first-welcome", "--backlog", "0")
        await room.wait_for_members(1)
        early: dict[int, Any] = {}

        async def poll_early(i: int) -> None:
            early[i] = (await room.poll(f"early {i}", timeout=30)).answers

        async with trio.open_nursery() as nursery:  # surveys before the welcome: each hand-over pauses the loop
            for i in range(3):
                nursery.start_soon(poll_early, i)
        assert early == {i: {"early": {"q": f"early {i}", "by": "early", "loop": True}} for i in range(3)}
        assert await read_line(proc) == "ready"
        for i in range(5):  # the loop reads again and answers itself
            assert (await room.poll(i, timeout=5)).answers["early"] == {"q": i, "by": "early", "loop": True}
        books = await stats(proc)
        assert books["pauses"] >= 1 and books["here"] >= 5
        assert books["here"] + books["trio"] == books["received"] == books["sent"] == 8
        tell(proc, "quit")
        assert await ended(proc) == 0


async def test_leaving_while_a_handler_is_pending_cancels_it(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        proc = member(peers, address, "m")
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def poll() -> None:
                results.append(await room.poll({"sleep": 60}, timeout=20))

            nursery.start_soon(poll)
            assert await read_line(proc) == "asleep"
            tell(proc, "quit")
            assert [await read_line(proc), await read_line(proc)] == ["cancelled", "left"]
            assert await ended(proc) == 0
        assert results[0].answers == {} and "m" in results[0].left | results[0].missing


async def test_the_block_ends_when_the_host_closes_the_room(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        proc = member(peers, address, "m")
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        assert (await room.poll(1, timeout=5)).answers["m"]["q"] == 1
        await room.close()
    assert await read_line(proc) == "closed"
    tell(proc, "quit")  # the agent's reader of stdin, a thread asyncio.run waits for
    assert await ended(proc) == 0


async def test_a_sealed_room_keeps_the_trio_path(peers: Peers, room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    secret = "correct horse battery staple, twice over"
    async with consensus.host(address, secret=secret) as room:
        proc = member(peers, address, "m", "--secret", secret)
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        for i in range(3):
            assert (await room.poll(i, timeout=5)).answers == {"m": {"q": i, "by": "m", "loop": True}}
        assert (await room.vote("ship", options=["a", "b"], timeout=5)).outcome == "a"
        books = await stats(proc)
        assert books["lent"] is False and books["here"] == books["trio"] == 0
        assert (books["member"]["polls_answered"], books["member"]["votes_cast"]) == (3, 1)
        assert (books["received"], books["sent"]) == (4, 4)
        tell(proc, "quit")
        assert await ended(proc) == 0
