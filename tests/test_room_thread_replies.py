"""Plain ``on_poll``/``on_vote`` handlers whose thread sends the reply (``consensus/room/thread_replies.py``).

Against a child process (``tests/room_plain_agent.py``) over ipc and tcp: answers, ballots,
failures, a blocked handler. In one process, where the test must see both ends' books:
exact counters, a handler slower than the deadline (Timeout exactly once, no late
duplicate), the member leaving while a handler runs, a large answer through shared
memory; asyncio handlers (``consensus.aio``) replying from their loop's thread; the pure
ticket in memory.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _bridge import run
from conftest import Peers, read_line, tell

import consensus
from consensus import aio
from consensus.failure import Failure
from consensus.room import protocol as P
from consensus.room.member_protocol import MemberProtocol
from consensus.trust.identity import Identity
from patterns import Envelope, IncomingSurvey

pytestmark = pytest.mark.timeout(90)

Address = Callable[[str], str]


class ReplySpy:
    """Records what each thread-side reply returned (an int: it left from the thread)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.results: list[Any] = []
        original = IncomingSurvey.reply_threadsafe

        def spy(survey: IncomingSurvey, value: Any, **options: Any) -> Any:
            result = original(survey, value, **options)
            self.results.append(result)  # list.append is atomic
            return result

        monkeypatch.setattr(IncomingSurvey, "reply_threadsafe", spy)


