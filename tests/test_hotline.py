"""Hotlines: a direct two-agent line over NNG pair1, tested against real child processes
(``tests/hotline_agent.py``) and, for the handler-less API, two lines in one process.

No test sleeps to synchronise: each waits for a line from a child, a connection, or an
answer, and every wait is bounded (the conftest deadline, or an explicit ``fail_after``).
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from conftest import Peers, read_line

import consensus
from patterns import Envelope, Pair

pytestmark = pytest.mark.timeout(90)

Address = Callable[[str], str]


async def start_agent(peers: Peers, address: str, name: str, side: str = "--dial") -> subprocess.Popen[str]:
    """Start ``hotline_agent.py`` and return once it printed ``ready`` (it is connected)."""
    proc = peers.start(address, side, "--name", name, script="hotline_agent.py")
    with trio.fail_after(15):
        assert await read_line(proc) == "ready"
    return proc


def launch_agent(peers: Peers, address: str, name: str, side: str = "--dial") -> subprocess.Popen[str]:
    """Start ``hotline_agent.py`` without waiting for it."""
    return peers.start(address, side, "--name", name, script="hotline_agent.py")


async def greet(pair: Pair) -> None:
    """A raw peer's first frame on a connection: without it the line is not connected."""
    await pair.send_envelope(Envelope(kind="hello", sender="raw", id=0, body={"hotline": 1}))


@asynccontextmanager
async def line_to_alice(peers: Peers, address: str) -> AsyncIterator[consensus.Hotline]:
    """A listening line named "test", connected to a child agent "alice" that dials it."""
    async with consensus.hotline(listen=address, name="test") as line:
        await start_agent(peers, address, "alice")
        await line.wait_connected()
        yield line


@asynccontextmanager
async def two_lines(
    address: str,
    *,
    server_on_ask: Callable[..., Any] | None = None,
    client_on_ask: Callable[..., Any] | None = None,
) -> AsyncIterator[tuple[consensus.Hotline, consensus.Hotline]]:
    """A listening line "server" and a dialing line "client" in this process, both connected."""
    async with (
        consensus.hotline(listen=address, name="server", on_ask=server_on_ask) as server,
        consensus.hotline(dial=address, name="client", on_ask=client_on_ask) as client,
    ):
        with trio.fail_after(10):
            await client.wait_connected()
            await server.wait_connected()
        yield server, client


# ---------------------------------------------------------------- 1. ask / reply, send / receive
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


# ---------------------------------------------------------------- 2. concurrent asks
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


# ---------------------------------------------------------------- 3. streamed ask
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


