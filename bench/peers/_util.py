"""What every peer measurement shares: sizes and counts, Metric rows, free ports, servers, children.

Nothing here imports a peer's client library, so a measurement can turn a missing one
into a :class:`~bench._schema.Skip` before anything starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .._placement import address
from .._schema import Metric, Skip, median_p99

PAYLOADS = (64, 4096, 1 << 20)  # the toolkit scenarios' sizes (64 MiB is left to the shm bench)
QUICK_PAYLOADS = (64, 4096)
GATHER_NS = (1, 8, 32, 64)  # as bench.poll
QUICK_GATHER_NS = (1, 8, 64)  # issue 18: the goals compare N = 8 and 64
PER_PROCESS = 8  # respondents per child process, as bench.poll's members
WORKERS = 2  # work distribution: worker processes, as bench.distribute
TASK_SIZE = 64  # bytes per task, as bench.distribute
GATHER_PAYLOAD = 64
READY_TIMEOUT_S = 30.0  # a spawned child: interpreter start, imports, connect
SERVER_START_S = 15.0

Result = list[Metric | Skip]


# ===================================================================== sizes and counts
def payloads(quick: bool, sizes: Sequence[int] | None = None) -> tuple[int, ...]:
    if sizes is not None:
        return tuple(sizes)
    return QUICK_PAYLOADS if quick else PAYLOADS


def gather_ns(quick: bool, ns: Sequence[int] | None = None) -> tuple[int, ...]:
    if ns is not None:
        return tuple(ns)
    return QUICK_GATHER_NS if quick else GATHER_NS


def rtt_counts(size: int, quick: bool, base: int) -> tuple[int, int]:
    """(warm-up, timed) round trips for one payload size: fewer for 1 MiB."""
    n = max(100, base // 4) if quick else base
    if size >= 1 << 20:
        n = max(50, n // 10)
    return max(10, n // 10), n


def make_payload(size: int, tag: int = 0) -> bytes:
    """``size`` bytes, the first 8 of them ``tag`` (so a stale or foreign reply is caught)."""
    head = tag.to_bytes(8, "big")
    if size <= 8:
        return head[:size]
    return head + bytes(range(256)) * ((size - 8) // 256) + bytes(range((size - 8) % 256))


# ===================================================================== Metric rows
def rtt_metrics(system: str, variant: str, transport: str, payload: int, samples_ns: Sequence[int]) -> Result:
    return median_p99("rtt", system, variant, transport, payload, 1, [s / 1e3 for s in samples_ns])


def gather_metrics(system: str, variant: str, transport: str, n: int, samples_ns: Sequence[int]) -> Result:
    return median_p99("poll", system, variant, transport, GATHER_PAYLOAD, n, [s / 1e6 for s in samples_ns], 4)


WORK_ROUNDS = 3
"""Timed rounds of each work-queue figure (toolkit and peers alike); the metric is their median:
a round of a quick run lasts about half a second, short enough for one hiccup to move it."""


def rate_metric(system: str, variant: str, transport: str, tasks: int, seconds: float) -> Metric:
    return Metric(scenario="work", system=system, variant=variant, transport=transport, payload=TASK_SIZE,
                  n=WORKERS, name="tasks_per_s", value=round(tasks / seconds, 1), unit="tasks/s",
                  higher_is_better=True)  # fmt: skip


def missing_module(module: str, reason: str, scenario: str, system: str, variant: str) -> Skip | None:
    """A Skip with ``reason`` if ``module`` cannot be imported, else None."""
    if importlib.util.find_spec(module) is None:
        return Skip(scenario, system, variant, reason)
    return None


def guarded(
    scenario: str, system: str, variant: str, measure: Callable[[], list[Metric | Skip]]
) -> list[Metric | Skip]:
    """Run one measurement; an unexpected failure becomes a Skip (and a traceback on stderr)."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 -- a failed peer must not stop the suite
        import traceback

        traceback.print_exc(file=sys.stderr)
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return [Skip(scenario, system, variant, f"failed: {text} (traceback on stderr)")]


# ===================================================================== ports, files, executables
def free_port() -> int:
    """A TCP port on the bench's address (127.0.0.1 unless placed) that was free a moment ago
    (the server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address(), 0))
        return int(s.getsockname()[1])


class ServerExited(RuntimeError):
    """A server process ended before it listened (a port taken meanwhile, a bad option)."""


def wait_port(
    port: int, timeout: float, proc: subprocess.Popen[bytes], log: Path, hello: tuple[bytes, bytes]
) -> None:
    """Wait until ``proc`` answers on ``port``: send ``hello[0]``, expect a reply starting with ``hello[1]``.

    (A bare connect is not enough: another process may hold the port.)
    """
    send, expect = hello
    name = str(proc.args[0] if isinstance(proc.args, list) else proc.args)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServerExited(f"{name} exited with {proc.returncode}: {tail(log)}")
        with contextlib.suppress(OSError):
            with socket.create_connection((address(), port), timeout=0.5) as probe:
                if send:
                    probe.sendall(send)
                answer = probe.recv(len(expect))
            if answer == expect and proc.poll() is None:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not answering on port {port} within {timeout} s: {tail(log)}")
        time.sleep(0.02)


def tail(log: Path, lines: int = 3) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def find_executable(name: str) -> str | None:
    """``name`` beside this interpreter (a venv's bin, where pip puts nats-server) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A private temporary folder, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def server(make_argv: Callable[[int], list[str]], log: Path, hello: tuple[bytes, bytes],
           attempts: int = 3) -> Iterator[int]:  # fmt: skip
    """Start ``make_argv(port)`` on a free port, wait until it answers ``hello``; yield the port; stop it.

    A server that exits before listening (the port was taken meanwhile) is retried on
    another port. Stopping: SIGTERM, then SIGKILL after 5 s.
    """
    for attempt in range(attempts):
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(make_argv(port), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        try:
            try:
                wait_port(port, SERVER_START_S, proc, log, hello)
            except ServerExited:
                if attempt + 1 == attempts:
                    raise
                continue
            yield port
            return
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
