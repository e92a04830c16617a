"""``python -m bench --hosts``: poll, work and large payloads across the hosts of a namespace bed,
beside the same peers placed the same way.

Three hosts A, B, C of one :class:`bench.hosts.Bed` (each its own network namespace on one
switch, its own ``/dev/shm``):

=========  ======================================================  ==========================================
scenario   host A                                                  hosts B and C
=========  ======================================================  ==========================================
poll       the room host; the floor's ``Surveyor0``; the ZeroMQ    the members / respondents / DEALERs /
           ROUTER; nats-server and the NATS requester              NATS responders, 8 per process, the
                                                                   processes alternating between B and C
work       the ``Dispatcher``; nats-server and the JetStream       the 2 workers: one on B, one on C
           publisher; redis-server and the Streams submitter
large      the sender (``bench.inline``'s client)                  the receiver on B (replies 8 bytes)
=========  ======================================================  ==========================================

Nothing is written twice: a poll or work step starts one process on A (a
:class:`~bench._children.Child` through a wrapper that enters A's namespaces) which runs the
suite's own step (``bench.poll.suite_step``, ``bench.distribute.suite_step``, the peers'
``measure`` functions) with :mod:`bench._placement` pointing its listeners at A's address and
its children at B and C (the poll step's rooms live in one more process on A, which the
step starts: :func:`bench.poll.suite_step`). The large step runs ``bench.inline``'s client and echo on A and B.
Every record gets its ``placement`` (:data:`PLACEMENTS`), so ratios compare only rows placed
alike. The bed (processes, servers, mounts, namespaces) and the wrappers are removed when the
run ends, whatever happened (:class:`Run` is a context manager).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from . import hosts
from ._children import Child, Conn
from ._common import size_label
from ._goals import _judge
from ._placement import ADDRESS_ENV, SPAWN_ENV
from ._schema import TOOLKIT, Metric, Skip
from ._suite import Records, Step

__all__ = ["PLACEMENTS", "Run", "goals", "left_behind", "placed", "unavailable"]

SERVER_CLIENTS: Final = "hosts: server A, clients B+C"
SENDER_RECEIVER: Final = "hosts: sender A, receiver B"
PLACEMENTS: Final = {"poll": SERVER_CLIENTS, "work": SERVER_CLIENTS, "large": SENDER_RECEIVER}
POLL_NS: Final = {True: (16,), False: (16, 64)}  # 16: two member processes, one on B and one on C
WORK_N: Final = {True: 10_000, False: 50_000}  # tasks per round, toolkit and peers alike
LARGE_MIB: Final = {True: (1, 16), False: (1, 16, 64)}
LARGE_REPEATS: Final = {True: 3, False: 5}
LARGE_PORT: Final = 7600  # + the variant's index, on B (a fresh namespace: nothing else listens there)
LARGE_VARIANTS: Final = {  # bench.inline's variant -> (system, Metric.variant)
    "pynng_sync": ("pynng", "Pair1 sync"),
    "patterns_bytes": (TOOLKIT, "Pair bytes (send_bytes, no envelope)"),
    "patterns_pair": (TOOLKIT, "Pair, inline (shared_memory=False)"),
    "hotline_ask": (TOOLKIT, "hotline ask"),
}
STEP_TIMEOUT_S: Final = 900.0  # a step's process on A: every phase of the step, its children's start-up


def unavailable() -> str | None:
    """Why ``--hosts`` cannot run here (one line), or None."""
    return hosts.unavailable()


def left_behind(tag: str | None) -> list[str]:
    """The namespaces of the bed ``tag`` still listed by ``ip netns`` (none once it is closed)."""
    if not tag:
        return []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=30)
    return [line.split(" ", 1)[0] for line in listed.stdout.splitlines() if line.startswith(f"{tag}-")]


# ===================================================================== on host A (child side)
def _poll(quick: bool) -> Records:
    from . import poll

    return poll.suite_step(quick, transports=("tcp",), ns=POLL_NS[quick], raw_survey=False)


def _work(quick: bool) -> Records:
    from . import distribute

    return distribute.suite_step(quick, transports=("tcp",), n=WORK_N[quick], with_kill=False)


def _zmq(quick: bool) -> Records:
    from .peers import zmq_gather
    from .peers._util import guarded

    return guarded("poll", "pyzmq", zmq_gather.VARIANT,
                   lambda: zmq_gather.measure(quick, POLL_NS[quick], transports=("tcp",)))  # fmt: skip


def _nats(quick: bool) -> Records:
    from .peers import nats_jetstream, nats_reqrep
    from .peers._util import guarded

    return [*guarded("poll", "nats", nats_reqrep.GATHER_VARIANT,
                     lambda: nats_reqrep.measure_gather(quick, POLL_NS[quick])),
            *guarded("work", "nats", "JetStream work queue",
                     lambda: nats_jetstream.measure(quick, WORK_N[quick]))]  # fmt: skip


def _redis(quick: bool) -> Records:
    from .peers import redis_streams
    from .peers._util import guarded

    return guarded("work", "redis", redis_streams.WORK_VARIANT,
                   lambda: redis_streams.measure_work(quick, WORK_N[quick]))  # fmt: skip


ON_A: Final[dict[str, Callable[[bool], Records]]] = {
    "poll": _poll, "work": _work, "zmq": _zmq, "nats": _nats, "redis": _redis,
}  # fmt: skip


def on_a(conn: Conn, address: str, executables: list[str], name: str, quick: bool) -> list[dict[str, Any]]:
    """The job of the step's process on host A: listen on ``address``, start children through
    ``executables`` (hosts B and C), run the step ``name``; its records as plain dicts."""
    os.environ[ADDRESS_ENV] = address
    os.environ[SPAWN_ENV] = os.pathsep.join(executables)
    return [record.to_json() for record in ON_A[name](quick)]


# ===================================================================== the run (parent side)
def _record(data: dict[str, Any]) -> Metric | Skip:
    return placed((Skip(**data) if "reason" in data else Metric(**data),))[0]


def placed(records: Records | tuple[Metric | Skip, ...]) -> Records:
    """``records`` with their scenario's placement (also the Skip of a step that failed, made on one host)."""
    return [dataclasses.replace(r, placement=PLACEMENTS.get(r.scenario, SERVER_CLIENTS)) for r in records]


