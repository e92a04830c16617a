"""A ``blocking.hotline`` asker that reads the line itself while it waits (the baton,
``consensus/hotline/thread_asks.py``): several threads at once, Ctrl-C while reading, the
peer going away while a thread reads, values and asks for this side arriving meanwhile,
and trio taking the line back when nobody asks."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _bridge import assert_no_bridge_threads, wait_ready
from conftest import Peers, tell

import consensus
from consensus import blocking
from consensus.hotline import reader, thread_serve
from consensus.hotline.reader import LEASE
from consensus.hotline.thread_asks import Baton, ThreadAsks, attached

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that read a line while they asked, one per reading."""
    names: list[str] = []
    original = ThreadAsks._read

    def spy(asks: ThreadAsks, me: Any, deadline: float) -> bool:
        names.append(threading.current_thread().name)
        return original(asks, me, deadline)

    monkeypatch.setattr(ThreadAsks, "_read", spy)
    return names


@pytest.fixture
def long_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trio leaves the line to the threads between asks however slow the machine is."""
    monkeypatch.setattr(reader, "LEASE", 60.0)


def _to_threads(line: Any, value: Any = "warm") -> ThreadAsks:
    """Ask until trio has stood aside (the first ask of a line may go before the peer is
    known to this side's threads: then it takes the trio path)."""
    asks = attached(line._target)
    assert asks is not None
    for _ in range(100):
        line.ask(value, timeout=10)
        if asks.baton is Baton.ASIDE:
            return asks
    raise AssertionError(f"trio did not stand aside: {asks.baton}")


def _until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {within} s"
        time.sleep(0.001)


def test_a_run_of_asks_reads_the_line_and_trio_takes_it_back(address: Callable[[str], str],
                                                               readers: list[str]) -> None:  # fmt: skip
    where = address("ipc")
    with blocking.hotline(listen=where, on_ask=lambda v: v), blocking.hotline(dial=where) as line:
        line.wait_connected()
        asks = attached(line._target)
        assert asks is not None and asks.baton is Baton.TRIO
        answers = [line.ask(i, timeout=10) for i in range(200)]
        assert asks.takes >= 150  # (the first ask waits on trio; a lease may end in a pause)
        _until(lambda: asks.baton is Baton.TRIO, "read by trio again", within=100 * LEASE)
        assert line.ask("again", timeout=10) == "again"  # through trio's reader, then the baton
        assert [line.ask(i, timeout=10) for i in range(3)] == [0, 1, 2]
        stats = line.statistics()
    assert answers == list(range(200))
    assert set(readers) == {"MainThread"}
    assert stats.asks_answered == 204 and stats.asks_open == 0 and stats.stale_replies == 0


def test_several_threads_ask_at_once_and_hand_the_baton_on(address: Callable[[str], str],
                                                           readers: list[str]) -> None:  # fmt: skip
    where = address("ipc")

    def on_ask(value: Any) -> Any:
        if value[1] % 7 == 0:
            time.sleep(0.002)  # some answers come late: other threads wait behind the reader
        return value

    with blocking.hotline(listen=where, on_ask=on_ask, handler_threads=8), blocking.hotline(dial=where) as line:
        line.wait_connected()

        def asks(n: int) -> list[Any]:
            return [line.ask([n, i], timeout=10) for i in range(60)]

        with ThreadPoolExecutor(6, thread_name_prefix="asker") as pool:
            answers = list(pool.map(asks, range(6)))
        stats = line.statistics()
    assert answers == [[[n, i] for i in range(60)] for n in range(6)]
    assert stats.asks_answered == 360 and stats.asks_open == 0 and stats.stale_replies == 0


def test_the_reader_hands_others_their_answers_and_the_baton_to_one_still_waiting(
        address: Callable[[str], str], readers: list[str], long_lease: None) -> None:  # fmt: skip
    where = address("ipc")

    def on_ask(value: Any) -> Any:
        time.sleep(value)
        return value

    with blocking.hotline(listen=where, on_ask=on_ask, handler_threads=4), blocking.hotline(dial=where) as line:
        line.wait_connected()
        _to_threads(line, 0)  # (through trio's reader) then trio stands aside
        readers.clear()
        before = line.statistics().asks_answered
        with ThreadPoolExecutor(3, thread_name_prefix="asker") as pool:
            first = pool.submit(line.ask, 0.4, timeout=10)  # takes the baton and reads
            _until(lambda: readers == ["asker_0"], "reading in the first asker")
            quick = pool.submit(line.ask, 0.01, timeout=10)  # answered while the first reads
            assert quick.result(timeout=10) == 0.01
            later = pool.submit(line.ask, 0.8, timeout=10)  # still waiting when the first is answered
            assert first.result(timeout=10) == 0.4
            assert later.result(timeout=10) == 0.8
        stats = line.statistics()
    assert len(readers) == 2 and readers[0] == "asker_0" != readers[1]  # the baton went to the one waiting
    assert stats.asks_answered - before == 3 and stats.asks_open == 0


def test_a_value_and_an_ask_for_this_side_arrive_while_a_thread_reads(peers: Peers, address: Callable[[str], str],
                                                                      readers: list[str], long_lease: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(thread_serve, "SERVE_IN_THREADS", False)  # (a served line's crew reads it: test_blocking_serve)
    where = address("ipc")
    child = peers.start(where, "--listen", "--name", "far", script="hotline_agent.py")
    with blocking.hotline(dial=where, name="near", on_ask=lambda v: {"near": v}) as line:
        line.wait_connected()
        wait_ready(child)
        _to_threads(line)
        readers.clear()
        done = threading.Event()

        def slow_ask() -> Any:
            try:
                return line.ask({"sleep": 0.5}, timeout=10)
            finally:
                done.set()

        with ThreadPoolExecutor(1, thread_name_prefix="asker") as pool:
            answer = pool.submit(slow_ask)
            _until(lambda: any(name.startswith("asker") for name in readers), "reading in the asker")
            for i in range(20):
                line.send({"n": i})  # the child sends each back: they come while the asker reads
            got = [line.receive() for _ in range(20)]
            assert not done.is_set()  # (they came in while it was still reading)
            assert answer.result(timeout=10) == {"echo": {"sleep": 0.5}, "by": "far"}
        stats = line.statistics()
    tell(child, "quit")
    assert_no_bridge_threads()
    assert got == [{"n": i} for i in range(20)]
    assert stats.asks_open == 0 and stats.stale_replies == 0 and stats.malformed == 0


def test_the_peer_going_away_while_a_thread_reads_fails_its_ask(peers: Peers, address: Callable[[str], str],
                                                                readers: list[str], long_lease: None) -> None:  # fmt: skip
    where = address("ipc")
    child = peers.start(where, "--listen", "--name", "far", script="hotline_agent.py")
    with blocking.hotline(dial=where, name="near") as line:
        line.wait_connected()
        wait_ready(child)
        asks = _to_threads(line)
        readers.clear()
        threading.Timer(0.2, child.kill).start()
        started = time.monotonic()
        with pytest.raises(consensus.PeerLost):
            line.ask({"sleep": 30}, timeout=30)
        assert time.monotonic() - started < 10  # the connection's end, not the ask's timeout
        assert readers.count("MainThread") == 1  # it was reading the line when the peer went
        line.wait_disconnected()
        _until(lambda: asks.baton is Baton.TRIO, "read by trio again")  # the next hello is trio's
        with pytest.raises(consensus.Timeout):  # no peer: the ask waits for one, in trio
            line.ask("anyone?", timeout=0.2)
        stats = line.statistics()
    assert stats.asks_failed == 1 and stats.asks_open == 0


def test_ctrl_c_while_the_asker_reads_the_line(address: Callable[[str], str], readers: list[str],
                                               long_lease: None) -> None:  # fmt: skip
    where = address("ipc")
    main = threading.main_thread().ident
    assert main is not None
    release, interrupted = threading.Event(), threading.Event()

    def on_ask(value: Any) -> Any:
        if value == "interrupt me":  # Ctrl-C while the asker polls the line for this answer
            while not release.wait(0.05):  # (again until it lands: see test_blocking_line)
                signal.pthread_kill(main, signal.SIGINT)
        return value

    def once(signum: int, frame: Any) -> None:
        if not interrupted.is_set():
            interrupted.set()
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, once)
    try:
        with blocking.hotline(listen=where, on_ask=on_ask), blocking.hotline(dial=where, name="near") as line:
            line.wait_connected()
            asks = _to_threads(line)
            readers.clear()
            with pytest.raises(KeyboardInterrupt):
                line.ask("interrupt me", timeout=30)
            assert readers == ["MainThread"] and asks._holder is None  # it read, and let go
            release.set()  # its answer comes now, and is stale
            after = [line.ask(f"after {i}", timeout=10) for i in range(3)]
            deadline = time.monotonic() + 30
            while (stats := line.statistics()).stale_replies < 1 and time.monotonic() < deadline:
                line.ask("poke", timeout=10)  # (an asker reads the line: the stale answer with it)
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)
    assert after == ["after 0", "after 1", "after 2"]
    assert stats.asks_open == 0 and stats.stale_replies == 1 and stats.asks_expired == 1


