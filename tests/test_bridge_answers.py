"""Answers sent from the thread that computed them, through the asyncio and blocking fronts.

A ``consensus.aio`` hotline with a coroutine ``on_ask`` sends each answer from its asyncio
loop's thread; a ``consensus.blocking`` one from the handler's thread
(``consensus/hotline/threaded.py``). Against child processes (``tests/bridge_agent.py``)
and, where the test must see where the answer left from or when a handler is cancelled,
two lines in one asyncio program.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from _bridge import agent, ready, run, spy_thread_sends
from conftest import Peers, tell

import consensus
from consensus import aio

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("front", "transport"), [("aio", "ipc"), ("aio", "tcp"), ("blocking", "ipc")])
def test_a_child_answers_from_its_loop_or_its_threads(front: str, transport: str, peers: Peers,
                                                      address: Callable[[str], str]) -> None:  # fmt: skip
    where = address(transport)
    child = agent(peers, front, "line", where, "far", *(["--coroutine"] if front == "aio" else []))

    async def main() -> tuple[list[Any], Any]:
        await ready(child)
        async with aio.hotline(dial=where, name="near") as line:
            await line.wait_connected()
            echoes = [await line.ask(i, timeout=10) for i in range(30)]
            with pytest.raises(consensus.RemoteError) as info:
                await line.ask({"raise": True}, timeout=10)
            assert info.value.type == "ValueError" and "far was asked to fail" in info.value.message
            slow = asyncio.create_task(line.ask({"sleep": 0.3}, timeout=10))  # waits on the child's loop or thread ...
            assert await line.ask("quick", timeout=10) == {"echo": "quick", "by": "far"}  # ... not its line
            assert await slow == {"echo": {"sleep": 0.3}, "by": "far"}
            stats = line.statistics()
        tell(child, "quit")
        return echoes, stats

    echoes, stats = run(main())
    assert echoes == [{"echo": i, "by": "far"} for i in range(30)]
    assert stats.asks_open == 0 and stats.asks_answered == 33


def test_an_asyncio_answer_leaves_from_the_loops_thread_with_its_context(address: Callable[[str], str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    senders: list[str] = []

    def spy(send: Callable[[], int | None]) -> int | None:
        senders.append(threading.current_thread().name)
        return send()

    spy_thread_sends(monkeypatch, spy)
    where = address("ipc")

    async def on_ask(value: Any) -> Any:
        await asyncio.sleep(0)
        if value == "fail":
            raise KeyError("no such thing")
        context = consensus.handler_context()
        return [value, context.kind, context.asker]

    async def main() -> tuple[list[Any], int, int, str]:
        async with (
            aio.hotline(listen=where, name="server", on_ask=on_ask) as server,
            aio.hotline(dial=where, name="client") as client,
        ):
            await client.wait_connected()
            answers = [await client.ask(i, timeout=10) for i in range(20)]
            with pytest.raises(consensus.RemoteError) as info:
                await client.ask("fail", timeout=10)
            assert info.value.type == "KeyError"
            return answers, server.statistics().asks_served, client.statistics().stale_replies, \
                threading.current_thread().name  # fmt: skip

    answers, served, stale, loop_thread = run(main())
    assert answers == [[i, "ask", "client"] for i in range(20)]
    assert served == 21 and stale == 0
    # every ask and every answer left from the asyncio loop's thread (the line is read there)
    assert senders == [loop_thread] * 42


def test_closing_the_line_cancels_an_asyncio_handler_still_running(address: Callable[[str], str]) -> None:
    where = address("ipc")
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def on_ask(value: Any) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return value

    async def main() -> type[BaseException] | None:
        async with aio.hotline(dial=where, name="client") as client:
            async with aio.hotline(listen=where, name="server", on_ask=on_ask):
                await client.wait_connected()
                asking = asyncio.create_task(client.ask("x", timeout=10))
                await started.wait()
            # the server line closed, its handler still waiting
            while not cancelled:
                await asyncio.sleep(0.01)
            try:
                await asking
            except (consensus.PeerLost, consensus.Closed) as exc:
                return type(exc)
            return None

    assert run(main()) in (consensus.PeerLost, consensus.Closed)
    assert cancelled == [True]
