"""A member joined through ``consensus.blocking`` whose surveys a reader thread reads (docs/asyncio.md §4.7).

A trio host here, a blocking member in a child process (``tests/thread_survey_agent.py``):
its polls and votes are answered on the reader (handler, reply, deadline), everything else
(before the welcome) goes through trio, the books stay exact, and closing leaves no reader
thread running. In one process: members sharing the reader, a slow handler on the reader
(the watch takes the reading over: the other members and the deadlines go on), leaving
while it runs, and a reader that fails.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _bridge import assert_no_bridge_threads
from conftest import Peers, read_line, tell

import consensus
from consensus import blocking
from consensus.room import survey_reader
from consensus.room.thread_surveys import ThreadSurveys

AGENT = "thread_survey_agent.py"


def member(peers: Peers, address: str, name: str, *options: str) -> subprocess.Popen[str]:
    return peers.start(address, name, *options, script=AGENT)


async def stats(proc: subprocess.Popen[str]) -> dict[str, Any]:
    tell(proc, "stats")
    got: dict[str, Any] = json.loads(await read_line(proc))
    return got


async def stats_once(proc: subprocess.Popen[str], ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The member's books once ``ready`` holds of them: what its handler threads count after
    the handler returned (a late answer) may lag what they printed (under the test's deadline)."""
    while not ready(books := await stats(proc)):
        await trio.sleep(0.01)
    return books


async def ended(proc: subprocess.Popen[str]) -> int:
    return await trio.to_thread.run_sync(proc.wait, 20)


async def left(proc: subprocess.Popen[str]) -> None:
    tell(proc, "quit")
    assert await read_line(proc) == "left"
    assert json.loads(await read_line(proc)) == []  # no survey reader thread outlives the block
    assert await ended(proc) == 0


