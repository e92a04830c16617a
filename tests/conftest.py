"""Shared test fixtures: unique addresses, child processes, and a deadline for every async test."""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEADLINE = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deadline(seconds): trio deadline for this async test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async test under ``trio.fail_after`` (30 s unless @pytest.mark.deadline(s))."""
    for item in items:
        fn = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(fn):
            continue
        marker = item.get_closest_marker("deadline")
        seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

        @functools.wraps(fn)
        async def under_deadline(*args: object, __fn=fn, __seconds=seconds, **kwargs: object) -> object:
            with trio.fail_after(__seconds):
                return await __fn(*args, **kwargs)

        item.obj = under_deadline  # type: ignore[attr-defined]


_counter = itertools.count()


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder (ipc paths must stay under ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="nngc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def address(short_tmp: Path) -> Callable[[str], str]:
    """``address(transport)`` -> a unique address for this test: inproc, ipc, tcp or ws."""

    def make(transport: str) -> str:
        n = next(_counter)
        if transport == "inproc":
            return f"inproc://t{os.getpid()}-{n}-{uuid.uuid4().hex[:8]}"
        if transport == "ipc":
            return f"ipc://{short_tmp}/s{n}.ipc"
        if transport == "tcp":
            return f"tcp://127.0.0.1:{free_tcp_port()}"
        if transport == "ws":
            return f"ws://127.0.0.1:{free_tcp_port()}/t{n}"
        raise ValueError(transport)

    return make


class Peers:
    """Child processes of one test; all are killed and reaped at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, script: str = "peer.py") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def agent(self, address: str, name: str, *options: str) -> subprocess.Popen[str]:
        """Start ``tests/room_agent.py``: a simulated agent that joins the room at ``address``."""
        return self.start(address, name, *options, script="room_agent.py")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot die
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def peers() -> Iterator[Peers]:
    group = Peers()
    try:
        yield group
    finally:
        group.close()


async def read_line(proc: subprocess.Popen[str]) -> str:
    """Read one line of a child's stdout without blocking trio."""
    assert proc.stdout is not None
    line = await trio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)
    if not line:
        raise EOFError(f"peer {proc.args!r} exited with {proc.poll()}")
    return line.rstrip("\n")


def free_tcp_port_run(count: int) -> int:
    """A port P such that P..P+count-1 are all free on 127.0.0.1 right now."""
    for _ in range(200):
        base = free_tcp_port()
        if base + count > 65535:
            continue
        sockets = []
        try:
            for offset in range(count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no run of {count} free ports found")


@pytest.fixture
def room_address(short_tmp: Path) -> Callable[[str], str]:
    """``room_address(transport)`` -> a unique room address (tcp uses ports P to P+4)."""

    def make(transport: str) -> str:
        n = next(_counter)
        if transport == "ipc":
            return f"ipc://{short_tmp}/room{n}"
        if transport == "tcp":
            return f"tcp://127.0.0.1:{free_tcp_port_run(5)}"
        if transport == "inproc":
            return f"inproc://room-{os.getpid()}-{n}-{uuid.uuid4().hex[:8]}"
        raise ValueError(transport)

    return make


def tell(proc: subprocess.Popen[str], line: str) -> None:
    """Send one command line to a child's stdin."""
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


@pytest.fixture(scope="session", autouse=True)
def no_shared_memory_left() -> Iterator[None]:
    """After the whole suite, /dev/shm holds no segment this run made (the children's
    included: whatever is new since the start). Leftovers are removed, then reported."""
    shm = Path("/dev/shm")
    before = {p.name for p in shm.glob("nngc.*")}
    yield
    from patterns import sweep_shared_memory

    sweep_shared_memory()  # what killed children left (their beacons, say): their owners are dead
    left = sorted({p.name for p in shm.glob("nngc.*")} - before)
    for name in left:
        (shm / name).unlink(missing_ok=True)
    assert not left, f"the suite left shared-memory segments behind: {left[:10]}"