async def start_plain_agent(peers: Peers, address: str, name: str) -> subprocess.Popen[str]:
    proc = peers.start(address, name, script="room_plain_agent.py")
    with trio.fail_after(20):
        assert await read_line(proc) == "joined"
    return proc


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_a_plain_child_answers_from_its_threads(
    transport: str, room_address: Address, peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address) as room:
        proc = await start_plain_agent(peers, address, "alice")
        with trio.fail_after(40):
            await room.wait_for_members(1)
            for i in range(30):
                result = await room.poll(i, timeout=5)
                assert result.answers == {"alice": {"echo": i, "by": "alice"}}
            decision = await room.vote("lunch?", options=["yes", "no"], timeout=5)
            assert decision.outcome == "yes"
            failed = await room.poll({"raise": True}, timeout=5)
            assert (
                failed.errors["alice"].type == "RuntimeError"
                and "asked to fail" in failed.errors["alice"].message
            )
            async with trio.open_nursery() as nursery:  # a blocked handler does not stall the next poll
                slow: list[Any] = []

                async def poll_slow() -> None:
                    slow.append((await room.poll({"sleep": 0.5}, timeout=10)).answers)

                nursery.start_soon(poll_slow)
                quick = await room.poll("quick", timeout=5)
                assert quick.answers == {"alice": {"echo": "quick", "by": "alice"}}
            assert slow == [{"alice": {"echo": {"sleep": 0.5}, "by": "alice"}}]
            tell(proc, "quit")
            while not (said := await read_line(proc)).startswith("stats "):
                assert said
            assert json.loads(said.removeprefix("stats ")) == {"polls_answered": 32, "votes_cast": 1,
                                                               "handler_errors": 1}  # fmt: skip
            assert await read_line(proc) == "bye"
        assert room.statistics().late_replies == 0


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_counters_are_exact_as_soon_as_the_answer_is_in(transport: str, room_address: Address,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    spy = ReplySpy(monkeypatch)

    def on_poll(question: int) -> int:
        if question < 0:
            raise ValueError("negative")
        return question * 2

    def on_vote(motion: Any, options: list[Any]) -> Any:
        return options[-1]

    address = room_address(transport)
    async with consensus.host(address) as room, consensus.join(address, name="m", on_poll=on_poll,
                                                                on_vote=on_vote) as member:  # fmt: skip
        with trio.fail_after(30):
            await room.wait_for_members(1)
            for i in range(1, 31):
                assert (await room.poll(i, timeout=5)).answers == {"m": 2 * i}
                stats = member.statistics()
                assert stats.polls_answered == i  # read at once: the thread's books are in
            assert (await room.poll(-1, timeout=5)).errors["m"].type == "ValueError"
            assert (await room.vote("x", options=["a", "b"], timeout=5)).outcome == "b"
            stats = member.statistics()
            assert (stats.polls_answered, stats.handler_errors, stats.votes_cast) == (30, 1, 1)
            survey_socket = member._respondent.statistics()
            assert survey_socket.messages_sent == survey_socket.messages_received == 32
    assert len(spy.results) == 32 and all(isinstance(size, int) for size in spy.results)  # all from threads


async def test_a_handler_slower_than_the_deadline_times_out_exactly_once(room_address: Address) -> None:
    release, finished = threading.Event(), threading.Event()

    def on_poll(question: str) -> str:
        if question == "slow":
            release.wait(10)
            finished.set()
        return question

    address = room_address("ipc")
    async with consensus.host(address) as room, consensus.join(address, name="m", on_poll=on_poll) as member:
        with trio.fail_after(30):
            await room.wait_for_members(1)
            result = await room.poll("slow", timeout=0.5)
            assert result.answers == {} and result.errors["m"].type == "Timeout"
            assert "on_poll" in result.errors["m"].message
            release.set()
            await trio.to_thread.run_sync(finished.wait, 10)
            for question in ("after", "again"):  # the late answer never arrives, not even now
                assert (await room.poll(question, timeout=5)).answers == {"m": question}
            stats = member.statistics()
            assert (stats.polls_answered, stats.handler_errors) == (2, 1)
            assert room.statistics().late_replies == 0
            assert member._respondent.statistics().messages_sent == 3  # the Timeout error and two answers


async def test_the_member_leaving_while_a_handler_runs(room_address: Address) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def on_poll(question: str) -> str:
        started.set()
        release.wait(10)
        finished.set()
        return question

    address = room_address("ipc")
    async with consensus.host(address) as room:
        results: list[Any] = []
        async with trio.open_nursery() as nursery:
            async with consensus.join(address, name="m", on_poll=on_poll) as member:
                with trio.fail_after(20):
                    await room.wait_for_members(1)

                    async def poll() -> None:
                        results.append(await room.poll("q", timeout=5))

                    nursery.start_soon(poll)
                    await trio.to_thread.run_sync(started.wait, 10)
            # ... the member left here, its handler still running
            release.set()
            with trio.fail_after(20):
                await trio.to_thread.run_sync(finished.wait, 10)
        (result,) = results
        assert result.answers == {} and "m" in (result.missing | result.left)
        assert member.statistics().polls_answered == 0
        assert room.statistics().late_replies == 0


async def test_a_large_answer_still_goes_through_shared_memory(room_address: Address,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               no_shared_memory_left: Any) -> None:  # fmt: skip
    spy = ReplySpy(monkeypatch)
    size = 2 << 20

    def on_poll(question: int) -> bytes:
        return bytes([question]) * size

    address = room_address("ipc")
    async with consensus.host(address) as room, consensus.join(address, name="m", on_poll=on_poll) as member:
        with trio.fail_after(30):
            await room.wait_for_members(1)
            result = await room.poll(7, timeout=10)
            assert result.answers == {"m": bytes([7]) * size}
            assert member._respondent.statistics().bytes_sent < 64 << 10  # a reference, not the bytes
            assert member.statistics().polls_answered == 1
            assert spy.results == [None]  # the thread handed it to trio, which placed it


def test_the_ticket_builds_the_reply_the_protocol_would() -> None:
    member = MemberProtocol(name="m", token=1, host_mesh="ipc:///h", on_poll=True, on_vote=True, refs=False)
    member._on_welcome(P.Welcome("m", 1, {"m": ""}, heartbeat=None, refs=True, observers=frozenset()))
    poll = Envelope(kind=P.POLL, sender="host", id=1, body=P.poll_body("q"))
    vote = Envelope(kind=P.VOTE, sender="host", id=2, body=P.vote_body(9, "motion", ("a", "b")))
    member.receive_survey(1, poll, 0.0)
    member.receive_survey(2, vote, 0.0)
    for key, outcome in ((1, (True, "yes")), (2, (True, "b")), (2, (True, "nope")),
                         (1, (False, Failure("ValueError", "x")))):  # fmt: skip
        ticket = member.ticket(key)
        assert ticket is not None
        frame, counter = ticket.reply(outcome)
        assert frame == member.reply(key, outcome)
        assert (
            counter
            == {P.ANSWER: "polls_answered", P.BALLOT: "votes_cast", P.ERROR: "handler_errors"}[frame.kind]
        )
    member.replied(1, "polls_answered")
    member.replied(1, "polls_answered")  # once only: the survey is gone
    member.replied(2, "handler_errors")
    assert (member.counts["polls_answered"], member.counts["handler_errors"]) == (1, 1)


def test_asyncio_handlers_reply_from_their_loops_thread(
    room_address: Address, monkeypatch: pytest.MonkeyPatch
) -> None:
    senders: list[str] = []
    original = IncomingSurvey.reply_threadsafe

    def spy(survey: IncomingSurvey, value: Any, **options: Any) -> Any:
        senders.append(threading.current_thread().name)
        return original(survey, value, **options)

    monkeypatch.setattr(IncomingSurvey, "reply_threadsafe", spy)
    address = room_address("ipc")
    cancelled: list[bool] = []

    async def on_poll(question: Any) -> Any:
        await asyncio.sleep(0)
        if question == "fail":
            raise KeyError("no such thing")
        if question == "stall":
            try:
                await asyncio.Event().wait()  # never set: past the deadline
            except asyncio.CancelledError:
                cancelled.append(True)
                raise
        context = consensus.handler_context()
        return [question, context.kind, context.asker]

    async def on_vote(motion: Any, options: list[Any]) -> Any:
        return options[0]

    async def main() -> tuple[str, Any]:
        async with (
            aio.host(address) as room,
            aio.join(address, name="m", on_poll=on_poll, on_vote=on_vote, handler_timeout=1) as m,
        ):
            await room.wait_for_members(1)
            for i in range(20):
                assert (await room.poll(i, timeout=5)).answers == {"m": [i, "poll", "host"]}
                assert m.statistics().polls_answered == i + 1
            assert (await room.poll("fail", timeout=5)).errors["m"].type == "KeyError"
            # The member's own deadline (handler_timeout) ends the handler well before the
            # poll's: a Timeout answer 50 ms before the host's deadline came late under load.
            stalled = await room.poll("stall", timeout=10)
            assert stalled.errors["m"].type == "Timeout" and stalled.answers == {}
            while not cancelled:  # trio's Timeout cancels the asyncio task, as trio's cancellation did
                await asyncio.sleep(0.01)
            assert (await room.vote("x", options=["a", "b"], timeout=5)).outcome == "a"
            assert (await room.poll("after", timeout=5)).answers == {"m": ["after", "poll", "host"]}
            return threading.current_thread().name, (m.statistics(), room.statistics())

    loop_thread, (stats, room_stats) = run(main())
    assert (stats.polls_answered, stats.votes_cast, stats.handler_errors) == (21, 1, 2)
    assert room_stats.late_replies == 0
    # Every answer, ballot and failure left from the loop's thread, and the Timeout too: the
    # loop reads the surveys and keeps their deadlines (docs/asyncio.md §4.6).
    assert senders == [loop_thread] * 24


async def test_a_ballot_signed_in_the_handlers_thread_verifies(room_address: Address,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    spy = ReplySpy(monkeypatch)
    identity = Identity.generate()
    address = room_address("ipc")
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_vote=lambda motion, options: "yes", identity=identity),
    ):
        with trio.fail_after(20):
            await room.wait_for_members(1)
            decision = await room.vote("ship it", options=["yes", "no"], timeout=5)
    assert decision.outcome == "yes"
    assert decision.verify({"ann": identity.public}).ok
    assert len(spy.results) == 1 and isinstance(spy.results[0], int)  # it left from the thread


async def test_a_plain_handler_returning_a_coroutine_is_awaited_by_trio(room_address: Address) -> None:
    async def later(question: str) -> str:
        await trio.lowlevel.checkpoint()
        return question.upper()

    def on_poll(question: str) -> Any:
        return later(question)  # a plain function that returns an awaitable: trio awaits it

    address = room_address("ipc")
    async with consensus.host(address) as room, consensus.join(address, name="m", on_poll=on_poll) as member:
        with trio.fail_after(20):
            await room.wait_for_members(1)
            for question in ("a", "b"):
                assert (await room.poll(question, timeout=5)).answers == {"m": question.upper()}
            assert member.statistics().polls_answered == 2