class Run:
    """The bed of one ``--hosts`` run (hosts A, B, C) and its steps; ``with`` builds and removes it."""

    def __init__(self) -> None:
        self.bed: hosts.Bed | None = None
        self.folder: Path | None = None
        self.executables: list[str] = []

    def __enter__(self) -> Self:
        try:
            self.bed = hosts.Bed(3)
            self.folder = Path(tempfile.mkdtemp(prefix="nngc-bench-hosts-"))
            self.executables = [self._wrapper(host) for host in self.bed.hosts]
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        """Remove the bed (every process started on it, its servers, mounts and namespaces), then the wrappers."""
        try:
            if self.bed is not None:
                self.bed.close()
        finally:
            self.bed = None
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def describe(self) -> dict[str, Any]:
        roles = ("A", "B", "C")
        bed = self.bed
        return {"bed": bed.tag if bed else None,
                "hosts": {role: {"name": h.name, "ip": h.ip} for role, h in zip(roles, bed.hosts)} if bed else {},
                "placements": dict(PLACEMENTS)}  # fmt: skip

    def _wrapper(self, host: hosts.Host) -> str:
        """An executable that runs this interpreter on ``host`` (what multiprocessing spawns);
        it unsets the spawn list so a child's children stay on its host."""
        assert self.folder is not None
        path = self.folder / f"python-on-{host.name}"
        path.write_text(f"#!/bin/sh\n# python on host {host.name} ({host.ip}) of bed {host.netns}\n"
                        f"unset {SPAWN_ENV}\nexec {shlex.join(host.command([sys.executable]))} \"$@\"\n")  # fmt: skip
        path.chmod(0o755)
        return str(path)

    def steps(self) -> list[Step]:
        """The steps of ``--hosts``, in the suite's shape (``--only`` selects among them)."""
        toolkit, both = frozenset({TOOLKIT}), frozenset({TOOLKIT, "pynng"})

        def on_a_step(name: str) -> Callable[[bool], Records]:
            return lambda quick: self._on_a(name, quick)

        return [
            Step("hosts poll", frozenset({"poll"}), both, on_a_step("poll")),
            Step("hosts work", frozenset({"work"}), toolkit, on_a_step("work")),
            Step("hosts large", frozenset({"large"}), both, self._large),
            Step("hosts peers zmq", frozenset({"poll"}), frozenset({"pyzmq"}), on_a_step("zmq")),
            Step("hosts peers nats", frozenset({"poll", "work"}), frozenset({"nats"}), on_a_step("nats")),
            Step("hosts peers redis", frozenset({"work"}), frozenset({"redis"}), on_a_step("redis")),
        ]

    def _hosts(self) -> tuple[hosts.Host, ...]:
        if self.bed is None:
            raise RuntimeError("the bed of hosts is not up (use the Run as a context manager)")
        return self.bed.hosts

    def _on_a(self, name: str, quick: bool) -> Records:
        a = self._hosts()[0]
        child = Child(f"hosts-{name}-on-{a.name}", 0, executable=self.executables[0], daemon=False)
        try:
            child.start(on_a, a.ip, self.executables[1:], name, quick)
            got: list[dict[str, Any]] = child.receive("done", timeout=STEP_TIMEOUT_S)
        finally:
            child.stop()
        return [_record(data) for data in got]

    def _large(self, quick: bool) -> Records:
        from . import inline

        a, b = self._hosts()[:2]
        sizes = [mib << 20 for mib in LARGE_MIB[quick]]

        def on(host: hosts.Host) -> inline.Launch:
            return lambda argv: host.popen(argv, stdin=subprocess.DEVNULL, cwd=inline.ROOT)

        out: Records = []
        for i, (variant, (system, name)) in enumerate(LARGE_VARIANTS.items()):
            times = inline.measure(variant, f"tcp://{b.ip}:{LARGE_PORT + i}", sizes, LARGE_REPEATS[quick],
                                   on(b), on(a))  # fmt: skip
            out += [Metric("large", system, name, "tcp", size, 1, "rtt_median_ms",
                           round(statistics.median(runs) * 1e3, 3), "ms", placement=SENDER_RECEIVER)
                    for size, runs in sorted(times.items())]  # fmt: skip
        return out


# ===================================================================== goals
def goals(metrics: list[Metric], skips: list[Skip]) -> list[dict[str, Any]]:
    """Issue 17's goal across two hosts: ``Pair`` and hotline asks within 1.2x of raw pynng sync."""
    text = "issue 17: Pair and hotline ask within 1.2x of raw pynng Pair1 sync between two hosts"
    large = [m for m in metrics if m.scenario == "large" and m.name == "rtt_median_ms"]
    raw = {m.payload: m for m in large if m.system == "pynng"}
    pairs = [(f"{m.variant.split(' (')[0]} {size_label(m.payload)}", m, raw[m.payload]) for m in large
             if m.system == TOOLKIT and m.payload in raw and not m.variant.startswith("Pair bytes")]  # fmt: skip
    reasons = [s.reason for s in skips if s.scenario in ("large", "all")]
    return [_judge(text, pairs, "<=", 1.2, "ms", reasons[0] if reasons else "the large step did not run")]