def test_closing_the_line_while_a_thread_reads_it(address: Callable[[str], str], readers: list[str],
                                                  long_lease: None) -> None:  # fmt: skip
    where = address("ipc")
    started = threading.Event()

    def on_ask(value: Any) -> Any:
        if value == "slow":
            started.set()
            time.sleep(1.0)
        return value

    errors: list[BaseException] = []
    with blocking.hotline(listen=where, on_ask=on_ask):
        with blocking.hotline(dial=where) as line:
            line.wait_connected()
            _to_threads(line)

            def ask() -> None:
                try:
                    line.ask("slow", timeout=30)
                except BaseException as exc:  # noqa: BLE001 - what the asker saw
                    errors.append(exc)

            asker = threading.Thread(target=ask, name="asker")
            asker.start()
            assert started.wait(10)
        asker.join(10)
    assert len(errors) == 1 and isinstance(errors[0], consensus.Closed)
    assert "asker" in readers


def test_trio_reads_again_at_once_for_a_stream_or_a_value(peers: Peers, address: Callable[[str], str],
                                                          long_lease: None) -> None:  # fmt: skip
    where = address("ipc")
    child = peers.start(where, "--listen", "--name", "far", script="hotline_agent.py")
    with blocking.hotline(dial=where, name="near") as line:
        line.wait_connected()
        wait_ready(child)
        asks = _to_threads(line)  # nobody reads now, and trio's lease would last a minute
        chunks = list(line.ask_stream({"stream": 3}, timeout=10))  # (a stream takes the trio path)
        assert asks.baton is Baton.TRIO
        _to_threads(line)
        line.send("back to me")
        assert line.receive() == "back to me"
        assert line.ask("and on", timeout=10) == {"echo": "and on", "by": "far"}
        stats = line.statistics()
    tell(child, "quit")
    assert chunks == [{"chunk": i, "by": "far"} for i in range(3)]
    assert stats.asks_open == 0 and stats.stale_replies == 0


