"""Plain ``on_ask`` handlers whose thread sends the answer (``consensus/hotline/threaded.py``).

Against a child process (``tests/hotline_agent.py --plain``) over ipc and tcp: answers,
failures, a blocked handler. In one process, where the test must see both ends' books:
exact counters, the line closing or the peer leaving while a handler runs, a large answer
through shared memory. A full send queue handing the answers back to trio, against a raw
peer in a child process (``tests/raw_line_peer.py``) stopped while the queue is full.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from _bridge import spy_thread_sends
from conftest import Peers, read_line, tell

import consensus
from consensus.hotline import serve
from consensus.hotline.events import Role
from consensus.hotline.protocol import LineProtocol

pytestmark = pytest.mark.timeout(90)

Address = Callable[[str], str]
QUIET = 60.0  # a heartbeat no test waits for: no ping to count


async def start_plain_agent(peers: Peers, address: str, name: str) -> subprocess.Popen[str]:
    proc = peers.start(address, "--dial", "--name", name, "--plain", script="hotline_agent.py")
    with trio.fail_after(15):
        assert await read_line(proc) == "ready"
    return proc


class SendSpy:
    """Records what each thread send returned (None: handed back to trio)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.results: list[int | None] = []
        self.sent = threading.Semaphore(0)  # released once per send tried

        def spy(send: Callable[[], int | None]) -> int | None:
            result = send()
            self.results.append(result)  # list.append is atomic
            self.sent.release()
            return result

        spy_thread_sends(monkeypatch, spy)


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_a_plain_child_answers_from_its_threads(transport: str, address: Address, peers: Peers) -> None:
    addr = address(transport)
    async with consensus.hotline(listen=addr, name="test") as line:
        proc = await start_plain_agent(peers, addr, "alice")
        with trio.fail_after(30):
            await line.wait_connected()
            for i in range(50):
                assert await line.ask(i, timeout=5) == {"echo": i, "by": "alice"}
            with pytest.raises(consensus.RemoteError) as info:
                await line.ask({"raise": True}, timeout=5)
            assert info.value.type == "RuntimeError" and "alice was asked to fail" in info.value.message
            async with trio.open_nursery() as nursery:  # a blocked handler does not stall the others
                slow: list[Any] = []

                async def ask_slow() -> None:
                    slow.append(await line.ask({"sleep": 0.5}, timeout=10))

                nursery.start_soon(ask_slow)
                assert await line.ask("quick", timeout=5) == {"echo": "quick", "by": "alice"}
            assert slow == [{"echo": {"sleep": 0.5}, "by": "alice"}]
            assert line.statistics().asks_answered == 53
        tell(proc, "quit")
        with trio.fail_after(15):
            while (said := await read_line(proc)) != "bye":
                assert said, "the agent ended without saying bye"


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_counters_are_exact_as_soon_as_the_answer_is_in(transport: str, address: Address,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    spy = SendSpy(monkeypatch)

    def on_ask(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value * 2

    addr = address(transport)
    async with (
        consensus.hotline(listen=addr, name="server", on_ask=on_ask, heartbeat=QUIET) as server,
        consensus.hotline(dial=addr, name="client", heartbeat=QUIET) as client,
    ):
        with trio.fail_after(20):
            await client.wait_connected()
            await server.wait_connected()
            for i in range(1, 41):
                assert await client.ask(i, timeout=5) == 2 * i
                s, c = server.statistics(), client.statistics()
                assert s.asks_served == i  # read at once: the thread's books are in
                assert s.sent == c.received  # every frame the server sent, counted on both ends
            with pytest.raises(consensus.RemoteError):
                await client.ask(-1, timeout=5)
            assert server.statistics().asks_served == 41
            assert server.statistics().sent == client.statistics().received
    assert len(spy.results) == 41 and all(size is not None for size in spy.results)  # all from the threads


async def test_the_line_closing_while_a_handler_runs(address: Address, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="consensus.hotline")
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def on_ask(value: Any) -> Any:
        started.set()
        release.wait(10)
        finished.set()
        return value

    addr = address("ipc")
    failed: list[BaseException] = []
    async with consensus.hotline(dial=addr, name="client") as client, trio.open_nursery() as nursery:

        async def ask() -> None:
            try:
                await client.ask("x", timeout=10)
            except (consensus.PeerLost, consensus.Closed) as exc:
                failed.append(exc)

        async with consensus.hotline(listen=addr, name="server", on_ask=on_ask) as server:
            with trio.fail_after(10):
                await client.wait_connected()
                await server.wait_connected()
                nursery.start_soon(ask)
                await trio.to_thread.run_sync(started.wait, 10)
        # ... the server line closed here, its handler still running
        served = server.statistics().asks_served
        release.set()
        with trio.fail_after(10):
            await trio.to_thread.run_sync(finished.wait, 10)
            await client.wait_disconnected()
    assert served == 0 and server.statistics().asks_served == 0
    assert failed and client.statistics().stale_replies == 0
    with trio.fail_after(10):  # the thread says what became of its answer once trio looks
        while not any("before ask" in r.getMessage() for r in caplog.records):
            await trio.sleep(0.01)


async def test_an_answer_to_a_peer_that_left_never_reaches_the_next_one(address: Address,
                                                                        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="consensus.hotline")
    started, release = threading.Event(), threading.Event()

    def on_ask(value: Any) -> Any:
        if value == "block":
            started.set()
            release.wait(10)
        return ["answer", value]

    addr = address("ipc")
    async with consensus.hotline(listen=addr, name="server", on_ask=on_ask) as server:
        async with consensus.hotline(dial=addr, name="first") as first, trio.open_nursery() as nursery:
            with trio.fail_after(10):
                await first.wait_connected()
                nursery.start_soon(functools.partial(first.ask, "block", timeout=10))
                await trio.to_thread.run_sync(started.wait, 10)
            nursery.cancel_scope.cancel()  # the first peer leaves, its ask unanswered
        with trio.fail_after(10):
            await server.wait_disconnected()
        async with consensus.hotline(dial=addr, name="second") as second:
            with trio.fail_after(10):
                await second.wait_connected()
                release.set()
                while not any("before ask" in r.getMessage() for r in caplog.records):  # dropped, said
                    assert await second.ask("hello", timeout=5) == ["answer", "hello"]
                assert await second.ask("again", timeout=5) == ["answer", "again"]
            assert second.statistics().stale_replies == 0  # the first peer's answer never came here
            assert server.statistics().asks_served == second.statistics().asks_answered


async def test_a_large_answer_still_goes_through_shared_memory(address: Address, monkeypatch: pytest.MonkeyPatch,
                                                               no_shared_memory_left: Any) -> None:  # fmt: skip
    spy = SendSpy(monkeypatch)
    size = 2 << 20

    def on_ask(value: int) -> bytes:
        return bytes([value]) * size

    addr = address("ipc")
    async with (
        consensus.hotline(listen=addr, name="server", on_ask=on_ask) as server,
        consensus.hotline(dial=addr, name="client") as client,
    ):
        with trio.fail_after(20):
            await client.wait_connected()
            await server.wait_connected()
            answer = await client.ask(7, timeout=10)
            assert answer == bytes([7]) * size
            assert client._link.pair.statistics().bytes_received < 64 << 10  # a reference, not the bytes
            assert server.statistics().asks_served == 1
            assert spy.results == [None]  # the thread handed it to trio, which placed it


async def test_a_full_send_queue_hands_the_answers_back_to_trio(address: Address, peers: Peers,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    spy = SendSpy(monkeypatch)
    count = 4
    started, release = threading.Semaphore(0), threading.Event()

    def on_ask(value: int) -> list[int]:
        started.release()
        release.wait(20)
        return [value, value]

    addr = address("ipc")
    async with consensus.hotline(listen=addr, name="server", on_ask=on_ask, handler_threads=count,
                                 heartbeat=QUIET) as server:  # fmt: skip
        reader = peers.start(addr, str(count), script="raw_line_peer.py")
        with trio.fail_after(20):
            assert await read_line(reader) == "asked"
            await server.wait_connected()
            for _ in range(count):
                assert await trio.to_thread.run_sync(functools.partial(started.acquire, timeout=20))
            # Nothing may read on the peer's side now: stop it, and wait until all its
            # threads have stopped (waitpid reports the stop once the whole process has).
            os.kill(reader.pid, signal.SIGSTOP)
            _, status = await trio.to_thread.run_sync(os.waitpid, reader.pid, os.WUNTRACED)
            assert os.WIFSTOPPED(status), status
            # The queue is now full for good, and no timing decides it. The server's pair1
            # socket has no send buffer (patterns sets none: NNG's default is 0), so NNG takes
            # a frame only while the connection's one send slot is free, and the slot stays
            # busy until the ipc transport has written the whole frame into the kernel's
            # socket. A stopped reader empties nothing, so the kernel holds at most about
            # the socket's send buffer (SO_SNDBUF, net.core.wmem_default: NNG sets none)
            # plus one chunk: this filler is 4 times that, never written whole, and the slot
            # stays busy until the reader runs again. (Small fillers sent until one had to
            # wait 2 s left the slot to free itself later when NNG's threads were slow.)
            kernel = int(Path("/proc/sys/net/core/wmem_default").read_text())
            filler = [b"f" * 4000] * (4 * kernel // 4000 + 1)  # pieces below shared memory's threshold: inline
            await server.send(filler)
        release.set()  # every handler now finds the queue full
        with trio.fail_after(20):
            for _ in range(count):
                assert await trio.to_thread.run_sync(functools.partial(spy.sent.acquire, timeout=20))
        assert spy.results == [None] * count  # all handed back to trio
        os.kill(reader.pid, signal.SIGCONT)
        with trio.fail_after(30):
            said = await read_line(reader)
        assert said.startswith("got "), said
        got = json.loads(said[4:])
        assert got["answers"] == {str(100 + i): [i, i] for i in range(count)}  # (JSON keys are text)
        assert got["fillers"] == 1  # the filler came whole, before the answers
        assert server.statistics().asks_served == count


async def test_the_trio_path_still_answers(address: Address, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "ANSWER_FROM_THREAD", False)
    spy = SendSpy(monkeypatch)
    addr = address("tcp")
    async with (
        consensus.hotline(listen=addr, name="server", on_ask=lambda v: -v) as server,
        consensus.hotline(dial=addr, name="client") as client,
    ):
        with trio.fail_after(10):
            await client.wait_connected()
            assert [await client.ask(i, timeout=5) for i in range(5)] == [0, -1, -2, -3, -4]
            assert server.statistics().asks_served == 5
    assert spy.results == []


def test_the_protocol_reserves_answer_ids_and_counts_answers_sent_elsewhere() -> None:
    protocol = LineProtocol(Role.LISTENER, "server", heartbeat=1.0, missed_heartbeats=3)
    protocol.pipe_up(7, 0.0)
    first, second = protocol.reserve_answer(7), protocol.reserve_answer(7)
    assert first is not None and second is not None and first != second
    assert protocol.statistics().asks_served == 0  # counted once sent, not when reserved
    protocol.answered_elsewhere(2)
    assert protocol.statistics().asks_served == 2
    assert protocol.closed_pipes() == frozenset()
    protocol.pipe_down(7, 1.0)
    assert protocol.reserve_answer(7) is None and protocol.closed_pipes() == {7}
    assert protocol.answer(1, 7, "reply", "late") is None  # the trio path agrees
