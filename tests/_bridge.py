"""What the consensus.aio and consensus.blocking tests share: child agents, their output
read from asyncio, a deadline around asyncio.run, and the check that no bridge thread is left."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from conftest import Peers

from patterns import Pair

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], seconds: float = 60.0) -> T:
    """``asyncio.run(coro)`` under ``asyncio.timeout(seconds)``; then no bridge thread is left."""

    async def under_deadline() -> T:
        async with asyncio.timeout(seconds):
            return await coro

    result = asyncio.run(under_deadline())
    assert_no_bridge_threads()
    return result


THREAD_SENDS = ("send_shaped_threadsafe", "send_fields_threadsafe")
"""The thread-safe sends of an ask or an answer from another thread than trio's (one call per frame)."""


def spy_thread_sends(monkeypatch: pytest.MonkeyPatch, spy: Callable[[Callable[[], int | None]], int | None]) -> None:
    """Route every thread-safe send of a frame through ``spy(send)``, in the sending thread:
    ``send()`` sends it (its size, or None: handed to trio)."""
    for name in THREAD_SENDS:
        original = getattr(Pair, name)

        def wrapped(pair: Pair, *args: Any, _original: Any = original) -> int | None:
            return spy(lambda: _original(pair, *args))

        monkeypatch.setattr(Pair, name, wrapped)


def assert_no_bridge_threads() -> None:
    left = [t.name for t in threading.enumerate() if t.name.startswith("consensus-bridge")]
    assert not left, f"bridge threads still running after their block: {left}"


def agent(peers: Peers, front: str, mode: str, address: str, name: str, *options: str) -> subprocess.Popen[str]:
    """Start ``tests/bridge_agent.py`` (an asyncio or plain-script agent)."""
    return peers.start(front, mode, address, name, *options, script="bridge_agent.py")


class Lines:
    """A child's stdout read from asyncio: a daemon thread forwards each line to the loop
    (it ends with the child; asyncio.run never waits for it)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    loop.call_soon_threadsafe(self._queue.put_nowait, line.rstrip("\n"))
                loop.call_soon_threadsafe(self._queue.put_nowait, None)
            except (RuntimeError, ValueError):  # the loop or the pipe closed: the test is over
                pass

        threading.Thread(target=pump, daemon=True, name=f"lines {proc.pid}").start()

    async def next(self) -> str:
        line = await self._queue.get()
        if line is None:
            raise EOFError(f"peer {self._proc.args!r} exited with {self._proc.poll()}")
        return line


async def ready(*procs: subprocess.Popen[str]) -> list[Lines]:
    """Wait for every child's ``ready`` line; returns their readers."""
    readers = [Lines(proc) for proc in procs]
    for reader in readers:
        assert await reader.next() == "ready"
    return readers


def wait_ready(proc: subprocess.Popen[str]) -> None:
    """The blocking twin of :func:`ready`, for one child."""
    assert proc.stdout is not None
    line = proc.stdout.readline().rstrip("\n")
    assert line == "ready", f"{proc.args!r}: expected ready, got {line!r} (exit {proc.poll()})"
