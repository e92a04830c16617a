"""A trio line whose plain ``on_ask`` is served by the threads that read it
(``consensus/hotline/opening.py`` lends it to ``thread_serve.ThreadServer``): the crew runs
the handler, trio's own asks take the line back while they run and lend it again after a
lease, a long handler, the handler-thread bound (``Busy``, as on trio's path), closing while a
handler runs, the peer dying, and the order of values across the hand-overs (hypothesis). Two lines in one process
where the test must look inside; a child process (``tests/asking_agent.py``) for the rest."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio
from conftest import Peers, read_line, tell
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consensus
from consensus.hotline import thread_serve
from consensus.hotline.reader import LEASE
from consensus.hotline.thread_serve import ThreadServer

Address = Callable[[str], str]


def _crew(line: consensus.Hotline) -> ThreadServer:
    crew = line._reader.foreign
    assert isinstance(crew, ThreadServer), crew
    return crew


def _serving(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"hotline {name} server ")]


async def _echo(value: Any) -> Any:
    return {"echo": value}


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # (under the test's deadline)
        await trio.sleep(0.005)


async def _hang(nursery: trio.Nursery, asker: consensus.Hotline, handler: Blocking) -> list[Any]:
    """Start an ask that blocks ``handler`` and wait until it runs: its answer lands in the list."""
    hung: list[Any] = []

    async def ask() -> None:
        hung.append(await asker.ask({"hang": 1}, timeout=30))

    nursery.start_soon(ask)
    await trio.to_thread.run_sync(handler.started.wait)
    return hung


async def _release(handler: Blocking, hung: list[Any], asker: consensus.Hotline) -> None:
    """Let the blocked handler go; once its answer came, a new ask finds room."""
    handler.release.set()
    await _until(lambda: bool(hung))
    assert await asker.ask("room again", timeout=10) == {"plain": "room again"}


class Blocking:
    """A plain handler that blocks on ``{"hang": ...}`` until released, and notes its threads."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []
        self._lock = threading.Lock()
        self.running = self.most = 0

    def __call__(self, value: Any) -> Any:
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if value == "raise":
                raise ValueError("asked to fail")
            if isinstance(value, dict) and "hang" in value:
                self.started.set()
                self.release.wait(30)
            return {"plain": value}
        finally:
            with self._lock:
                self.running -= 1


async def test_a_plain_trio_line_is_read_by_its_serving_threads(address: Address) -> None:
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler) as a, \
               consensus.hotline(dial=where, name="b", on_ask=_echo) as b:  # fmt: skip
        await b.wait_connected()
        crew = _crew(a)
        assert [await b.ask(i, timeout=10) for i in range(50)] == [{"plain": i} for i in range(50)]
        with pytest.raises(consensus.RemoteError) as info:
            await b.ask("raise", timeout=10)
        assert info.value.type == "ValueError" and "asked to fail" in info.value.message
        stats = a.statistics()
    assert all(" server " in name for name in handler.threads), handler.threads
    assert crew.threads <= a._server.handler_threads + 1
    assert stats.asks_served == 51 and stats.asks_open == 0


async def test_a_trio_ask_takes_the_line_back_and_it_is_lent_again(address: Address,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(thread_serve, "LEASE", 0.0)  # lent again at the first frame after trio's asks
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler) as a, \
               consensus.hotline(dial=where, name="b", on_ask=_echo) as b:  # fmt: skip
        await a.wait_connected()
        await b.wait_connected()
        crew = _crew(a)
        assert await b.ask("served", timeout=10) == {"plain": "served"}
        assert crew.recalls == 0 and not a._reader.recalled and a.statistics().recalls == 0
        assert [await a.ask(i, timeout=10) for i in range(20)] == [{"echo": i} for i in range(20)]
        assert crew.recalls == 1 and a._reader.recalled  # one take-back for the whole run of asks
        assert a.statistics().recalls == 1 and b.statistics().recalls == 0  # (b's line: trio's path)
        assert [await b.ask(i, timeout=10) for i in range(5)] == [{"plain": i} for i in range(5)]
        assert not a._reader.recalled  # lent again after the first of them, which trio read
        assert " server " not in handler.threads[1] and all(" server " in n for n in handler.threads[2:])
        async with trio.open_nursery() as nursery:  # both ways at once
            for i in range(10):
                nursery.start_soon(functools.partial(a.ask, {"a": i}, timeout=10))
                nursery.start_soon(functools.partial(b.ask, {"b": i}, timeout=10))
        stats = a.statistics()
    assert stats.asks_open == 0 and stats.stale_replies == 0
    assert stats.asks_served == 16 and stats.asks_answered == 30


