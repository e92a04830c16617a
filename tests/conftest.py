"""Shared test fixtures: unique addresses, child processes, a deadline for every async test,
and the suite's own shared-memory directory."""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from _family import Family
from hypothesis import HealthCheck, settings

# Examples are judged by what they find, not by how long they take: on a loaded machine
# (2 cores, other suites beside this one) hypothesis's default 200 ms per example and its
# too-slow health check fail correct code. Settings written in a test still win.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEADLINE = 60.0
SHM = Path("/dev/shm")
SHM_DIR_ENV = "NNG_CONSENSUS_SHM_DIR"  # patterns.shm.header.DIRECTORY_ENV, read by every process

_tree: set[tuple[int, int]] = set()
"""(pid, start time) of this process and of every child a test starts through :class:`Peers`
(at once, however short its life); with the :class:`Family` watched during the run, the
owners whose segments in /dev/shm itself are this suite's."""



def _remember(pid: int) -> None:
    from patterns.shm.header import start_time  # (the toolkit is imported once the suite's folder is set)

    start = start_time(pid)
    if start is not None:
        _tree.add((pid, start))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deadline(seconds): trio deadline for this async test")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async test under ``trio.fail_after`` (60 s unless @pytest.mark.deadline(s))."""
    for item in items:
        fn = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(fn):
            continue
        marker = item.get_closest_marker("deadline")
        seconds = float(marker.args[0]) if marker else DEFAULT_DEADLINE

        @functools.wraps(fn)
        async def under_deadline(
            *args: object, __fn: Any = fn, __seconds: float = seconds, **kwargs: object
        ) -> object:
            with trio.fail_after(__seconds):
                return await __fn(*args, **kwargs)

        item.obj = under_deadline  # type: ignore[attr-defined]


_counter = itertools.count()


# Ports the tests listen on are drawn from below Linux's ephemeral range (32768..60999, where
# the kernel picks the local port of every outgoing connection) and below the benchmarks'
# (bench/_ports.py, 20000..32000). In the ephemeral range a member's dialer retrying a host
# that is down can be given the host's own port as its local port and connect to itself
# (tcp's simultaneous open), and the restarted host then fails with "Address in use".
_TEST_PORTS = (10_000, 20_000)
_PICK = random.SystemRandom()  # not the global generator, which hypothesis seeds
_HANDED_OUT: set[int] = set()  # never twice in one run, even if the first holder has not bound it yet


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_tcp_port() -> int:
    """A tcp port on 127.0.0.1 that was free a moment ago (outside the ephemeral range)."""
    return free_tcp_port_run(1)


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


@pytest.fixture
def work_address(address: Callable[[str], str]) -> Callable[[str], str]:
    """``work_address(transport)``: a dispatcher address (tcp: ports P and P+1 free)."""

    def make(transport: str) -> str:
        if transport == "tcp":
            return f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
        return address(transport)

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
        _remember(proc.pid)
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
    low, high = _TEST_PORTS
    for _ in range(200):
        base = _PICK.randrange(low, high - count)
        run = range(base, base + count)
        if _HANDED_OUT.isdisjoint(run) and all(_bindable(port) for port in run):
            _HANDED_OUT.update(run)
            return base
    raise RuntimeError(f"no run of {count} free ports found in {low}..{high}")


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


def _ours_in_dev_shm(before: set[str], owners: set[tuple[int, int]]) -> list[str]:
    """Segments in /dev/shm made during the run by ``owners``: this process and every
    process it started, directly or not (``_tree`` and the :class:`Family`).

    Other processes on the machine (another suite, a benchmark) make and remove segments
    there too: those are neither counted nor touched. The owner comes from the header
    (pid and start time, so a reused pid is not mistaken for ours)."""
    from patterns.shm.header import HEADER, Header

    pids = {str(pid) for pid, _ in owners}
    found = []
    for path in SHM.glob("nngc.*"):
        if path.name in before:
            continue
        try:
            with open(path, "rb") as file:
                header = Header.unpack(file.read(HEADER.size))
        except OSError:
            continue  # gone meanwhile
        if isinstance(header, Header):
            ours = (header.owner.pid, header.owner.start_time) in owners
        else:  # no header yet (its maker died creating it): the name says who made it
            ours = path.name.split(".")[1] in pids
        if ours:
            found.append(path.name)
    return sorted(found)


def _describe(path: Path) -> str:
    """A leftover segment for the failure message: its name, owner and kind."""
    from patterns.shm.header import FLAG_PROBE, HEADER, Header

    try:
        with open(path, "rb") as file:
            header = Header.unpack(file.read(HEADER.size))
    except OSError as exc:
        return f"{path.name} ({exc.strerror})"
    if not isinstance(header, Header):
        return f"{path.name} (no valid header: {header})"
    who = "this process" if header.owner.pid == os.getpid() else f"pid {header.owner.pid}"
    kind = "beacon or spare" if header.flags & FLAG_PROBE else f"payload of {header.payload_length} bytes"
    return f"{path.name} ({kind}, owner {who}, {header.pending} receiver(s) pending)"


@pytest.fixture(scope="session", autouse=True)
def no_shared_memory_left() -> Iterator[Path]:
    """The suite's own segment directory, and the proof that the run leaves no segment behind.

    Every process of the run (this one, and through the inherited environment each child
    and grandchild) makes its segments in a fresh directory on /dev/shm's tmpfs
    (``$NNG_CONSENSUS_SHM_DIR``), unless a test names another one. At the end that
    directory holds nothing (what killed children left is swept first: their owners are
    dead) and is removed, and /dev/shm itself holds no new segment owned by this process
    or any process it started, directly or not (tests that use /dev/shm on purpose;
    a process whose environment lost the suite's folder). Leftovers are removed, then
    reported."""
    _remember(os.getpid())
    family = Family()
    folder = Path(tempfile.mkdtemp(prefix="nng-consensus-suite-", dir=SHM))
    previous = os.environ.get(SHM_DIR_ENV)
    os.environ[SHM_DIR_ENV] = str(folder)
    before = {p.name for p in SHM.glob("nngc.*")}
    family.start()
    try:
        yield folder
        family.stop()
        from patterns import sweep_shared_memory
        from patterns.shm import spare

        spare.settle(30)  # the background thread finishes what it was asked (spares it drops)
        # Killed children's segments (owner dead) and half-made files (no header yet: no
        # process of the run is making one now) are the sweep's to remove.
        sweep_shared_memory(directory=folder, grace=0)
        left_here = [_describe(entry) for entry in sorted(folder.iterdir())]
        left_shm = _ours_in_dev_shm(before, _tree | family.members)
        for name in left_shm:
            (SHM / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if previous is None:
            os.environ.pop(SHM_DIR_ENV, None)
        else:
            os.environ[SHM_DIR_ENV] = previous
    assert not left_here and not left_shm, (
        f"the suite left shared-memory segments in its own directory {folder}: {left_here[:10]}; "
        f"in {SHM}: {left_shm[:10]}"
    )
