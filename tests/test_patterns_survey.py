"""The pattern layer over real NNG sockets, surveys: concurrent surveys kept apart, replies
in batches, across processes, deadlines, late replies, plain NNG peers, a malformed reply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing
from _patterns_cases import CROSS_PROCESS
from conftest import Peers, read_line

import patterns


# ---------------------------------------------------------------------------- survey
async def test_survey_inproc_concurrent_surveys_do_not_mix(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r") as resp,
    ):
        await boss.wait_for_peers(1)

        async def answer_all() -> None:
            async for survey in resp:
                await survey.reply(survey.body * 10)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_all)
            first = await boss.survey(1, timeout=5)
            second = await boss.survey(2, timeout=5)
            assert boss.statistics().surveys_open == 2
            a = await first.__anext__()
            b = await second.__anext__()
            assert (a.body, b.body) == (10, 20)
            assert a.re == first.id and b.re == second.id
            await first.aclose()
            await second.aclose()
            assert boss.statistics().surveys_open == 0
            nursery.cancel_scope.cancel()


async def test_survey_replies_taken_in_batches_and_a_cancelled_wait_keeps_the_survey(
    address: Callable[[str], str],
) -> None:
    addr = address("inproc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r1") as r1,
        patterns.Respondent(dial=addr, name="r2") as r2,
    ):
        await boss.wait_for_peers(2)
        replies = await boss.survey("q", timeout=5)
        assert replies.take() == []
        with trio.move_on_after(0.05) as scope:  # nobody answered yet: the wait is cancelled
            await replies.wait()
        assert scope.cancelled_caught and not replies.done
        for resp in (r1, r2):
            survey = await resp.receive()
            await survey.reply(resp.name)
        got: list[str] = []
        with trio.fail_after(5):
            while len(got) < 2:
                await replies.wait()
                got += [reply.body for reply in replies.take()]
        assert sorted(got) == ["r1", "r2"]
        replies.close()
        assert replies.done and replies.take() == [] and boss.statistics().surveys_open == 0
        await replies.wait()  # a finished survey: returns at once


@pytest.mark.parametrize("transport", CROSS_PROCESS)
async def test_survey_across_processes(transport: str, address: Callable[[str], str], peers: Peers) -> None:
    async with patterns.Surveyor(listen=address(transport), name="boss") as boss:
        names = ["ann", "bob", "cy"]
        children = [peers.start("respondent", boss.addresses[0], name) for name in names]
        for child in children:
            assert await read_line(child) == "ready"
        await boss.wait_for_peers(3)
        start = trio.current_time()
        async with await boss.survey({"q": "ready?"}, timeout=10) as replies:
            got = {}
            async for reply in replies:
                got[reply.sender] = reply.body
                if len(got) == 3:
                    break
        assert trio.current_time() - start < 5, "stopping early must not wait for the deadline"
        assert got == {n: {"name": n, "echo": {"q": "ready?"}} for n in names}


async def test_survey_deadline_is_honoured(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Surveyor(listen=addr) as boss, patterns.Respondent(dial=addr) as silent:
        await boss.wait_for_peers(1)
        start = trio.current_time()
        replies = await boss.survey("anyone?", timeout=0.3)
        assert await replies.collect() == []
        elapsed = trio.current_time() - start
        assert 0.3 <= elapsed < 3, elapsed
        assert replies.done and boss.statistics().surveys_open == 0
        survey = await silent.receive()  # it arrived; nobody answered in time
        assert survey.body == "anyone?" and survey.deadline is not None
        # Every public deadline is on trio's clock; the wire's wall-clock 'dl' is converted once.
        assert abs(survey.deadline - replies.deadline) < 0.1, (survey.deadline, replies.deadline)
        assert survey.deadline < trio.current_time() and survey.envelope.deadline is not None
        assert abs(survey.envelope.deadline - (time.time() - trio.current_time() + survey.deadline)) < 0.1
        survey.decline()


async def test_late_reply_is_not_delivered(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Surveyor(listen=addr) as boss, patterns.Respondent(dial=addr) as resp:
        await boss.wait_for_peers(1)
        replies = await boss.survey("q1", timeout=0.1)
        assert await replies.collect() == []
        survey = await resp.receive()
        await survey.reply("too late")
        fresh = await boss.survey("q2", timeout=5)
        await (await resp.receive()).reply("on time")
        reply = await fresh.__anext__()
        assert reply.body == "on time"
        assert boss.statistics().stray == 1  # the late reply: dropped, and counted
        await fresh.aclose()
        with pytest.raises(patterns.Closed, match="already answered"):
            await survey.reply("twice")


async def test_surveyor_and_respondent_talk_to_plain_nng_peers(
    address: Callable[[str], str], peers: Peers
) -> None:
    """Our surveyor and respondent are raw NNG sockets; the wire stays NNG's survey
    protocol, so cooked peers (here plain pynng in another process) work with both."""
    addr = address("ipc")
    async with patterns.Surveyor(listen=addr, name="boss") as boss:
        child = peers.start("raw-respondent", addr)
        assert await read_line(child) == "ready"
        await boss.wait_for_peers(1)
        async with await boss.survey("ping", timeout=10) as replies:
            reply = await replies.__anext__()
        assert (reply.sender, reply.body) == ("foreign", {"echo": "ping", "to": "boss"})
    addr = address("ipc")
    surveyor = peers.start("raw-surveyor", addr)
    assert await read_line(surveyor) == "ready"
    async with patterns.Respondent(dial=addr, name="us") as resp:
        await resp.wait_for_peers(1)
        assert surveyor.stdin is not None
        surveyor.stdin.write("go\n")
        surveyor.stdin.flush()
        survey = await resp.receive()
        assert (survey.sender, survey.body) == ("foreign", "who?")
        await survey.reply({"hello": "foreign"})
        assert json.loads(await read_line(surveyor)) == ["us", 7, {"hello": "foreign"}]
        assert await read_line(surveyor) == "done"


async def test_a_malformed_reply_is_counted_and_the_next_survey_still_answered(
    address: Callable[[str], str], peers: Peers
) -> None:
    addr = address("ipc")
    async with patterns.Surveyor(listen=addr, name="boss") as boss:
        child = peers.start("raw-respondent", addr, "ff00ff")
        assert await read_line(child) == "ready"
        await boss.wait_for_peers(1)
        first = await boss.survey("one", timeout=3)
        assert await first.collect() == []
        assert boss.statistics().malformed == 1
        async with await boss.survey("two", timeout=10) as replies:
            reply = await replies.__anext__()
        assert reply.body == {"echo": "two", "to": "boss"}


async def test_a_reply_routed_by_another_surveys_reader_wakes_its_own(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Surveyor(listen=addr, name="s") as boss, patterns.Respondent(dial=addr, name="r") as resp:
        await boss.wait_for_peers(1)
        first = await boss.survey("one", timeout=10)  # nobody answers: its reader still reads
        (await resp.receive()).decline()
        second = await boss.survey("two", timeout=10)
        incoming = await resp.receive()
        woke = trio.Event()

        async def read_second() -> None:  # parks on the surveyor's descriptor
            await second.wait()
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_second)
            await trio.testing.wait_all_tasks_blocked()
            await incoming.reply("answer")
            # Block (no schedule point: trio does not look) until NNG's threads queue the reply.
            assert boss._readable.poll(5000), "the reply never reached the surveyor"
            assert first.take() == []  # the first survey's reader routes the reply to the second
            with trio.move_on_after(1):
                await woke.wait()
            nursery.cancel_scope.cancel()
        assert woke.is_set(), "the second survey's reader slept on with its reply queued"