async def test_a_long_handler_does_not_stop_a_served_trio_line(address: Address) -> None:
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler, handler_threads=2) as a, \
               consensus.hotline(dial=where, name="b", on_ask=_echo) as b:  # fmt: skip
        await b.wait_connected()
        crew = _crew(a)
        hung: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def hang() -> None:
                hung.append(await b.ask({"hang": 1}, timeout=30))

            nursery.start_soon(hang)
            await trio.to_thread.run_sync(handler.started.wait)
            assert [await b.ask(i, timeout=10) for i in range(10)] == [{"plain": i} for i in range(10)]
            assert await a.ask("while it hangs", timeout=10) == {"echo": "while it hangs"}
            assert crew.takeovers >= 1
            outcomes: list[Any] = []

            async def ask(i: int) -> None:
                try:
                    outcomes.append(await b.ask(i, timeout=10))
                except consensus.RemoteError as exc:
                    outcomes.append(exc.type)

            for i in range(6):  # one handler thread left for them: answered, or Busy as on trio's path
                nursery.start_soon(ask, i)
            await _until(lambda: len(outcomes) == 6)
            assert not hung
            handler.release.set()
        stats = a.statistics()
    assert hung == [{"plain": {"hang": 1}}]
    assert all(o == "Busy" or o == {"plain": o["plain"]} for o in outcomes), outcomes
    assert handler.most <= 2  # handler_threads
    assert stats.asks_served == 17 and stats.asks_answered == 1 and stats.asks_open == 0


async def test_a_served_trio_line_answers_busy_as_trios_path_does(address: Address) -> None:
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler, handler_threads=1) as a, \
               consensus.hotline(dial=where, name="b", on_ask=_echo) as b, trio.open_nursery() as nursery:  # fmt: skip
        await b.wait_connected()
        crew = _crew(a)
        hung = await _hang(nursery, b, handler)
        with pytest.raises(consensus.RemoteError) as info:
            await b.ask("one too many", timeout=10)
        assert info.value.type == "Busy"
        assert "all 1 handler threads are still running earlier calls of" in info.value.message
        assert crew.threads <= 2 and not a._reader.recalled
        await _release(handler, hung, b)
        stats = a.statistics()
    assert hung == [{"plain": {"hang": 1}}] and handler.most == 1
    assert stats.asks_served == 3 and stats.asks_open == 0


async def test_closing_a_served_trio_line_while_its_handler_runs(address: Address) -> None:
    where, handler = address("ipc"), Blocking()
    outcome: list[BaseException] = []

    async def hang(b: consensus.Hotline) -> None:
        try:
            await b.ask({"hang": 1}, timeout=30)
        except consensus.ConsensusError as exc:
            outcome.append(exc)

    async with consensus.hotline(dial=where, name="b", on_ask=_echo) as b, trio.open_nursery() as nursery:
        with trio.fail_after(10):  # the close does not wait for the handler
            async with consensus.hotline(listen=where, name="a", on_ask=handler) as a:
                await b.wait_connected()
                _crew(a)
                nursery.start_soon(hang, b)
                await trio.to_thread.run_sync(handler.started.wait)
                assert _serving("a")
            await _until(lambda: bool(outcome))
        assert isinstance(outcome[0], consensus.PeerLost), outcome
        assert _serving("a")  # the handler still runs; its answer will be dropped
        handler.release.set()
        await _until(lambda: not _serving("a"))
        assert b.statistics().stale_replies == 0


async def test_a_served_trio_line_and_a_child_that_asks_then_dies(address: Address, peers: Peers) -> None:
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler) as a:
        child = peers.start(where, "child", script="asking_agent.py")
        assert await read_line(child) == "ready"
        await a.wait_connected()
        crew = _crew(a)
        tell(child, "ask 200")  # its asks, served here, while this side asks it
        mine = [await a.ask(i, timeout=10) for i in range(100)]
        said = await read_line(child)
        assert said.startswith("asked "), said
        assert json.loads(said.removeprefix("asked ")) == [{"plain": {"i": i}} for i in range(200)]
        assert mine == [{"echo": i, "by": "child"} for i in range(100)]
        assert crew.recalls >= 1
        tell(child, "hang")
        assert await read_line(child) == "hanging"
        await trio.to_thread.run_sync(handler.started.wait)
        child.kill()  # the asker dies while the handler runs
        await a.wait_disconnected()
        handler.release.set()  # its answer has nowhere to go: dropped
        again = peers.start(where, "again", script="asking_agent.py")
        assert await read_line(again) == "ready"
        tell(again, "ask 3")
        said = await read_line(again)
        assert json.loads(said.removeprefix("asked ")) == [{"plain": {"i": i}} for i in range(3)]
        assert await a.ask("still", timeout=10) == {"echo": "still", "by": "again"}
        tell(again, "quit")
        stats = a.statistics()
    assert stats.asks_served == 203 and stats.asks_answered == 101
    assert stats.asks_open == 0 and stats.connections == 2


