"""An ask goes at most once: one that fails while it waits for room is never sent.

An ask queued behind a full line when its peer dies fails ``lost`` at once; its frame must
not then go to the peer that comes next (whose handler would answer an ask nobody waits
for: a stale reply). Against child processes (``tests/hotline_agent.py``, stopped so that
the line fills, then killed and replaced), on plain and sealed lines, from trio and from a
blocking asker's thread and an asyncio loop; and the decision itself (``Link.send_while``) on in-process sockets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _bridge import run, wait_ready
from _hotline import Address
from conftest import Peers, read_line

import consensus
from consensus import aio, blocking
from consensus.errors import PeerLost
from consensus.hotline.foreign import lent
from consensus.hotline.frames import MSG
from consensus.hotline.link import Link
from patterns import Closed, Envelope, Pair

pytestmark = pytest.mark.timeout(120)
SECRET = "the secret of the lost ask test"
BIG = "x" * 60_000  # (text: never placed in shared memory, which a killed peer would leave behind)


async def until(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    with trio.fail_after(seconds):
        while not check():
            await trio.sleep(0.01)
    assert check(), what


async def agent(peers: Peers, addr: str, name: str, sealed: bool) -> subprocess.Popen[str]:
    options = ("--secret-env",) if sealed else ()
    proc = peers.start(addr, "--dial", "--name", name, *options, script="hotline_agent.py")
    with trio.fail_after(20):
        assert await read_line(proc) == "ready"
    return proc


async def lose_an_ask_waiting_for_room(
    peers: Peers, addr: str, sealed: bool, ask: Callable[[consensus.Hotline], Any]
) -> consensus.Hotline:
    """The line to a stopped agent filled with values, ``ask(line)`` queued behind them, the
    agent killed: the ask must fail ``lost``; a new agent comes, and must never see it."""
    secret = consensus.Secret(SECRET.encode()) if sealed else None
    async with consensus.hotline(listen=addr, name="test", secret=secret) as line, trio.open_nursery() as nursery:
        first = await agent(peers, addr, "first", sealed)
        await line.wait_connected()
        assert (await line.ask("hi", timeout=10))["by"] == "first"

        async def drain() -> None:  # the values the agents echo back: never let them stop the line
            async for _ in line:
                pass

        async def fill() -> None:
            while True:
                await line.send(BIG)

        nursery.start_soon(drain)
        os.kill(first.pid, signal.SIGSTOP)
        nursery.start_soon(fill)
        await until(lambda: line._link._senders >= 1, "a value waiting for room")
        outcome: list[BaseException | object] = []
        at: list[float] = []

        async def asker() -> None:
            try:
                outcome.append(await ask(line))
            except Exception as exc:  # noqa: BLE001 - the outcome is checked below
                outcome.append(exc)
            at.append(trio.current_time())

        nursery.start_soon(asker)
        await until(lambda: line._link._senders >= 2 or bool(outcome), "the ask waiting behind it")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        await line.wait_disconnected()
        await agent(peers, addr, "second", sealed)
        await line.wait_connected()
        connected_at = trio.current_time()
        # The second agent answers in order: had the lost ask gone to it, its reply (stale) came first.
        assert (await line.ask("fresh", timeout=10))["by"] == "second"
        await until(lambda: bool(outcome), "the lost ask's outcome")
        nursery.cancel_scope.cancel()
    stats = line.statistics()
    assert stats.stale_replies == 0 and stats.asks_unsent == 1, stats
    assert isinstance(outcome[0], PeerLost), outcome
    assert at[0] < connected_at  # it failed with its connection, not once the next peer came
    return line


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
async def test_an_ask_lost_while_waiting_for_room_is_not_sent_to_the_next_peer(
    address: Address, peers: Peers, monkeypatch: pytest.MonkeyPatch, sealed: bool
) -> None:
    monkeypatch.setenv("NNGC_SECRET", SECRET)
    line = await lose_an_ask_waiting_for_room(peers, address("ipc"), sealed,
                                              lambda line: line.ask("lost?", timeout=30))  # fmt: skip
    stats = line.statistics()
    print(f"\nlost ask not sent: asks_unsent={stats.asks_unsent} stale_replies={stats.stale_replies}")


async def test_a_streamed_ask_lost_while_waiting_for_room_is_not_sent(
    address: Address, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stream(line: consensus.Hotline) -> list[Any]:
        return [chunk async for chunk in line.ask_stream({"stream": 2}, timeout=30)]

    monkeypatch.setenv("NNGC_SECRET", SECRET)
    await lose_an_ask_waiting_for_room(peers, address("ipc"), False, stream)


def test_a_blocking_askers_lost_ask_is_not_sent(address: Address, peers: Peers) -> None:
    """From a plain thread (``consensus.blocking``): an ask that cannot go at once takes
    trio's path, and the same rule holds for it."""
    addr = address("ipc")
    with blocking.hotline(listen=addr, name="test") as line:
        first = peers.start(addr, "--dial", "--name", "first", script="hotline_agent.py")
        wait_ready(first)
        line.wait_connected()
        assert line.ask("hi", timeout=10)["by"] == "first"
        target = line._target
        outcome: list[object] = []

        def drain() -> None:
            try:
                for _ in line:
                    pass
            except Closed:
                pass

        def fill() -> None:
            try:
                while True:
                    line.send(BIG)
            except Closed:
                pass

        def asker() -> None:
            try:
                outcome.append(line.ask("lost?", timeout=30))
            except Exception as exc:  # noqa: BLE001 - the outcome is checked below
                outcome.append(exc)

        def wait_for(check: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 20
            while not check():
                assert time.monotonic() < deadline, what
                time.sleep(0.01)

        threads = [threading.Thread(target=drain, daemon=True)]
        threads[0].start()
        os.kill(first.pid, signal.SIGSTOP)
        threads.append(threading.Thread(target=fill, daemon=True))
        threads[1].start()
        wait_for(lambda: target._link._senders >= 1, "a value waiting for room")
        threads.append(threading.Thread(target=asker, daemon=True))
        threads[2].start()
        wait_for(lambda: target._link._senders >= 2 or bool(outcome), "the ask waiting behind it")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        line.wait_disconnected()
        second = peers.start(addr, "--dial", "--name", "second", script="hotline_agent.py")
        wait_ready(second)
        line.wait_connected()
        assert line.ask("fresh", timeout=10)["by"] == "second"
        threads[2].join(20)
        stats = line.statistics()
        assert stats.stale_replies == 0 and stats.asks_unsent == 1, stats
        assert outcome and isinstance(outcome[0], PeerLost), outcome
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


def test_an_asyncio_askers_lost_ask_is_not_sent(address: Address, peers: Peers) -> None:
    """From an asyncio loop that reads the line itself (``consensus.aio``): an ask that
    cannot go at once with NNG's thread-safe send takes trio's path, and the same rule
    holds for it."""
    addr = address("ipc")

    async def until_loop(check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def main() -> tuple[Any, list[object]]:
        async with aio.hotline(listen=addr, name="test") as line:
            assert lent(line._target) is not None  # (the loop reads the line: its own ask path)
            first = peers.start(addr, "--dial", "--name", "first", script="hotline_agent.py")
            await asyncio.to_thread(wait_ready, first)
            await line.wait_connected()
            assert (await line.ask("hi", timeout=10))["by"] == "first"
            target = line._target
            outcome: list[object] = []

            async def drain() -> None:
                try:
                    async for _ in line:
                        pass
                except Closed:
                    pass

            async def fill() -> None:
                while True:
                    await line.send(BIG)

            async def asker() -> None:
                try:
                    outcome.append(await line.ask("lost?", timeout=30))
                except Exception as exc:  # noqa: BLE001 - the outcome is checked below
                    outcome.append(exc)

            tasks = [asyncio.create_task(drain())]
            os.kill(first.pid, signal.SIGSTOP)
            tasks.append(asyncio.create_task(fill()))
            await until_loop(lambda: target._link._senders >= 1, "a value waiting for room")
            tasks.append(asyncio.create_task(asker()))
            await until_loop(lambda: target._link._senders >= 2 or bool(outcome), "the ask waiting behind it")
            os.kill(first.pid, signal.SIGKILL)
            await asyncio.to_thread(first.wait)
            await line.wait_disconnected()
            second = peers.start(addr, "--dial", "--name", "second", script="hotline_agent.py")
            await asyncio.to_thread(wait_ready, second)
            await line.wait_connected()
            assert (await line.ask("fresh", timeout=10))["by"] == "second"
            await until_loop(lambda: bool(outcome), "the lost ask's outcome")
            stats = line.statistics()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return stats, outcome

    stats, outcome = run(main(), seconds=100)
    assert stats.stale_replies == 0 and stats.asks_unsent == 1, stats
    assert outcome and isinstance(outcome[0], PeerLost), outcome


# ---------------------------------------------------------------- the decision, in process
async def test_send_while_drops_a_frame_no_longer_wanted_before_it_goes(address: Address) -> None:
    """``Link.send_while`` asks ``wanted`` before each try: a frame that waited for a peer
    and stopped being wanted meanwhile never goes, even once a peer is there."""
    addr = address("inproc")
    link = Link(addr, listen=False, name="asker", max_message_size=1 << 16, tls=None)
    wanted, results = True, []
    async with link.pair, trio.open_nursery() as nursery:

        async def send() -> None:  # no peer yet: it waits
            results.append(await link.send_while(Envelope(MSG, "asker", 1, "never"), lambda: wanted))

        nursery.start_soon(send)
        await until(lambda: link._senders == 1, "the frame waiting")
        wanted = False  # (its ask failed meanwhile)
        async with Pair(listen=addr, name="peer") as peer:
            await until(lambda: bool(results), "the frame dropped once a peer came")
            assert results == [False]
            assert await link.send_while(Envelope(MSG, "asker", 2, "wanted"), lambda: True)
            got = await peer.receive_envelope()
            assert got.id == 2 and got.body == "wanted"  # the dropped one never went
