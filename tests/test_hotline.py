"""Hotlines: a direct two-agent line over NNG pair1, tested against a real child process
(``tests/hotline_agent.py``): asks and replies, sends, streams, remote errors, timeouts,
and the peer killed mid-ask. The other hotline tests are ``tests/test_hotline_*.py``
(helpers in ``tests/_hotline.py``).

No test sleeps to synchronise: each waits for a line from a child, a connection, or an
answer, and every wait is bounded (the conftest deadline, or an explicit ``fail_after``).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from _hotline import Address, line_to_alice, start_agent
from conftest import Peers

import consensus

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------- ask / reply, send / receive
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_ask_reply_and_echo_with_a_child(transport: str, address: Address, peers: Peers) -> None:
    addr = address(transport)
    async with line_to_alice(peers, addr) as line:
        with trio.fail_after(5):
            assert await line.ask({"q": 1}, timeout=5) == {"echo": {"q": 1}, "by": "alice"}
            assert await line.ask("plain", timeout=5) == {"echo": "plain", "by": "alice"}
            await line.send({"hello": [1, 2, 3]})
            assert await line.receive() == {"hello": [1, 2, 3]}
            await line.send("second")
            assert await line.receive() == "second"
        stats = line.statistics()
        assert stats.connected and stats.connections == 1
        assert stats.asks_answered >= 2 and stats.asks_open == 0


# ---------------------------------------------------------------- concurrent asks
async def test_twenty_concurrent_asks_are_matched(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        answers: dict[int, Any] = {}

        async def asker(task: int) -> None:
            for k in range(5):
                n = task * 100 + k
                answers[n] = await line.ask({"n": n, "task": task}, timeout=10)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for task in range(4):
                    nursery.start_soon(asker, task)
        assert len(answers) == 20
        for n, answer in answers.items():
            assert answer == {"echo": {"n": n, "task": n // 100}, "by": "alice"}
        assert line.statistics().asks_answered >= 20
        assert line.statistics().stale_replies == 0


# ---------------------------------------------------------------- streamed ask
async def test_ask_stream_yields_chunks_in_order_then_ends(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        with trio.fail_after(10):
            chunks = [chunk async for chunk in line.ask_stream({"stream": 7}, timeout=10)]
            assert chunks == [{"chunk": i, "by": "alice"} for i in range(7)]
            # the line is fine afterwards: an empty stream, then a plain ask
            assert [c async for c in line.ask_stream({"stream": 0}, timeout=10)] == []
            assert await line.ask("after", timeout=5) == {"echo": "after", "by": "alice"}
        assert line.statistics().asks_open == 0


# ---------------------------------------------------------------- remote error
async def test_remote_error_when_the_handler_raises(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        with trio.fail_after(5):
            with pytest.raises(consensus.RemoteError) as info:
                await line.ask({"raise": True}, timeout=5)
            assert info.value.type == "RuntimeError"
            assert "alice was asked to fail" in str(info.value)
            assert await line.ask("still here", timeout=5) == {"echo": "still here", "by": "alice"}


# ---------------------------------------------------------------- timeout
async def test_ask_times_out_then_the_line_still_works(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        start = trio.current_time()
        with pytest.raises(consensus.Timeout):
            await line.ask({"sleep": 5}, timeout=0.3)
        assert trio.current_time() - start < 4
        with trio.fail_after(5):
            assert await line.ask("next", timeout=5) == {"echo": "next", "by": "alice"}
        stats = line.statistics()
        assert stats.asks_expired >= 1
        assert stats.asks_open == 0
        # the slow reply is not awaited: it would only be counted as stale


# ---------------------------------------------------------------- peer killed mid-ask, reconnect
async def test_peer_killed_mid_ask_fails_fast_then_reconnects(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with consensus.hotline(listen=addr, name="test") as line:
        first = await start_agent(peers, addr, "alice")
        await line.wait_connected()
        assert await line.ask("warm-up", timeout=5) == {"echo": "warm-up", "by": "alice"}
        sent_before = line.statistics().sent
        outcome: list[BaseException] = []

        async def slow_ask() -> None:
            try:
                await line.ask({"sleep": 10}, timeout=20)
            except consensus.ConsensusError as exc:
                outcome.append(exc)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow_ask)
                # the ask is on the wire, waiting for its reply (a send NNG cannot take at
                # once parks, every task blocked, and is counted only once NNG took it)
                while line.statistics().sent <= sent_before:
                    await trio.sleep(0.01)
                first.kill()
        assert len(outcome) == 1 and isinstance(outcome[0], consensus.PeerLost), outcome
        assert line.statistics().asks_failed >= 1
        assert line.statistics().asks_open == 0

        await start_agent(peers, addr, "bob")
        with trio.fail_after(10):
            await line.wait_connected()
            assert await line.ask("again", timeout=5) == {"echo": "again", "by": "bob"}
        assert line.statistics().connections == 2
