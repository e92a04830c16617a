"""Members of ``consensus.aio`` and ``consensus.blocking`` read polls as fields and answer
from the reply's shape, as trio's own path does (docs/asyncio.md §4.6, §4.7).

A trio host here polls two members of one front in child processes, one whose surveys its
front reads (the loop, the survey reader thread) and one whose surveys trio reads
(``--trio``, the path that built an envelope per survey and a frame per reply on the lent
readers before): both answer every value alike, the lent one without handing anything to
trio, and both count what they received and sent alike, to the byte (the reply written from
its shape is the frame the common writer makes).
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

# Scalars of the shape's common form, and values that are not (the common writer, or trio).
VALUES: list[Any] = ["", "short", "é" * 40, "x" * 255, "x" * 256, b"", b"\x00\xff" * 100, b"b" * 300, 0, -1,
                     23, 24, 2**31, 2**32, -(2**40), 2**63, 2**64 + 1, 1.5, -0.0, float("inf"), True, False, None,
                     [1, "a"], {"k": b"v"}, b"z" * 300_000]  # fmt: skip
# Questions of the poll shape's common form (the agents answer {"q": question, "by": name, ...}).
SCALARS: list[Any] = ["hi", "é" * 40, b"raw", 7, -(2**40), 2.5, True, None]


async def stats(proc: subprocess.Popen[str]) -> dict[str, Any]:
    tell(proc, "stats")
    got: dict[str, Any] = json.loads(await read_line(proc))
    return got


@pytest.mark.parametrize("agent", ["loop_survey_agent.py", "thread_survey_agent.py"])
async def test_lent_members_answer_and_count_like_trio_read_members(
    peers: Peers, room_address: Callable[[str], str], agent: str
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        lent = peers.start(address, "lent", script=agent)
        trio_read = peers.start(address, "trio", "--trio", script=agent)  # same name length: same frame sizes
        assert [await read_line(lent), await read_line(trio_read)] == ["ready", "ready"]
        await room.wait_for_members(2)
        for value in VALUES:
            result = await room.poll({"echo": value}, timeout=10)
            assert result.answers == {"lent": value, "trio": value}, value
        before = await stats(lent), await stats(trio_read)
        for i in range(10):  # a map in the hole: the host's common writer, the members' common reader
            assert (await room.poll({"echo": i}, timeout=5)).answers == {"lent": i, "trio": i}
        for question in SCALARS:  # written from the host's poll shape, read from the members' expected one
            answers = (await room.poll(question, timeout=5)).answers
            read = {name: (answer["q"], answer["by"]) for name, answer in answers.items()}
            assert read == {"lent": (question, "lent"), "trio": (question, "trio")}, question
        books, twin = await stats(lent), await stats(trio_read)
        polls = len(VALUES) + 10 + len(SCALARS)
        assert books["lent"] is True and twin["lent"] is False
        assert books["trio"] == 0 and books["here"] == polls  # every poll answered by the lent reader
        assert books["expected"] == twin["expected"] == 1  # the host's polls are read from their shape
        assert books["received"] == books["sent"] == twin["received"] == twin["sent"] == polls
        assert books["bytes_sent"] == twin["bytes_sent"]  # the same frames, to the byte
        assert books["bytes_sent"] - before[0]["bytes_sent"] == twin["bytes_sent"] - before[1]["bytes_sent"] > 0
        for counter in ("polls_answered", "handler_errors", "replies_lost", "malformed"):
            assert books["member"][counter] == twin["member"][counter], counter
        assert books["member"]["polls_answered"] == polls
        for proc in (lent, trio_read):
            tell(proc, "quit")
            assert await read_line(proc) == "left"
            assert await trio.to_thread.run_sync(proc.wait, 20) == 0
