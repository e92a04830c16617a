"""What ``bench.distribute``'s child processes run, the pool of them, and the throughput knobs.

The children are :class:`~bench._children.Child` processes started once and reused
(:class:`Pool`; the killed one is replaced). Each phase starts one job in each:

* :func:`worker`: a ``consensus.Worker`` with a trivial async handler (returns the
  task), until ``stop``;
* :func:`pull` ``("trio")``: a raw ``pynng.Pull0`` received with ``await sock.arecv()``,
  counting bare frames, until ``stop``; ``("sync")``: blocking ``recv`` in a thread.

While a job runs, ``mark`` answers with the process's CPU time and ``count`` (pullers)
with the frames received so far. Times are ``time.monotonic_ns()`` (CLOCK_MONOTONIC, one
clock for every process on Linux), so the parent can compare a puller's last receive
with its own first send.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import pynng
import trio

from ._children import REAP_TIMEOUT_S, Child, Conn, aserve, serve

WORKERS = 2
PAYLOAD_SIZE = 64
MARK = {"mark": lambda: ("mark", time.process_time())}


def make_task(index: int) -> bytes:
    """Task ``index`` as a unique 64-byte value (its index in ASCII, padded)."""
    return (b"task-%012d-" % index).ljust(PAYLOAD_SIZE, b".")


def task_index(task: bytes) -> int:
    return int(task[5:17])


RAW_PAYLOAD = make_task(0)


@dataclass(frozen=True)
class Knobs:
    concurrency: int
    prefetch: int | None  # None: the library's default (= concurrency)
    max_batch: int

    @property
    def capacity(self) -> int:
        return self.concurrency + (self.concurrency if self.prefetch is None else self.prefetch)

    def label(self) -> str:
        prefetch = "default" if self.prefetch is None else str(self.prefetch)
        return f"concurrency={self.concurrency} prefetch={prefetch} max_batch={self.max_batch}"

    def as_dict(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "prefetch": self.prefetch, "max_batch": self.max_batch,
                "capacity_per_worker": self.capacity}  # fmt: skip


LIBRARY_DEFAULTS = Knobs(concurrency=1, prefetch=None, max_batch=256)
# The benchmark's knobs: a worker's capacity 16 x max_batch keeps batches full (see --explore).
DEFAULT_KNOBS = Knobs(concurrency=1, prefetch=4095, max_batch=256)
# The sweep of --explore. The ratio of a worker's capacity (concurrency + prefetch) to
# max_batch decides whether the pump stays batch-sized or fragments (see the report).
EXPLORE = (LIBRARY_DEFAULTS, Knobs(1, 63, 64), Knobs(1, 255, 64), Knobs(1, 1023, 64), Knobs(1,
                                                                                            4095,
                                                                                            64),
           Knobs(1, 4095, 16), Knobs(1, 63, 256), Knobs(1, 255, 256), Knobs(1, 1023, 256),
           Knobs(1, 2047, 256), Knobs(1, 4095, 256), Knobs(1, 8191, 256), Knobs(1, 8191, 1024),
           Knobs(16, 4080, 256), Knobs(256, 3840, 256))  # fmt: skip


# ===================================================================== jobs (child side)
def preload(conn: Conn) -> int:
    """Import what the phases need before any clock runs; the process id."""
    import consensus  # noqa: F401

    return os.getpid()


async def _echo(task: Any) -> Any:
    return task


async def _worker(conn: Conn, address: str, name: str, concurrency: int,
                  prefetch: int | None) -> dict[str, Any]:  # fmt: skip
    import consensus

    async with consensus.Worker(address, handler=_echo, name=name, concurrency=concurrency,
                                prefetch=prefetch) as worker:  # fmt: skip
        with trio.fail_after(60.0):
            await worker.wait_connected()
        conn.send(("ready", worker.capacity))
        await aserve(conn, MARK)
        s = worker.statistics()
        pull, push = worker._pull.statistics(), worker._push.statistics()  # private: diagnostics only
    return {"messages_received": pull.messages_received, "messages_sent": push.messages_sent,
            "name": s.name, "capacity": s.capacity, "received": s.received,
            "returned": getattr(s, "returned", None), "succeeded": s.succeeded,
            "failed": s.failed, "malformed": s.malformed, "held_at_stop": s.held}  # fmt: skip


def worker(conn: Conn, address: str, name: str, concurrency: int, prefetch: int | None) -> dict[str, Any]:
    return trio.run(_worker, conn, address, name, concurrency, prefetch)


def pull(conn: Conn, style: str, address: str) -> dict[str, Any]:
    """A raw Pull0 counting bare frames (``style`` trio or sync) until told to stop."""
    state = {"count": 0, "first_ns": 0, "last_ns": 0, "wrong_size": 0}
    handlers = {**MARK, "count": lambda: ("count", state["count"])}
    clock = time.monotonic_ns

    async def pull_trio(sock: Any) -> None:
        data = await sock.arecv()
        state["first_ns"] = state["last_ns"] = clock()
        count = state["count"] = 1
        wrong = int(len(data) != PAYLOAD_SIZE)
        try:
            while True:
                data = await sock.arecv()
                count += 1
                if len(data) != PAYLOAD_SIZE:
                    wrong += 1
                state["count"] = count
                state["last_ns"] = clock()
        finally:
            state["count"], state["wrong_size"] = count, wrong

    def pull_sync(sock: Any) -> None:
        count = wrong = 0
        try:
            data = sock.recv()
            state["first_ns"] = state["last_ns"] = clock()
            count = state["count"] = 1
            wrong = int(len(data) != PAYLOAD_SIZE)
            while True:
                data = sock.recv()
                count += 1
                if len(data) != PAYLOAD_SIZE:
                    wrong += 1
                state["count"] = count
                state["last_ns"] = clock()
        except pynng.Closed:
            pass
        finally:
            state["count"], state["wrong_size"] = count, wrong

    async def run_trio(sock: Any) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pull_trio, sock)
            conn.send(("ready", None))
            await aserve(conn, handlers)
            nursery.cancel_scope.cancel()

    with pynng.Pull0() as sock:
        sock.dial(address, block=True)
        if style == "trio":
            trio.run(run_trio, sock)
            return state
        thread = threading.Thread(target=pull_sync, args=(sock,), daemon=True)
        thread.start()
        conn.send(("ready", None))
        try:
            serve(conn, handlers)
        finally:
            sock.close()
            thread.join(REAP_TIMEOUT_S)
    return state


# ===================================================================== the pool (parent side)
class Pool:
    """The spawned children: ``WORKERS`` for workers or pullers, plus a spare for the kill phase."""

    def __init__(self, size: int) -> None:
        self.children: list[Child] = []
        self.size = size
        self.spawned = 0

    def start(self) -> None:
        self.children = [self._spawn() for _ in range(self.size)]
        for child in self.children:
            child.receive("done")

    def _spawn(self) -> Child:
        self.spawned += 1
        child = Child(f"distribute-child-{self.spawned - 1}", self.spawned - 1)
        child.start(preload)
        return child

    def replace(self, child: Child) -> None:
        """Reap ``child`` (killed) and put a fresh process in its place."""
        i = self.children.index(child)
        child.stop()
        self.children[i] = fresh = self._spawn()
        fresh.receive("done")

    def stop(self) -> None:
        for child in self.children:
            child.stop()
