"""Hotlines: the asking side: a reply to no ask counted as stale, each ask timing out at
its own deadline, and an asker that reads the line itself while it waits (frames handled in
order, the peer leaving, timeouts and cancellation, a stream beside plain asks), against
raw pair peers and a second line in process.

No test sleeps to synchronise; every wait is bounded (the conftest deadline, or an
explicit ``fail_after``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from _hotline import Address, greet, two_lines

import consensus
from patterns import Envelope, Pair

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------- stale reply
async def test_reply_to_unknown_ask_is_dropped_and_counted(address: Address) -> None:
    addr = address("ipc")
    async with (
        consensus.hotline(listen=addr, name="test") as line,
        Pair(dial=addr, name="raw") as pair,
    ):
        with trio.fail_after(5):
            await pair.wait_for_peers(1)
            await greet(pair)
            await line.wait_connected()
            await pair.send_envelope(Envelope(kind="reply", sender="x", id=1, body=1, re=12345))
            # one connection is FIFO: once this arrives, the reply before it was handled
            await pair.send_envelope(Envelope(kind="msg", sender="x", id=2, body="after"))
            assert await line.receive() == "after"
        stats = line.statistics()
        assert stats.stale_replies == 1
        assert stats.asks_failed == 0 and stats.malformed == 0


# ---------------------------------------------------------------- timeouts and cancellation
async def test_each_ask_times_out_at_its_own_deadline(address: Address) -> None:
    """A later ask with a shorter timeout is not held up by an earlier, longer one; a cancelled
    ask leaves nothing open, and its late answer is counted as stale."""
    addr = address("inproc")
    async with two_lines(addr) as (server, client):
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                long_ask = trio.CancelScope()

                async def ask_long() -> None:
                    with long_ask:
                        await client.ask("long", timeout=30)

                nursery.start_soon(ask_long)
                first = await server.receive_ask()
                assert first.value == "long"
                start = trio.current_time()
                with pytest.raises(consensus.Timeout):
                    await client.ask("short", timeout=0.2)
                assert trio.current_time() - start < 10
                assert (await server.receive_ask()).value == "short"
                long_ask.cancel()
            assert client.statistics().asks_open == 0
            assert client.statistics().asks_expired == 1
            await first.reply("too late")
            # one connection is FIFO: once this arrives, the late reply before it was handled
            await server.send("after")
            assert await client.receive() == "after"
        assert client.statistics().stale_replies == 1


# ---------------------------------------------------------------- an asker reading the line itself
async def _answer_asks(pair: Pair, *before: Sequence[Envelope], seen: list[str] | None = None) -> None:
    """A raw peer: for each item of ``before``, take the next ask, send those envelopes,
    then reply with the asked value. The kinds of the other frames it reads go to ``seen``."""
    for envelopes in before:
        while (ask := await pair.receive_envelope()).kind != "ask":
            if seen is not None:
                seen.append(ask.kind)
        for envelope in envelopes:
            await pair.send_envelope(envelope)
        await pair.send_envelope(
            Envelope(kind="reply", sender="raw", id=ask.id, body=ask.body["v"], re=ask.id)
        )


async def test_frames_that_come_while_an_asker_reads_are_handled_in_order(address: Address) -> None:
    """An ask sent right after another's answer reads the line itself while it waits; values,
    pings and stale replies that come meanwhile are handled as the receive loop would."""
    addr = address("ipc")
    async with (
        consensus.hotline(listen=addr, name="test") as line,
        Pair(dial=addr, name="raw") as raw,
    ):
        with trio.fail_after(10):
            await raw.wait_for_peers(1)
            await greet(raw)
            await line.wait_connected()
            meanwhile = [
                Envelope(kind="msg", sender="raw", id=1, body="a"),
                Envelope(kind="reply", sender="raw", id=2, body="stale", re=12345),
                Envelope(kind="ping", sender="raw", id=3),
                Envelope(kind="msg", sender="raw", id=4, body="b"),
            ]
            seen: list[str] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(_answer_asks, raw, [], meanwhile, [], seen=seen))
                assert await line.ask("first", timeout=5) == "first"
                assert await line.ask("second", timeout=5) == "second"  # right after "first": it reads
                assert await line.ask("third", timeout=5) == "third"
            assert await line.receive() == "a"
            assert await line.receive() == "b"
            while "pong" not in seen:  # the ping was answered
                seen.append((await raw.receive_envelope()).kind)
        stats = line.statistics()
        assert stats.stale_replies == 1 and stats.asks_answered == 3 and stats.asks_open == 0


def _answer_then_talk(addr: str) -> list[str]:
    """A raw peer in its own thread and trio run (its own clock): answers two asks, sends a
    value and a ping right after the second answer, waits for the pong, answers a third ask."""

    async def main() -> list[str]:
        heard: list[str] = []
        with trio.fail_after(10):  # (the asker's clock may stand still: this one runs)
            async with Pair(dial=addr, name="raw") as raw:
                await raw.wait_for_peers(1)
                await greet(raw)
                await _answer_asks(raw, [], [])
                await raw.send_envelope(Envelope(kind="msg", sender="raw", id=1, body="after"))
                await raw.send_envelope(Envelope(kind="ping", sender="raw", id=2))
                while len(heard) < 2:  # the pong, and the third ask (either may come first)
                    envelope = await raw.receive_envelope()
                    if envelope.kind == "ask":
                        await raw.send_envelope(Envelope(kind="reply", sender="raw", id=envelope.id,
                                                         body=envelope.body["v"], re=envelope.id))  # fmt: skip
                    if envelope.kind in ("ask", "pong"):
                        heard.append(envelope.kind)
        return sorted(heard)

    return trio.run(main)


async def test_frames_right_after_an_answer_are_read_with_the_clock_stopped(
    address: Address, mock_clock: trio.testing.MockClock
) -> None:
    """A value and a ping that come right after the answer an asker read itself are read at
    once, not when some timer fires: with the asker's trio clock stopped (no deadline can
    pass), the value arrives (and the ping is answered). A line that left them to a timer
    hangs here until the peer, in its own thread and clock, gives up."""
    mock_clock.rate = 1.0
    addr = address("ipc")
    heard: list[str] = []
    async with consensus.hotline(listen=addr, name="test") as line:

        async def peer() -> None:
            heard.extend(await trio.to_thread.run_sync(_answer_then_talk, addr))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer)
            with trio.fail_after(10):
                await line.wait_connected()
                assert await line.ask("warm", timeout=5) == "warm"
            mock_clock.rate = 0.0
            assert await line.ask("second", timeout=5) == "second"  # it reads the line itself
            assert await line.receive() == "after"
            mock_clock.rate = 1.0  # (a send NNG refuses for a moment is retried after a short sleep)
            assert await line.ask("third", timeout=5) == "third"
    assert heard == ["ask", "pong"]


async def test_an_asker_reading_the_line_fails_at_once_when_the_peer_goes(address: Address) -> None:
    addr = address("ipc")
    async with consensus.hotline(listen=addr, name="test") as line:
        with trio.fail_after(10):
            async with Pair(dial=addr, name="raw") as raw:
                await raw.wait_for_peers(1)
                await greet(raw)
                await line.wait_connected()

                async def answer_then_leave() -> None:
                    await _answer_asks(raw, [])
                    while (await raw.receive_envelope()).kind != "ask":
                        pass
                    raw.close()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(answer_then_leave)
                    assert await line.ask("first", timeout=5) == "first"
                    start = trio.current_time()
                    with pytest.raises(consensus.PeerLost):
                        await line.ask("second", timeout=30)  # right after "first": it reads
                    assert trio.current_time() - start < 5
        stats = line.statistics()
        assert stats.asks_failed == 1 and stats.asks_open == 0


async def test_an_asker_reading_the_line_fails_at_once_when_the_line_closes(address: Address) -> None:
    """The line closing ends the wait of an asker that reads it, with Closed, at once."""
    addr = address("ipc")
    outcome: list[str] = []
    ended = trio.Event()
    async with Pair(dial=addr, name="raw") as raw, trio.open_nursery() as nursery:
        with trio.fail_after(10):
            async with consensus.hotline(listen=addr, name="test") as line:
                await raw.wait_for_peers(1)
                await greet(raw)
                await line.wait_connected()
                asked = trio.Event()

                async def asker() -> None:
                    assert await line.ask("first", timeout=5) == "first"
                    try:
                        await line.ask("second", timeout=30)  # right after "first": it reads the line
                    except consensus.Closed:
                        outcome.append("closed")
                    ended.set()

                async def answer_first_then_watch() -> None:
                    await _answer_asks(raw, [])
                    while (await raw.receive_envelope()).kind != "ask":
                        pass
                    asked.set()

                nursery.start_soon(answer_first_then_watch)
                nursery.start_soon(asker)
                await asked.wait()
                assert line._reader.reading is not None  # the asker reads the line itself
            start = trio.current_time()
        with trio.fail_after(5):
            await ended.wait()
        assert outcome == ["closed"] and trio.current_time() - start < 5


async def test_an_asker_reading_the_line_times_out_or_is_cancelled_and_the_line_reads_on(
    address: Address,
) -> None:
    addr = address("inproc")
    async with two_lines(addr) as (server, client):
        with trio.fail_after(10):

            async def answer(count: int) -> None:
                for _ in range(count):
                    ask = await server.receive_ask()
                    if ask.value != "unanswered":
                        await ask.reply(ask.value)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer, 5)
                assert await client.ask(1, timeout=5) == 1
                start = trio.current_time()
                with pytest.raises(consensus.Timeout):  # it reads the line while it waits
                    await client.ask("unanswered", timeout=0.2)
                assert trio.current_time() - start < 4
                assert await client.ask(2, timeout=5) == 2
                with trio.move_on_after(0.2) as scope:
                    await client.ask("unanswered", timeout=5)
                assert scope.cancelled_caught
                assert await client.ask(3, timeout=5) == 3
                await server.send("still reading")
                assert await client.receive() == "still reading"
        stats = client.statistics()
        assert stats.asks_open == 0 and stats.asks_expired == 1 and stats.asks_answered == 3


async def test_a_stream_and_plain_asks_at_once(address: Address) -> None:
    """Chunks of a stream that arrive while a plain asker reads the line go to the stream,
    in order."""
    addr = address("inproc")
    async with two_lines(addr) as (server, client):
        with trio.fail_after(10):
            streamed: list[Any] = []
            streaming = trio.Event()

            async def serve() -> None:
                stream = await server.receive_ask()
                assert stream.stream
                streaming.set()
                for i in range(3):
                    plain = await server.receive_ask()
                    await stream.chunk(i)
                    await plain.reply(plain.value)
                await stream.end("done")

            async def consume() -> None:
                async for chunk in client.ask_stream("count", timeout=5):
                    streamed.append(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                nursery.start_soon(consume)
                await streaming.wait()
                for i in range(3):
                    assert await client.ask(f"plain {i}", timeout=5) == f"plain {i}"
            assert streamed == [0, 1, 2, "done"]
        assert client.statistics().asks_open == 0 and client.statistics().stale_replies == 0
