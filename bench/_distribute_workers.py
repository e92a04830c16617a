"""The worker-process side of ``bench.distribute``: toolkit workers and raw pullers in spawned processes.

A :class:`Child` is the parent's handle on one spawned process; the process runs
:func:`_child_main`, which serves commands over a pipe, one role at a time:

* ``("worker", address, name, concurrency, prefetch)``: a ``consensus.Worker`` with a
  trivial async handler (returns the task), until ``stop``;
* ``("raw_trio", address)``: a raw ``pynng.Pull0`` received with ``await sock.arecv()``
  under trio, counting bare frames, until ``stop``;
* ``("raw_sync", address)``: the same with blocking ``sock.recv()`` in a thread.

While a role runs, ``mark`` answers with the process's CPU time and ``count`` (raw
roles) with the frames received so far. ``stop`` ends the role and answers ``done``
with its statistics. Times are ``time.monotonic_ns()`` (CLOCK_MONOTONIC, one clock for
every process on Linux), so the parent can compare a puller's last receive with its
own first send.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import threading
import time
from typing import Any

import pynng
import trio

from ._children import REAP_TIMEOUT_S, PipeChild

SETUP_TIMEOUT_S = 60.0  # child start-up (a fresh interpreter importing trio, pynng, consensus) and connects

PAYLOAD_SIZE = 64


def make_task(index: int) -> bytes:
    """Task ``index`` as a unique 64-byte value (its index in ASCII, padded)."""
    return (b"task-%012d-" % index).ljust(PAYLOAD_SIZE, b".")


def task_index(task: bytes) -> int:
    return int(task[5:17])


RAW_PAYLOAD = make_task(0)


# ===================================================================== child side
async def _echo(task: Any) -> Any:
    return task


class _Commands:
    """The child's end of the command pipe, read from trio without blocking the loop."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn

    async def next(self) -> tuple[Any, ...]:
        msg: tuple[Any, ...] = await trio.to_thread.run_sync(self.conn.recv, abandon_on_cancel=True)
        return msg


async def _serve_worker(
    conn: multiprocessing.connection.Connection,
    address: str,
    name: str,
    concurrency: int,
    prefetch: int | None,
) -> dict[str, Any]:
    import consensus  # here, so raw-only children never pay for it

    commands = _Commands(conn)
    async with consensus.Worker(
        address, handler=_echo, name=name, concurrency=concurrency, prefetch=prefetch
    ) as worker:
        with trio.fail_after(SETUP_TIMEOUT_S):
            await worker.wait_connected()
        conn.send(("ready", worker.capacity))
        while True:
            msg = await commands.next()
            if msg[0] == "mark":
                conn.send(("mark", time.process_time()))
            elif msg[0] == "stop":
                break
            else:
                raise RuntimeError(f"unexpected command {msg[0]!r} while serving as a worker")
        s = worker.statistics()
        pull = worker._pull.statistics()  # private: diagnostics only
        push = worker._push.statistics()
    return {
        "messages_received": pull.messages_received,
        "messages_sent": push.messages_sent,
        "name": s.name,
        "capacity": s.capacity,
        "received": s.received,
        "returned": getattr(s, "returned", None),  # newer library versions only
        "succeeded": s.succeeded,
        "failed": s.failed,
        "malformed": s.malformed,
        "held_at_stop": s.held,
    }


async def _serve_raw_trio(conn: multiprocessing.connection.Connection, address: str) -> dict[str, Any]:
    state = {"count": 0, "first_ns": 0, "last_ns": 0, "wrong_size": 0}
    clock = time.monotonic_ns
    commands = _Commands(conn)

    async def pull(sock: Any) -> None:
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
            state["count"] = count
            state["wrong_size"] = wrong

    with pynng.Pull0() as sock:
        sock.dial(address, block=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pull, sock)
            conn.send(("ready", None))
            while True:
                msg = await commands.next()
                if msg[0] == "mark":
                    conn.send(("mark", time.process_time()))
                elif msg[0] == "count":
                    conn.send(("count", state["count"]))
                elif msg[0] == "stop":
                    break
                else:
                    raise RuntimeError(f"unexpected command {msg[0]!r} while pulling")
            nursery.cancel_scope.cancel()
    return state


def _serve_raw_sync(conn: multiprocessing.connection.Connection, address: str) -> dict[str, Any]:
    state = {"count": 0, "first_ns": 0, "last_ns": 0, "wrong_size": 0}
    clock = time.monotonic_ns

    def pull(sock: Any) -> None:
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
            state["count"] = count
            state["wrong_size"] = wrong

    sock = pynng.Pull0()
    thread = threading.Thread(target=pull, args=(sock,), daemon=True)
    try:
        sock.dial(address, block=True)
        thread.start()
        conn.send(("ready", None))
        while True:
            msg = conn.recv()
            if msg[0] == "mark":
                conn.send(("mark", time.process_time()))
            elif msg[0] == "count":
                conn.send(("count", state["count"]))
            elif msg[0] == "stop":
                break
            else:
                raise RuntimeError(f"unexpected command {msg[0]!r} while pulling")
    finally:
        sock.close()
        if thread.ident is not None:
            thread.join(REAP_TIMEOUT_S)
    return state


def _child_main(conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a spawned child: runs roles until ``exit`` (or the pipe closes)."""
    try:
        conn.send(("started", os.getpid()))
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return  # the parent is gone
            try:
                if msg[0] == "worker":
                    _, address, name, concurrency, prefetch = msg
                    stats = trio.run(_serve_worker, conn, address, name, concurrency, prefetch)
                elif msg[0] == "raw_trio":
                    stats = trio.run(_serve_raw_trio, conn, msg[1])
                elif msg[0] == "raw_sync":
                    stats = _serve_raw_sync(conn, msg[1])
                elif msg[0] == "exit":
                    return
                else:
                    raise RuntimeError(f"unknown command {msg[0]!r}")
            except BaseException as exc:  # report, then die: the parent treats it as fatal
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                raise
            conn.send(("done", stats))
    finally:
        conn.close()


# ===================================================================== child management (parent)
class Child(PipeChild):
    """A spawned child of this benchmark (toolkit worker, raw puller); always reaped."""

    def __init__(self, index: int) -> None:
        super().__init__(_child_main, index, f"distribute-child-{index}")

    def wait_started(self) -> None:
        self.receive("started", SETUP_TIMEOUT_S)
