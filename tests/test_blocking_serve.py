"""A ``blocking.hotline`` whose plain ``on_ask`` is served by the threads that read the line
(``consensus/hotline/thread_serve.py``, leader/followers): concurrency with slow handlers,
failures, the asker leaving mid-handler, closing with handlers running, the books, asks and
values on the same line, trio's backlog, a full queue, and a failing thread giving the line
back to trio. Against child processes (``tests/bridge_agent.py``, ``tests/hotline_agent.py``)
and, where the test must look inside the answering side, two lines in one process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import trio
from _bridge import agent, assert_no_bridge_threads, wait_ready
from conftest import Peers, tell

import consensus
from consensus import blocking
from consensus.hotline import serve_crew
from consensus.hotline.thread_asks import Baton, attached
from consensus.hotline.thread_serve import ThreadServer
from consensus.runtime.watch import Watch

pytestmark = pytest.mark.timeout(120)


def _crew(line: Any) -> ThreadServer:
    crew = attached(line._target)
    assert isinstance(crew, ThreadServer), crew
    return crew


def _serving_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("hotline ") and " server " in t.name]


def _until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {within} s"
        time.sleep(0.001)


def _read(child: Any) -> str:
    assert child.stdout is not None
    return str(child.stdout.readline().rstrip("\n"))


def test_a_slow_handler_in_a_child_does_not_stop_its_line(peers: Peers, address: Callable[[str], str]) -> None:
    where = address("ipc")
    child = agent(peers, "blocking", "line", where, "far")
    wait_ready(child)
    with blocking.hotline(dial=where, name="near", heartbeat=0.2) as line:
        line.wait_connected()
        assert line.ask("warm", timeout=10) == {"echo": "warm", "by": "far"}
        with ThreadPoolExecutor(2, thread_name_prefix="asker") as pool:
            slow = pool.submit(line.ask, {"sleep": 4.0}, timeout=30)
            quick = [line.ask(i, timeout=10) for i in range(20)]
            assert not slow.done()  # the quick ones were answered while the slow handler ran
            assert slow.result(timeout=30) == {"echo": {"sleep": 4.0}, "by": "far"}
        with pytest.raises(consensus.RemoteError) as info:
            line.ask({"raise": True}, timeout=10)
        assert info.value.type == "ValueError" and "far was asked to fail" in info.value.message
        time.sleep(1.0)  # five heartbeats: the child's pings and pongs go on through its threads
        stats = line.statistics()
    tell(child, "quit")
    assert quick == [{"echo": i, "by": "far"} for i in range(20)]
    assert stats.asks_answered == 23 and stats.asks_open == 0 and stats.silent_disconnects == 0
    assert stats.connections == 1


def test_a_trio_asker_and_a_blocking_answerer(peers: Peers, address: Callable[[str], str]) -> None:
    where = address("ipc")
    child = agent(peers, "blocking", "line", where, "far")
    wait_ready(child)

    async def main() -> tuple[list[Any], Any, Any]:
        async with consensus.hotline(dial=where, name="near") as line:
            await line.wait_connected()
            answers: list[Any] = []
            async with trio.open_nursery() as nursery:
                slow: list[Any] = []

                async def ask_slowly() -> None:
                    slow.append(await line.ask({"sleep": 3.0}, timeout=10))

                nursery.start_soon(ask_slowly)
                for i in range(50):
                    answers.append(await line.ask(i, timeout=10))
                assert not slow  # answered while the slow handler ran
            with pytest.raises(consensus.RemoteError):
                await line.ask({"raise": True}, timeout=10)
            return answers, slow, line.statistics()

    answers, slow, stats = trio.run(main)
    tell(child, "quit")
    assert answers == [{"echo": i, "by": "far"} for i in range(50)]
    assert slow == [{"echo": {"sleep": 3.0}, "by": "far"}]
    assert stats.asks_answered == 52 and stats.asks_open == 0


def test_handlers_run_at_most_handler_threads_at_once_and_none_is_lost(address: Callable[[str], str]) -> None:
    where = address("ipc")
    lock = threading.Lock()
    running, most, release = [0], [0], threading.Event()

    def on_ask(value: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(30)
        with lock:
            running[0] -= 1
        if value == "raise":
            raise KeyError("asked to")
        return value

    with blocking.hotline(listen=where, on_ask=on_ask, handler_threads=2) as server, \
            blocking.hotline(dial=where) as line:  # fmt: skip
        line.wait_connected()
        crew = _crew(server)
        with ThreadPoolExecutor(8, thread_name_prefix="asker") as pool:
            try:
                answers = [pool.submit(line.ask, i, timeout=30) for i in range(7)]
                failed = pool.submit(line.ask, "raise", timeout=30)
                _until(lambda: len(crew._queue) == 6, "six asks queued behind the two handlers")
            finally:
                release.set()
            got = sorted(a.result(timeout=30) for a in answers)
            with pytest.raises(consensus.RemoteError, match="asked to"):
                failed.result(timeout=30)
        served = server.statistics()
        asked = line.statistics()
        threads = crew.threads
    assert got == list(range(7))
    assert most[0] == 2 and threads <= 3  # two handlers, and the one reading the line
    assert crew.takeovers >= 2  # the watch took the line from each handler that blocked
    assert served.asks_served == 8 and served.sent == asked.received
    assert asked.asks_answered == 8 and asked.asks_open == 0
    assert not _serving_threads()


def test_values_pings_and_asks_of_its_own_on_a_served_line(peers: Peers, address: Callable[[str], str]) -> None:
    where = address("ipc")
    child = peers.start(where, "--dial", "--name", "far", "--heartbeat", "0.2", script="hotline_agent.py")
    with blocking.hotline(listen=where, name="near", heartbeat=0.2, on_ask=lambda v: {"near": v}) as line:
        crew = _crew(line)
        line.wait_connected()
        wait_ready(child)

        def asks(n: int) -> list[Any]:
            return [line.ask([n, i], timeout=10) for i in range(30)]

        with ThreadPoolExecutor(3, thread_name_prefix="asker") as pool:
            answers = list(pool.map(asks, range(3)))
        for i in range(100):
            line.send({"n": i})  # the child sends each back: read by the crew, received through trio
        got = [line.receive() for _ in range(100)]
        chunks = list(line.ask_stream({"stream": 3}, timeout=10))  # (a stream takes the trio path)
        time.sleep(1.0)  # five heartbeats
        stats = line.statistics()
        assert crew.baton is Baton.SERVED
    tell(child, "quit")
    assert answers == [[{"echo": [n, i], "by": "far"} for i in range(30)] for n in range(3)]
    assert got == [{"n": i} for i in range(100)]
    assert chunks == [{"chunk": i, "by": "far"} for i in range(3)]
    assert stats.asks_answered == 91 and stats.asks_open == 0 and stats.stale_replies == 0
    assert stats.silent_disconnects == 0 and stats.connections == 1
    assert not _serving_threads()


def test_a_handler_that_asks_back_on_its_own_line(address: Callable[[str], str]) -> None:
    where = address("ipc")
    lines: list[Any] = []

    def on_ask(value: Any) -> Any:  # asks the peer back, on the line its ask came on
        return {"asked": value, "back": lines[0].ask({"inner": value}, timeout=10)}

    with blocking.hotline(listen=where, name="near", on_ask=on_ask) as near, \
            blocking.hotline(dial=where, name="far", on_ask=lambda v: {"far": v}) as far:  # fmt: skip
        lines.append(near)
        far.wait_connected()
        answers = [far.ask(i, timeout=10) for i in range(20)]
        crew = _crew(near)
        stats = near.statistics()
    assert answers == [{"asked": i, "back": {"far": {"inner": i}}} for i in range(20)]
    assert crew.takeovers == 0  # the reading passed on when the handler asked, not after PATIENCE
    assert stats.asks_served == 20 and stats.asks_answered == 20 and stats.asks_open == 0
    assert not _serving_threads()


def test_the_asker_leaving_mid_handler_drops_its_answer_and_the_line_goes_on(
        peers: Peers, address: Callable[[str], str]) -> None:  # fmt: skip
    where = address("ipc")
    started, release = threading.Event(), threading.Event()

    def on_ask(value: Any) -> Any:
        if value == "slow":
            started.set()
            release.wait(30)
        return value

    with blocking.hotline(listen=where, name="near", on_ask=on_ask) as line:
        first = agent(peers, "blocking", "asker", where, "first")
        wait_ready(first)
        tell(first, 'ask "slow"')
        assert _read(first) == "asking"
        assert started.wait(10)
        first.kill()
        first.wait(10)
        line.wait_disconnected()
        release.set()  # its answer has nowhere to go
        second = agent(peers, "blocking", "asker", where, "second")
        wait_ready(second)
        tell(second, 'ask "again"')
        assert _read(second) == "asking"
        assert _read(second) == 'answer "again"'
        _until(lambda: line.statistics().asks_served == 1, "the second ask counted")
        tell(second, "quit")
        second.wait(10)
        stats = line.statistics()
    assert stats.asks_served == 1 and stats.connections == 2
    assert not _serving_threads()


def test_closing_the_line_with_handlers_running(address: Callable[[str], str]) -> None:
    where = address("ipc")
    started = threading.Semaphore(0)
    finished: list[Any] = []

    def on_ask(value: Any) -> Any:
        started.release()
        time.sleep(0.5)
        finished.append(value)
        return value

    errors: list[BaseException] = []
    with blocking.hotline(dial=where, name="asker") as asker:
        with blocking.hotline(listen=where, on_ask=on_ask) as server:
            asker.wait_connected()
            crew = _crew(server)

            def ask(i: int) -> None:
                try:
                    asker.ask(i, timeout=30)
                except BaseException as exc:  # noqa: BLE001 - what the asker saw
                    errors.append(exc)

            askers = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
            for t in askers:
                t.start()
            for _ in askers:
                assert started.acquire(timeout=10)
        # the with waited for the handlers: every thread of the crew has ended
        assert not _serving_threads() and sorted(finished) == [0, 1]
        assert crew.baton is Baton.CLOSED and all(h.thread is not None and not h.thread.is_alive()
                                                 for h in crew._hands)  # fmt: skip
        for t in askers:
            t.join(10)
    assert len(errors) == 2 and all(isinstance(e, consensus.PeerLost | consensus.Timeout) for e in errors)
    assert_no_bridge_threads()


def test_a_flood_of_values_nobody_receives_pauses_the_crew(peers: Peers, address: Callable[[str], str]) -> None:
    where = address("ipc")
    child = peers.start(where, "--dial", "--name", "far", script="hotline_agent.py")
    with blocking.hotline(listen=where, name="near", on_ask=lambda v: v) as line:
        crew = _crew(line)
        line.wait_connected()
        wait_ready(child)
        for i in range(600):
            line.send(i)  # the child sends each back; nobody receives them yet
        _until(lambda: crew.pauses >= 1, "paused for trio's backlog")
        got = [line.receive() for _ in range(600)]
        assert line.ask("after", timeout=10) == {"echo": "after", "by": "far"}
        stats = line.statistics()
    tell(child, "quit")
    assert got == list(range(600))
    assert stats.reading_paused == crew.held_back() >= 1


def test_a_full_queue_stops_the_reading_until_a_handler_is_free(address: Callable[[str], str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(serve_crew, "QUEUE", 3)
    where = address("ipc")
    release = threading.Event()

    def on_ask(value: Any) -> Any:
        release.wait(30)
        return value

    with blocking.hotline(listen=where, on_ask=on_ask, handler_threads=1) as server, \
            blocking.hotline(dial=where) as line:  # fmt: skip
        line.wait_connected()
        crew = _crew(server)
        with ThreadPoolExecutor(8, thread_name_prefix="asker") as pool:
            try:
                answers = [pool.submit(line.ask, i, timeout=30) for i in range(8)]
                _until(lambda: crew.stalls == 1, "stopped reading for the full queue")
                assert len(crew._queue) == 3  # the other four wait in NNG, not in memory
            finally:
                release.set()
            got = sorted(a.result(timeout=30) for a in answers)
        stats = server.statistics()
    assert got == list(range(8)) and stats.asks_served == 8
    assert stats.reading_paused >= 1  # the stall, counted where users look


def test_a_crew_thread_that_fails_gives_the_line_back_to_trio(address: Callable[[str], str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    where = address("ipc")
    failed = threading.Event()
    original = ThreadServer._job

    def broken(self: ThreadServer, got: Any) -> Any:  # the first ask fails, as a bug of ours would
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug")
        return original(self, got)

    monkeypatch.setattr(ThreadServer, "_job", broken)
    caplog.set_level(logging.ERROR, "consensus.hotline")
    with blocking.hotline(listen=where, on_ask=lambda v: v) as server, blocking.hotline(dial=where) as line:
        line.wait_connected()
        crew = _crew(server)
        first = line.ask("first", timeout=10)  # the crew fails on it: trio answers it
        assert failed.is_set() and crew.baton is not Baton.SERVED
        after = [line.ask(i, timeout=10) for i in range(20)]
        stats = server.statistics()
    assert first == "first" and after == list(range(20))
    assert stats.asks_served == 21
    assert "a serving thread failed" in caplog.text
    assert not _serving_threads()


def test_a_sealed_line_and_an_asyncio_handler_keep_their_paths(address: Callable[[str], str]) -> None:
    where = address("ipc")
    with blocking.hotline(listen=where, on_ask=lambda v: v, secret="s3cret") as sealed, \
            blocking.hotline(dial=where, secret="s3cret") as line:  # fmt: skip
        assert attached(sealed._target) is None
        line.wait_connected()
        assert line.ask("sealed", timeout=10) == "sealed"
    other = address("ipc")
    with blocking.hotline(listen=other) as by_hand:
        assert not isinstance(attached(by_hand._target), ThreadServer)  # no on_ask: nothing to serve


def test_a_watch_made_leader_just_after_its_look_timed_out_keeps_no_wake(address: Callable[[str], str]) -> None:
    # The race: the watch's timed look ends, then a handler asking on its own line makes it
    # the leader (``_hand_on``) and pokes it before the watch takes the lock. That poke must
    # not stay pending: a leader later gone idle would wake from it at once, find itself
    # neither leader nor watch, end while still listed idle, and be promoted dead (the line
    # deaf until the peer is dropped for silence). Found by a stress run, 1 in ~3 at 2-4 threads.
    where = address("ipc")
    timed_out, handed_on = threading.Event(), threading.Event()
    watching: list[Any] = []
    lines: list[Any] = []

    class GatedWatch(Watch):
        def look(self, hand: Any) -> bool:  # the first look that times out waits for the hand-on
            poked = super().look(hand)
            if not poked and not timed_out.is_set():
                watching.append(hand)
                timed_out.set()
                assert handed_on.wait(10)
            return poked

    def on_ask(value: Any) -> Any:
        assert timed_out.wait(10)  # run inline; the watch looked a whole period meanwhile
        back = lines[0].ask({"inner": value}, timeout=10)  # the watch leads now, and read this answer
        return {"back": back, "wake pending": not watching[0].wake.locked()}

    with blocking.hotline(listen=where, name="near", on_ask=on_ask) as near, \
            blocking.hotline(dial=where, name="far", on_ask=lambda v: {"far": v}) as far:  # fmt: skip
        lines.append(near)
        far.wait_connected()
        crew = _crew(near)
        crew._watch = GatedWatch()  # (before any handler: nobody watches yet)
        hand_on = crew._hand_on

        def gated_hand_on() -> None:
            hand_on()
            handed_on.set()

        crew._hand_on = gated_hand_on  # type: ignore[method-assign]
        answer = far.ask("trap", timeout=20)
    assert answer == {"back": {"far": {"inner": "trap"}}, "wake pending": False}
    assert crew.takeovers == 0  # the reading passed on through the hand-on, not a takeover
    assert not _serving_threads()