def test_a_flood_of_values_nobody_receives_gives_the_line_back_to_trio(peers: Peers, address: Callable[[str], str],
                                                                       long_lease: None) -> None:  # fmt: skip
    where = address("ipc")
    child = peers.start(where, "--listen", "--name", "far", script="hotline_agent.py")
    with blocking.hotline(dial=where, name="near") as line:
        line.wait_connected()
        wait_ready(child)
        asks = _to_threads(line)
        with ThreadPoolExecutor(1, thread_name_prefix="asker") as pool:
            answer = pool.submit(line.ask, {"hold": True}, timeout=90)  # answered once released
            _until(lambda: asks.baton is Baton.THREAD, "read by the asker")
            for i in range(600):
                line.send(i)  # the child sends each back while the asker reads; nobody receives them yet
            # The asker hands them to trio, whose backlog fills (BACKLOG); only then is the
            # answer let go, so the asker cannot have it before the backlog stops it however
            # slowly each side runs (it gives the line back at the latest on that frame).
            _until(lambda: asks.yields >= 1 or asks._full, "trio's backlog full", within=60)
            tell(child, "release")
            _until(lambda: asks.yields >= 1, "given back to trio", within=60)  # the backlog stopped the reader
            got = [line.receive() for _ in range(600)]
            assert answer.result(timeout=60) == {"echo": {"hold": True}, "by": "far"}
        stats = line.statistics()
    tell(child, "quit")
    assert got == list(range(600))
    assert stats.asks_open == 0 and stats.stale_replies == 0
    assert stats.reading_paused >= 1  # the give-back is counted where users look


def test_an_ask_with_a_very_long_timeout(address: Callable[[str], str], long_lease: None) -> None:
    where = address("ipc")
    with blocking.hotline(listen=where, on_ask=lambda v: v), blocking.hotline(dial=where) as line:
        line.wait_connected()
        assert line.ask("first", timeout=1e12) == "first"  # (waits on its lock: past what poll takes)
        _to_threads(line)
        assert line.ask("read", timeout=1e12) == "read"