async def test_polls_votes_errors_timeouts_answered_on_the_reader_with_exact_books(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        proc = member(peers, address, "m", "--handler-timeout", "2")  # (see the slow poll)
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        for i in range(20):
            result = await room.poll(i, timeout=5)
            assert result.answers == {"m": {"q": i, "by": "m", "crew": True}}
        assert (await room.vote("ship", options=["a", "b"], timeout=5)).outcome == "a"
        failed = await room.poll("raise", timeout=5)
        assert failed.errors["m"].type == "ValueError" and failed.answers == {}
        # Its handler's time is up at 2 s (handler_timeout), the poll's at 10: the member's
        # Timeout reaches the host well before the host stops waiting (see the loop's twin).
        slow = await room.poll({"sleep": 3}, timeout=10)
        assert slow.errors["m"].type == "Timeout" and slow.answers == {}
        assert await read_line(proc) == "asleep"
        meanwhile = await room.poll("meanwhile", timeout=5)  # the sleeper does not hold it up
        assert meanwhile.answers["m"]["q"] == "meanwhile"
        assert await read_line(proc) == "woke"  # its late answer is dropped
        big = await room.poll("big", timeout=5)  # too large for the crew's send: trio sends it
        assert big.answers == {"m": b"x" * 300_000}
        books = await stats_once(proc, lambda books: books["late"] >= 1)  # counted after "woke"
        assert books["lent"] is True
        assert (books["here"], books["trio"], books["late"]) == (25, 0, 1)
        counts = books["member"]
        assert (counts["polls_answered"], counts["votes_cast"], counts["handler_errors"]) == (22, 1, 2)
        assert (books["received"], books["sent"]) == (25, 25)
        assert counts["malformed"] == counts["replies_lost"] == 0
        await left(proc)
        assert room.statistics().late_replies == 0


async def test_surveys_before_the_welcome_are_answered_through_trio(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    async with consensus.host(address, missed_heartbeats=40) as room:  # (a stalled member is not dropped)
        proc = member(peers, address, "early", "--drop-first-welcome")
        await room.wait_for_members(1)  # admitted: the member has not taken its welcome yet
        early = await room.poll("early", timeout=10)  # kept by the member's protocol until its welcome
        assert early.answers["early"]["q"] == "early"
        assert await read_line(proc) == "ready"
        later = await room.poll("later", timeout=5)
        assert later.answers["early"] == {"q": "later", "by": "early", "crew": True}
        books = await stats(proc)
        assert books["lent"] is True and books["trio"] >= 1 and books["here"] >= 1
        assert books["here"] + books["trio"] == books["received"] == 2
        assert books["member"]["polls_answered"] == books["sent"] == 2
        await left(proc)


async def test_the_reader_pauses_while_trio_has_a_backlog(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    # As in test_aio_loop_surveys: the host must wait for the early answers, or the books
    # are read while a member that stalled past 3 beats (and was dropped) still answers them.
    async with consensus.host(address, missed_heartbeats=40) as room:
        proc = member(peers, address, "early", "--drop-first-welcome", "--backlog", "0")
        await room.wait_for_members(1)
        early: dict[int, Any] = {}

        async def poll_early(i: int) -> None:
            early[i] = (await room.poll(f"early {i}", timeout=30)).answers

        async with trio.open_nursery() as nursery:  # surveys before the welcome: each hand-over pauses the reader
            for i in range(3):
                nursery.start_soon(poll_early, i)
        assert [early[i]["early"]["q"] for i in range(3)] == ["early 0", "early 1", "early 2"]
        assert await read_line(proc) == "ready"
        for i in range(5):  # the reader resumed: the crew answers again
            assert (await room.poll(i, timeout=5)).answers["early"] == {"q": i, "by": "early", "crew": True}
        books = await stats(proc)
        assert books["pauses"] >= 1 and books["here"] >= 5
        assert books["here"] + books["trio"] == books["received"] == books["sent"] == 8
        await left(proc)


async def test_leaving_while_a_handler_runs(peers: Peers, room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        proc = member(peers, address, "m")
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def poll() -> None:
                results.append(await room.poll({"sleep": 1.0}, timeout=20))

            nursery.start_soon(poll)
            assert await read_line(proc) == "asleep"
            tell(proc, "quit")
            assert await read_line(proc) == "left"  # the block ends while the handler sleeps
            assert json.loads(await read_line(proc)) == []
            assert await ended(proc) == 0  # and the process, once it woke (its answer goes nowhere)
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
    tell(proc, "quit")  # the with block ends with RoomClosed
    assert await read_line(proc) == "closed"
    assert await ended(proc) == 0


async def test_a_sealed_room_keeps_the_trio_path(peers: Peers, room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    secret = "correct horse battery staple, twice over"
    async with consensus.host(address, secret=secret) as room:
        proc = member(peers, address, "m", "--secret", secret)
        assert await read_line(proc) == "ready"
        await room.wait_for_members(1)
        for i in range(3):
            assert (await room.poll(i, timeout=5)).answers["m"]["q"] == i
        assert (await room.vote("ship", options=["a", "b"], timeout=5)).outcome == "a"
        books = await stats(proc)
        assert books["lent"] is False and books["here"] == books["trio"] == 0
        assert (books["member"]["polls_answered"], books["member"]["votes_cast"]) == (3, 1)
        assert (books["received"], books["sent"]) == (4, 4)
        await left(proc)


def reader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "consensus survey reader"]


def survey_threads() -> list[str]:
    """The reader's threads: the reader and its watch (joined by the last member's close)."""
    return [t.name for t in threading.enumerate() if t.name in ("consensus survey reader", "consensus survey watch")]


@pytest.mark.timeout(60)
def test_one_reader_serves_the_process_members_and_ends_with_the_last(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")

    def on_poll(question: Any) -> Any:
        return [question, threading.current_thread().name]

    async def later(question: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return ["awaited", question]

    with blocking.host(address) as room:
        with blocking.join(address, name="a", on_poll=on_poll) as a:
            with blocking.join(address, name="b", on_poll=lambda q: later(q)):  # a plain function's awaitable
                room.wait_for_members(2)
                assert reader_threads() == ["consensus survey reader"]  # one for both
                result = room.poll(1, timeout=5)
                assert result.answers == {"a": [1, "consensus survey reader"], "b": ["awaited", 1]}
                assert a._target._answerer.lent is not None
            room.wait_for_members(1)
            assert room.poll(2, timeout=5).answers == {"a": [2, "consensus survey reader"]}
            assert reader_threads() == ["consensus survey reader"]
        assert survey_threads() == []  # the last member's close joined the reader and its watch
        with blocking.join(address, name="c", on_poll=on_poll):  # a new one for the next member
            room.wait_for_members(1)
            assert room.poll(3, timeout=5).answers == {"c": [3, "consensus survey reader"]}
        assert survey_threads() == []
    assert_no_bridge_threads()


@pytest.mark.timeout(60)
def test_a_reader_that_fails_hands_its_members_back_to_trio(
    room_address: Callable[[str], str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    address = room_address("ipc")
    drain = ThreadSurveys.drain
    failed = threading.Event()

    def broken(self: ThreadSurveys) -> None:  # the first wake-up fails, as a bug of ours would
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in the reader")
        drain(self)

    monkeypatch.setattr(ThreadSurveys, "drain", broken)
    with blocking.host(address) as room:
        with blocking.join(address, name="a", on_poll=lambda q: ["a", q]):
            room.wait_for_members(1)
            result = room.poll(1, timeout=5)  # the reader fails on it: trio reads it instead
            assert failed.is_set() and result.answers == {"a": ["a", 1]}
            assert room.poll(2, timeout=5).answers == {"a": ["a", 2]}
            assert reader_threads() == []
            with blocking.join(address, name="b", on_poll=lambda q: ["b", q]):  # a fresh reader
                room.wait_for_members(2)
                assert reader_threads() == ["consensus survey reader"]
                assert room.poll(3, timeout=5).answers == {"a": ["a", 3], "b": ["b", 3]}
        assert reader_threads() == []
    assert "the survey reader thread failed" in caplog.text
    assert_no_bridge_threads()


class Slow:
    """A plain ``on_poll`` that blocks on ``"slow"`` until released (``started``: it blocks;
    ``returned``: it returned), and answers anything else at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started, self.release, self.returned = threading.Event(), threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None  # the one that ran "slow"

    def __call__(self, question: Any) -> Any:
        if question == "slow":
            self.thread = threading.current_thread()
            self.started.set()
            self.release.wait(30)
            self.returned.set()
        return [self.name, question]


def quick(question: Any) -> Any:
    return ["b", question]


@pytest.mark.timeout(60)
def test_a_slow_handler_on_the_reader_holds_up_neither_other_members_nor_deadlines(
    room_address: Callable[[str], str],
) -> None:
    address = room_address("ipc")
    slow = Slow("a")
    before = survey_reader.reader().takeovers
    with blocking.host(address) as room:
        with blocking.join(address, name="a", on_poll=slow) as a, blocking.join(address, name="b", on_poll=quick):
            room.wait_for_members(2)
            assert room.poll(0, timeout=5).answers == {"a": ["a", 0], "b": ["b", 0]}  # on the reader
            try:
                result = room.poll("slow", timeout=1)  # a's handler blocks the thread that read it
                assert slow.started.is_set() and not slow.returned.is_set()
                assert result.answers == {"b": ["b", "slow"]}  # b answered while a's handler runs
                assert result.errors["a"].type == "Timeout"  # and a's deadline was kept
                again = room.poll(1, timeout=5)  # read and answered while it still runs
                assert again.answers == {"a": ["a", 1], "b": ["b", 1]} and not slow.returned.is_set()
                assert survey_reader.reader().takeovers > before  # the watch took the reading over
                assert reader_threads() == ["consensus survey reader"]  # the blocked one lost the name
                assert slow.thread is not None and slow.thread.name == "consensus survey handler"
            finally:
                slow.release.set()
            slow.thread.join(10)  # it ends once its handler returned (the reading is not its any more)
            assert not slow.thread.is_alive()
            lent = a._target._answerer.lent
            assert lent is not None and lent.late == 1  # a's answer after its Timeout, dropped
            assert room.poll(2, timeout=5).answers == {"a": ["a", 2], "b": ["b", 2]}
        assert reader_threads() == []
    assert_no_bridge_threads()


@pytest.mark.timeout(60)
def test_leaving_while_a_handler_runs_on_the_reader(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    slow = Slow("a")
    results: list[Any] = []
    with blocking.host(address) as room:
        poller = threading.Thread(target=lambda: results.append(room.poll("slow", timeout=10)))
        try:
            with blocking.join(address, name="a", on_poll=slow):
                room.wait_for_members(1)
                poller.start()
                assert slow.started.wait(10)  # the reader runs it
            # the block ended while the handler still ran: the watch took the reading and ended it
            assert not slow.returned.is_set()
            assert reader_threads() == []
        finally:
            slow.release.set()
            poller.join(20)
        assert slow.thread is not None
        slow.thread.join(10)  # the old reader ends once its handler returned
        assert not slow.thread.is_alive() and results[0].answers == {}
        with blocking.join(address, name="c", on_poll=Slow("c")):  # a fresh reader for the next member
            room.wait_for_members(1)
            assert room.poll(3, timeout=5).answers == {"c": ["c", 3]}
        assert reader_threads() == []
    assert_no_bridge_threads()