Op = tuple[str, int]
OPS = st.lists(st.tuples(st.sampled_from(["a asks", "b asks", "b sends", "a streams"]), st.integers(1, 4)),
               max_size=12)  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, lease=st.sampled_from([0.0, LEASE]))
def test_values_and_answers_keep_their_order_across_the_hand_overs(ops: list[Op], lease: float, address: Address,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Whoever reads the served line (its threads, trio for its asks), the values the peer
    sends reach ``receive()`` in order and every ask gets its own answer."""
    monkeypatch.setattr(thread_serve, "LEASE", lease)

    async def streamer(value: Any) -> Any:
        return value

    async def main() -> None:
        where, handler = address("ipc"), Blocking()
        sent = 0
        with trio.fail_after(30):
            async with consensus.hotline(listen=where, name="a", on_ask=handler) as a, \
                       consensus.hotline(dial=where, name="b", on_ask=_echo) as b:  # fmt: skip
                await b.wait_connected()
                await a.wait_connected()
                _crew(a)
                for op, n in ops:
                    if op == "a asks":
                        assert [await a.ask(i, timeout=10) for i in range(n)] == [{"echo": i} for i in range(n)]
                    elif op == "b asks":
                        assert [await b.ask(i, timeout=10) for i in range(n)] == [{"plain": i} for i in range(n)]
                    elif op == "b sends":
                        for _ in range(n):
                            await b.send(sent)
                            sent += 1
                    else:  # a stream asked of b: b's echo answers it with its end
                        got = [x async for x in a.ask_stream(n, timeout=10)]
                        assert got == [{"echo": n}]
                assert [await a.receive() for _ in range(sent)] == list(range(sent))
                assert a.statistics().asks_open == 0

    trio.run(main)


async def test_the_handler_bound_holds_while_trio_holds_the_line(address: Address,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The crew's handlers and those trio starts while it holds the line for its asks share
    one bound: ``handler_threads`` in all, ``Busy`` past it, whoever read the ask."""
    monkeypatch.setattr(thread_serve, "LEASE", 3600.0)  # trio keeps the line once it took it back
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler, handler_threads=1) as a, \
               consensus.hotline(dial=where, name="b", on_ask=_echo) as b, trio.open_nursery() as nursery:  # fmt: skip
        await b.wait_connected()
        await a.wait_connected()
        crew = _crew(a)
        hung = await _hang(nursery, b, handler)  # the crew runs it (its one thread)
        assert await a.ask("take the line", timeout=10) == {"echo": "take the line"}
        assert a._reader.recalled and crew.recalls == 1  # trio reads now, the handler still runs
        with pytest.raises(consensus.RemoteError) as info:
            await b.ask("one too many", timeout=10)
        assert info.value.type == "Busy"
        await _release(handler, hung, b)
        stats = a.statistics()
    assert hung == [{"plain": {"hang": 1}}] and handler.most == 1
    assert stats.asks_served == 3 and stats.asks_open == 0


async def test_the_crew_counts_the_handlers_trio_started_when_lent_again(address: Address,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(thread_serve, "LEASE", 3600.0)
    where, handler = address("ipc"), Blocking()
    async with consensus.hotline(listen=where, name="a", on_ask=handler, handler_threads=1) as a, \
               consensus.hotline(dial=where, name="b", on_ask=_echo) as b, trio.open_nursery() as nursery:  # fmt: skip
        await b.wait_connected()
        await a.wait_connected()
        assert await a.ask("take the line", timeout=10) == {"echo": "take the line"}
        assert a._reader.recalled
        hung = await _hang(nursery, b, handler)  # one of trio's worker threads runs it
        assert " server " not in handler.threads[0]
        monkeypatch.setattr(thread_serve, "LEASE", 0.0)  # lent again after the next frame trio reads
        for what in ("read by trio", "read by the crew"):
            with pytest.raises(consensus.RemoteError) as info:
                await b.ask(what, timeout=10)
            assert info.value.type == "Busy", what
        assert not a._reader.recalled
        await _release(handler, hung, b)
        stats = a.statistics()
    assert hung == [{"plain": {"hang": 1}}] and handler.most == 1
    assert stats.asks_served == 4 and stats.asks_open == 0