# ---------------------------------------------------------------- 4. remote error
async def test_remote_error_when_the_handler_raises(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        with trio.fail_after(5):
            with pytest.raises(consensus.RemoteError) as info:
                await line.ask({"raise": True}, timeout=5)
            assert info.value.type == "RuntimeError"
            assert "alice was asked to fail" in str(info.value)
            assert await line.ask("still here", timeout=5) == {"echo": "still here", "by": "alice"}


# ---------------------------------------------------------------- 5. timeout
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


# ---------------------------------------------------------------- 6. peer killed mid-ask, reconnect
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


# ---------------------------------------------------------------- 7. a second dialer is refused
async def test_second_dialer_is_refused_first_conversation_goes_on(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        assert await line.ask(0, timeout=5) == {"echo": 0, "by": "alice"}
        intruder = launch_agent(peers, addr, "bob")
        # keep the conversation going while bob starts and tries to dial in
        count = 0
        with trio.move_on_after(2):
            while True:
                count += 1
                assert await line.ask(count, timeout=5) == {"echo": count, "by": "alice"}
                await line.send({"n": count})
                assert await line.receive() == {"n": count}
        assert count > 5
        stats = line.statistics()  # (before the reply to the ask cut short comes, stale)
        assert stats.connections == 1 and stats.connected
        assert stats.asks_failed == 0 and stats.stale_replies == 0
        with trio.fail_after(10):  # bob learns that the line is taken, and never says it is connected
            assert await read_line(intruder) == "taken TAKEN connected=False"
        assert intruder.poll() is None  # bob is still there, not crashed


async def test_a_second_dialer_learns_the_line_is_taken_and_never_says_connected(address: Address) -> None:
    """pair1 refuses the second dialer: its connection closes before any hello. It is
    TAKEN (not connected) while NNG dials again and again; its waits, sends and asks raise
    LineTaken. Once the first dialer leaves, it gets in."""
    addr = address("ipc")
    leave = trio.Event()

    async def first_dialer(task_status: trio.TaskStatus[consensus.Hotline]) -> None:
        async with consensus.hotline(dial=addr, name="first") as first:
            await first.wait_connected()
            task_status.started(first)
            await leave.wait()

    async with (
        consensus.hotline(listen=addr, name="server", on_ask=lambda v: ["server", v]) as server,
        trio.open_nursery() as nursery,
    ):
        with trio.fail_after(30):  # NNG redials with a growing back-off; 10 s ran out beside two busy loops
            first = await nursery.start(first_dialer)
            await server.wait_connected()
            async with consensus.hotline(dial=addr, name="second") as second:
                with pytest.raises(consensus.LineTaken, match="already has a peer"):
                    await second.wait_connected()
                while second.statistics().refused < 3:  # NNG dials again: refused each time
                    assert second.state is consensus.LineState.TAKEN and not second.connected
                    await second._reader.changed.wait()
                assert not second.statistics().connected and second.statistics().connections == 0
                with pytest.raises(consensus.LineTaken):
                    await second.ask("me too?", timeout=5)
                with pytest.raises(consensus.LineTaken):
                    await second.send("me too")
                assert await first.ask(1, timeout=5) == ["server", 1]  # the first conversation goes on
                assert server.statistics().connections == 1

                leave.set()  # the first dialer leaves: the second gets in
                while second.state is not consensus.LineState.CONNECTED:
                    await second._reader.changed.wait()
                assert await second.ask(2, timeout=5) == ["server", 2]
                assert second.statistics().connections == 1 and server.statistics().connections == 2


# ---------------------------------------------------------------- 8. stale reply
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


# ---------------------------------------------------------------- 9. receive_ask without on_ask
async def test_receive_ask_reply_and_stream_in_process(address: Address) -> None:
    addr = address("inproc")
    async with two_lines(addr) as (server, client):
        with trio.fail_after(10):

            async def serve() -> None:
                ask = await server.receive_ask()
                assert ask.value == {"q": "plain"} and not ask.stream
                with pytest.raises(ValueError):
                    await ask.chunk("no chunks for a plain ask")
                await ask.reply({"a": 1})
                with pytest.raises(ValueError):
                    await ask.reply("twice")

                ask = await server.receive_ask()
                assert ask.value == "count" and ask.stream
                for i in range(3):
                    await ask.chunk(i)
                await ask.end()

                ask = await server.receive_ask()
                assert ask.stream
                await ask.chunk("x")
                await ask.end("last")

                ask = await server.receive_ask()
                await ask.fail(ValueError("nope"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                assert await client.ask({"q": "plain"}, timeout=5) == {"a": 1}
                assert [c async for c in client.ask_stream("count", timeout=5)] == [0, 1, 2]
                assert [c async for c in client.ask_stream("with end", timeout=5)] == ["x", "last"]
                with pytest.raises(consensus.RemoteError) as info:
                    await client.ask("fail", timeout=5)
                assert info.value.type == "ValueError"

        assert server.statistics().asks_open == 0
        assert client.statistics().asks_answered >= 3
        assert client.statistics().stale_replies == 0


async def test_receive_ask_refused_when_on_ask_is_set(address: Address) -> None:
    async with consensus.hotline(listen=address("inproc"), on_ask=lambda v: v) as line:
        with pytest.raises(RuntimeError):
            await line.receive_ask()


# ---------------------------------------------------------------- 10. inline answers (async on_ask)
async def test_an_async_handler_that_waits_never_stalls_the_line(address: Address) -> None:
    """An async on_ask runs inline until it suspends; then the line reads on without it."""
    addr = address("inproc")
    gate = trio.Event()

    async def on_ask(value: Any) -> Any:
        if value == "wait":
            await gate.wait()
            return "released"
        if value == "raise":
            raise ValueError("asked to fail")
        return {"echo": value}

    async with two_lines(addr, server_on_ask=on_ask) as (server, client):
        with trio.fail_after(10):
            result: list[Any] = []

            async def slow() -> None:
                result.append(await client.ask("wait", timeout=5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                for i in range(3):  # answered while the first handler still waits
                    assert await client.ask(i, timeout=5) == {"echo": i}
                await client.send("one-way")
                assert await server.receive() == "one-way"
                assert not result
                gate.set()
            assert result == ["released"]
            with pytest.raises(consensus.RemoteError) as info:
                await client.ask("raise", timeout=5)
            assert info.value.type == "ValueError"
            # an async (not generator) handler answers a streamed ask with one last item
            assert [c async for c in client.ask_stream("s", timeout=5)] == [{"echo": "s"}]
        assert server.statistics().asks_served == 6
        stats = client.statistics()
        assert stats.asks_answered == 6 and stats.asks_open == 0 and stats.stale_replies == 0


async def test_an_async_handler_may_ask_back_before_it_answers(address: Address) -> None:
    """Both ends answer inline; a handler that asks the other side first suspends, hands
    the line to a new receiving task, and still gets its answer through it."""
    addr = address("inproc")
    lines: dict[str, consensus.Hotline] = {}

    async def server_on_ask(value: Any) -> Any:
        return [value, await lines["server"].ask("and you?", timeout=5)]

    async def client_on_ask(value: Any) -> Any:
        return f"client heard {value}"

    async with two_lines(addr, server_on_ask=server_on_ask, client_on_ask=client_on_ask) as (server, client):
        lines["server"] = server
        with trio.fail_after(10):
            for i in range(3):
                assert await client.ask(i, timeout=5) == [i, "client heard and you?"]
        assert server.statistics().asks_served == 3 and client.statistics().asks_served == 3


# ---------------------------------------------------------------- 11. timeouts and cancellation
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


# ---------------------------------------------------------------- 12. heartbeats
async def test_a_silent_peer_is_disconnected_and_its_asks_fail(address: Address) -> None:
    """A peer that sends nothing (not even pongs) is dropped after its missed heartbeats;
    the ask waiting on it fails with PeerLost, long before its own timeout."""
    addr = address("ipc")
    async with (
        consensus.hotline(listen=addr, name="test", heartbeat=0.1, missed_heartbeats=2) as line,
        Pair(dial=addr, name="mute") as mute,
    ):
        with trio.fail_after(10):
            await mute.wait_for_peers(1)
            await greet(mute)  # then not a word
            await line.wait_connected()
            start = trio.current_time()
            with pytest.raises(consensus.PeerLost):
                await line.ask("anyone?", timeout=30)
            assert trio.current_time() - start < 5
            heard = [(await mute.receive_envelope()).kind for _ in range(2)]
            assert heard[0] == "hello" and heard[1] in ("ask", "ping")  # it did hear us
        stats = line.statistics()
        assert stats.silent_disconnects >= 1 and stats.asks_failed >= 1 and stats.asks_open == 0


# ---------------------------------------------------------------- 13. an asker reading the line itself
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


# ---------------------------------------------------------------- 14. opening a line
async def test_a_line_listens_or_dials_at_an_address_exactly_one(address: Address) -> None:
    addr = address("inproc")
    with pytest.raises(ValueError, match="exactly one of listen= or dial="):
        async with consensus.hotline(listen=addr, dial=addr):
            pass
    with pytest.raises(ValueError, match="exactly one of listen= or dial="):
        async with consensus.hotline():
            pass
    with pytest.raises(TypeError, match="must be text"):
        async with consensus.hotline(listen=True):  # type: ignore[arg-type]  # the old flag
            pass
    async with consensus.hotline(listen=addr) as line:
        assert line.state is consensus.LineState.WAITING and not line.connected
        assert line.bound_address == addr and "waiting for a peer" in repr(line)
