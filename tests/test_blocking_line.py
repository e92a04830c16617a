"""A ``blocking.hotline`` whose asks leave from the caller's thread (``consensus/hotline/thread_asks.py``).

The caller's thread sends each ask itself and waits on a lock that trio's receive loop
releases (then, while asks keep coming, it reads the line itself: ``test_blocking_baton.py``).
Against trio children (``tests/hotline_agent.py``, which echoes
every value it receives) and two lines in one process.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _bridge import assert_no_bridge_threads, spy_thread_sends, wait_ready
from conftest import Peers, tell

import consensus
from consensus import blocking
from consensus.hotline.thread_asks import attached

pytestmark = pytest.mark.timeout(120)


def _child(peers: Peers, where: str, *options: str) -> Any:
    return peers.start(where, "--listen", "--name", "far", *options, script="hotline_agent.py")


def test_asks_from_several_threads_values_and_pings_on_one_line(peers: Peers, address: Callable[[str], str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    senders: set[str] = set()

    def spy(send: Callable[[], int | None]) -> int | None:
        senders.add(threading.current_thread().name)
        return send()

    spy_thread_sends(monkeypatch, spy)
    where = address("ipc")
    child = _child(peers, where, "--heartbeat", "0.2")
    with blocking.hotline(dial=where, name="near", heartbeat=0.2) as line:
        assert attached(line._target) is not None
        line.wait_connected()
        wait_ready(child)

        def asks(n: int) -> list[Any]:
            return [line.ask([n, i], timeout=10) for i in range(50)]

        def values() -> list[Any]:
            for i in range(200):
                line.send({"n": i})
            return [line.receive() for _ in range(200)]

        with ThreadPoolExecutor(5, thread_name_prefix="asker") as pool:
            received = pool.submit(values)
            answers = list(pool.map(asks, range(4)))
            got = received.result(timeout=30)
        time.sleep(1.0)  # five heartbeats with nobody asking
        still = line.ask("still there?", timeout=10)
        stats = line.statistics()
    tell(child, "quit")
    assert_no_bridge_threads()
    assert got == [{"n": i} for i in range(200)]
    assert answers == [[{"echo": [n, i], "by": "far"} for i in range(50)] for n in range(4)]
    assert still == {"echo": "still there?", "by": "far"}
    assert stats.asks_open == 0 and stats.asks_answered == 201 and stats.stale_replies == 0
    assert stats.silent_disconnects == 0 and stats.connections == 1 and stats.sent >= 401
    assert {name.split("_")[0] for name in senders} == {"asker", "MainThread"}  # the askers' own threads


def test_a_timeout_is_the_consensus_timeout_and_the_line_goes_on(
    peers: Peers, address: Callable[[str], str]
) -> None:
    where = address("ipc")
    child = _child(peers, where)
    with blocking.hotline(dial=where, name="near") as line:
        line.wait_connected()
        wait_ready(child)
        with pytest.raises(consensus.Timeout, match="no reply within 0.2 s"):
            line.ask({"sleep": 0.5}, timeout=0.2)
        with pytest.raises(ValueError, match="finite number of seconds"):
            line.ask("x", timeout=-1)
        after = line.ask("after", timeout=10)
        with pytest.raises(consensus.RemoteError, match="far was asked to fail"):
            line.ask({"raise": True}, timeout=10)
        time.sleep(0.5)  # the late answer comes, and is stale
        stats = line.statistics()
    tell(child, "quit")
    assert after == {"echo": "after", "by": "far"}
    assert stats.asks_expired == 1 and stats.asks_answered == 2 and stats.stale_replies == 1
    assert stats.asks_open == 0


def test_a_peer_that_dies_mid_ask_fails_it_with_peer_lost(
    peers: Peers, address: Callable[[str], str]
) -> None:
    where = address("ipc")
    child = _child(peers, where)
    with blocking.hotline(dial=where, name="near") as line:
        line.wait_connected()
        wait_ready(child)
        threading.Timer(0.1, child.kill).start()
        started = time.monotonic()
        with pytest.raises(consensus.PeerLost):
            line.ask({"sleep": 30}, timeout=30)
        assert time.monotonic() - started < 10  # the connection's end, not the ask's timeout
        line.wait_disconnected()
        with pytest.raises(consensus.Timeout):  # no peer: the ask waits for one, in trio
            line.ask("anyone?", timeout=0.2)
        stats = line.statistics()
    assert stats.asks_failed == 1 and stats.asks_open == 0


def test_closing_the_line_fails_an_ask_in_another_thread(address: Callable[[str], str]) -> None:
    where = address("ipc")
    started = threading.Event()

    def slow(value: Any) -> Any:
        started.set()
        time.sleep(1.0)
        return value

    errors: list[BaseException] = []
    with blocking.hotline(listen=where, on_ask=slow):
        with blocking.hotline(dial=where) as line:
            line.wait_connected()

            def ask() -> None:
                try:
                    line.ask("x", timeout=30)
                except BaseException as exc:  # noqa: BLE001 - what the asker saw
                    errors.append(exc)

            asker = threading.Thread(target=ask)
            asker.start()
            assert started.wait(10)
        asker.join(10)
    assert len(errors) == 1 and isinstance(errors[0], consensus.Closed)


def test_a_sealed_line_keeps_the_trio_path(address: Callable[[str], str]) -> None:
    where = address("ipc")
    with blocking.hotline(listen=where, on_ask=lambda v: v, secret="s3cret"), \
            blocking.hotline(dial=where, secret="s3cret") as line:  # fmt: skip
        assert attached(line._target) is None
        line.wait_connected()
        assert line.ask("sealed", timeout=10) == "sealed"


def test_ctrl_c_ends_a_waiting_ask_and_the_line_goes_on(address: Callable[[str], str]) -> None:
    where = address("ipc")
    main = threading.main_thread().ident
    assert main is not None
    release, interrupted = threading.Event(), threading.Event()

    def on_ask(value: Any) -> Any:
        if value == "interrupt me":  # Ctrl-C while the asker waits for this very answer
            # Again until it lands: CPython checks for signals before a thread blocks on a
            # lock, not atomically with it, so a SIGINT in that window wakes nobody (as a
            # user presses Ctrl-C twice). Later ones are ignored by the handler below.
            while not release.wait(0.05):
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
            with pytest.raises(KeyboardInterrupt):
                line.ask("interrupt me", timeout=30)
            release.set()  # its answer comes now, and is stale
            after = line.ask("after", timeout=10)
            deadline = time.monotonic() + 30
            while (stats := line.statistics()).stale_replies < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)
    assert after == "after"
    assert stats.asks_open == 0 and stats.stale_replies == 1


def test_ctrl_c_before_the_ask_left_leaves_no_open_ask(address: Callable[[str], str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    where = address("ipc")
    calls = 0

    def interrupted_once(send: Callable[[], int | None]) -> int | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt  # as if Ctrl-C came between registering the ask and sending it
        return send()

    with blocking.hotline(listen=where, on_ask=lambda v: v), blocking.hotline(dial=where) as line:
        line.wait_connected()
        spy_thread_sends(monkeypatch, interrupted_once)
        with pytest.raises(KeyboardInterrupt):
            line.ask("lost", timeout=10)
        after = line.ask("after", timeout=10)
        stats = line.statistics()
    assert after == "after" and calls >= 2  # (the answer leaves the same way)
    assert stats.asks_open == 0 and stats.asks_answered == 1
