"""An ``aio.hotline`` read on the caller's loop (``consensus/hotline/foreign.py``).

The loop that opened the line reads it: its asks and its coroutine ``on_ask`` never cross
into the trio thread; everything else (values, pings, hellos, streams) is handed to trio in
order. Against trio children (``tests/hotline_agent.py``, which echoes every value it
receives) and, where both ends must be asyncio, two lines on one loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _bridge import Lines, run, spy_thread_sends
from conftest import Peers, tell

import consensus
from consensus import aio
from consensus.hotline.foreign import BACKLOG, DRAIN, lent

pytestmark = pytest.mark.timeout(120)


def _child(peers: Peers, where: str, *options: str) -> Any:
    return peers.start(where, "--listen", "--name", "far", *options, script="hotline_agent.py")


def test_values_and_pings_go_to_trio_in_order_while_asks_come_back_on_the_loop(
        peers: Peers, address: Callable[[str], str]) -> None:  # fmt: skip
    where = address("ipc")
    child = _child(peers, where, "--heartbeat", "0.2")

    async def main() -> tuple[list[Any], list[Any], Any, bool]:
        async with aio.hotline(dial=where, name="near", heartbeat=0.2) as line:
            assert lent(line._target) is not None  # read on this loop
            await line.wait_connected()
            assert await Lines(child).next() == "ready"

            async def send() -> None:
                for i in range(300):
                    await line.send({"n": i})

            async def receive() -> list[Any]:
                return [await line.receive() for _ in range(300)]

            async def ask() -> list[Any]:
                return [await line.ask(i, timeout=10) for i in range(200)]

            _, values, answers = await asyncio.gather(send(), receive(), ask())
            await asyncio.sleep(1.0)  # five heartbeats with nobody asking: the pings are answered in trio
            still = line.connected and await line.ask("still there?", timeout=10) == {"echo": "still there?",
                                                                                     "by": "far"}  # fmt: skip
            stats = line.statistics()
        tell(child, "quit")
        return values, answers, stats, still

    values, answers, stats, still = run(main())
    assert values == [{"n": i} for i in range(300)]  # every value, in order
    assert answers == [{"echo": i, "by": "far"} for i in range(200)]
    assert still and stats.silent_disconnects == 0 and stats.connections == 1
    assert stats.asks_open == 0 and stats.asks_answered == 201 and stats.stale_replies == 0
    assert stats.sent >= 501 and stats.received >= 501


def test_cancelled_and_timed_out_asks_leave_the_line_usable(
    peers: Peers, address: Callable[[str], str]
) -> None:
    where = address("ipc")
    child = _child(peers, where)

    async def main() -> tuple[Any, Any]:
        async with aio.hotline(dial=where, name="near") as line:
            await line.wait_connected()
            assert await Lines(child).next() == "ready"
            with pytest.raises(consensus.Timeout, match="no reply within 0.2 s"):
                await line.ask({"sleep": 0.6}, timeout=0.2)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await line.ask({"sleep": 0.6}, timeout=10)
            task = asyncio.create_task(line.ask({"sleep": 0.6}, timeout=10))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = await line.ask("after", timeout=10)  # the line goes on, this answer is not mistaken
            with pytest.raises(ValueError, match="finite number of seconds"):
                await line.ask("x", timeout=float("inf"))
            await asyncio.sleep(0.8)  # the three late answers come, and are stale
            stats = line.statistics()
        tell(child, "quit")
        return after, stats

    after, stats = run(main())
    assert after == {"echo": "after", "by": "far"}
    assert stats.asks_open == 0 and stats.asks_expired == 1 and stats.asks_answered == 1
    assert stats.stale_replies == 3


def test_a_peer_that_dies_mid_ask_fails_it_with_peer_lost(
    peers: Peers, address: Callable[[str], str]
) -> None:
    where = address("ipc")
    child = _child(peers, where)

    async def main() -> tuple[Any, Any]:
        async with aio.hotline(dial=where, name="near") as line:
            await line.wait_connected()
            assert await Lines(child).next() == "ready"
            pending = asyncio.create_task(line.ask({"sleep": 30}, timeout=30))
            await asyncio.sleep(0.1)
            child.kill()
            with pytest.raises(consensus.PeerLost):
                async with asyncio.timeout(10):  # the connection's end, not the ask's timeout
                    await pending
            await line.wait_disconnected()
            stats = line.statistics()
            with pytest.raises(consensus.Timeout):  # no peer: the ask waits for one, in trio
                await line.ask("anyone?", timeout=0.2)
        return stats, line

    stats, _ = run(main())
    assert stats.asks_failed == 1 and stats.asks_open == 0


def test_asks_with_earlier_deadlines_than_those_waiting_time_out_on_time(address: Callable[[str], str]) -> None:
    """The loop's asks share one timer: an ask whose deadline is earlier than those of the
    asks already waiting still times out at its own (not theirs), those due together time
    out together, and the others are still answered."""
    where = address("ipc")

    async def on_ask(value: Any) -> Any:
        await asyncio.sleep(value)
        return value

    async def main() -> tuple[list[Any], Any]:
        async with (
            aio.hotline(listen=where, name="server", on_ask=on_ask) as server,
            aio.hotline(dial=where, name="client") as client,
        ):
            await client.wait_connected()
            foreign = lent(client._target)
            assert foreign is not None

            async def asked(value: float, timeout: float) -> asyncio.Task[Any]:
                """An ask that waits on the loop (pair1 refuses a send while NNG still holds
                the frame before: that ask takes trio's path, so it is asked again)."""
                for _ in range(200):
                    before = len(foreign._deadlines)
                    task = asyncio.create_task(client.ask(value, timeout=timeout))
                    await asyncio.sleep(0)
                    if len(foreign._deadlines) > before:
                        return task
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await asyncio.sleep(0.005)
                raise AssertionError("no ask left from the loop")

            waiting = await asked(60, 60)  # its deadline armed the timer
            tasks = [await asked(3, 0.3), await asked(3, 0.3), await asked(3, 0.4), await asked(0, 10),
                     await asked(0.5, 10)]  # fmt: skip
            async with asyncio.timeout(20):  # (were the timer left at 60 s, this would end the test)
                results = await asyncio.gather(*tasks, return_exceptions=True)
            outcomes = [type(r).__name__ if isinstance(r, Exception) else r for r in results]
            assert not waiting.done()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            stats = client.statistics()
            await server.wait_connected()
        return outcomes, stats

    outcomes, stats = run(main())
    assert outcomes == ["Timeout", "Timeout", "Timeout", 0, 0.5]
    assert stats.asks_open == 0 and stats.asks_expired >= 3 and stats.asks_answered >= 2


def test_several_lines_on_one_loop_ask_both_ways(address: Callable[[str], str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    senders: set[str] = set()

    def spy(send: Callable[[], int | None]) -> int | None:
        senders.add(threading.current_thread().name)
        return send()

    spy_thread_sends(monkeypatch, spy)
    wheres = [address("ipc"), address("tcp")]

    def answering(name: str) -> Callable[[Any], Any]:
        async def on_ask(value: Any) -> Any:
            await asyncio.sleep(0)
            return [name, value]

        return on_ask

    async def main() -> tuple[list[Any], set[int], str]:
        async with (
            aio.hotline(listen=wheres[0], name="a", on_ask=answering("a")) as a,
            aio.hotline(dial=wheres[0], name="b", on_ask=answering("b")) as b,
            aio.hotline(listen=wheres[1], name="c", on_ask=answering("c")) as c,
            aio.hotline(dial=wheres[1], name="d", on_ask=answering("d")) as d,
        ):
            lines = [a, b, c, d]
            for line in lines:
                await line.wait_connected()
            answers = await asyncio.gather(*(line.ask(i, timeout=10) for i in range(50) for line in lines))
            fds = {lent(line._target)._fd for line in lines}  # type: ignore[union-attr]
            assert None not in fds
        return answers, fds, threading.current_thread().name  # type: ignore[return-value]

    answers, fds, loop_thread = run(main())
    peer = {0: "b", 1: "a", 2: "d", 3: "c"}
    assert answers == [[peer[j], i] for i in range(50) for j in range(4)]
    assert senders == {loop_thread}  # every ask and answer left from this loop's thread
    assert len(fds) == 4


def test_closing_the_block_stops_watching_the_line(address: Callable[[str], str]) -> None:
    where = address("ipc")

    async def echo(value: Any) -> Any:
        return value

    async def main() -> bool:
        async with aio.hotline(listen=where, on_ask=echo), aio.hotline(dial=where) as line:
            await line.wait_connected()
            assert await line.ask("x", timeout=10) == "x"
            fd = lent(line._target)._fd  # type: ignore[union-attr]
            assert fd is not None
        return asyncio.get_running_loop().remove_reader(fd)  # False: nothing watched it any more

    assert run(main()) is False


def test_a_sealed_line_keeps_the_trio_path(address: Callable[[str], str]) -> None:
    where = address("ipc")

    async def echo(value: Any) -> Any:
        return value

    async def main() -> Any:
        async with aio.hotline(listen=where, on_ask=echo, secret="s3cret"), \
                aio.hotline(dial=where, secret="s3cret") as line:  # fmt: skip
            assert lent(line._target) is None
            await line.wait_connected()
            return await line.ask("sealed", timeout=10)

    assert run(main()) == "sealed"


def test_a_flood_nobody_receives_stops_the_loops_reading_not_memory(address: Callable[[str], str]) -> None:
    where, count = address("ipc"), 3 * BACKLOG + 100

    async def main() -> tuple[list[Any], int, int, int]:
        async with aio.hotline(listen=where, name="a") as a, aio.hotline(dial=where, name="b") as b:
            await a.wait_connected()
            await b.wait_connected()
            foreign, reader = lent(a._target), a._target._reader
            assert foreign is not None

            async def flood() -> None:
                for i in range(count):
                    await b.send({"n": i})

            sender = asyncio.create_task(flood())
            async with asyncio.timeout(30):  # the backlog fills: the loop stops reading the line
                while not foreign._paused:
                    await asyncio.sleep(0.01)
            held = len(reader.handed_over)  # (a deque's length, read from this thread)
            values = [await a.receive() for _ in range(count)]
            await sender
            return values, held, foreign.pauses, a.statistics().reading_paused

    values, held, pauses, counted = run(main())
    assert values == [{"n": i} for i in range(count)]  # slowed, not lost, in order
    assert pauses >= 1 and held <= BACKLOG + DRAIN and counted == pauses

