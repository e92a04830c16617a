"""The worker-process side of ``bench.poll``: members and raw respondents in spawned processes.

A :class:`Worker` is the parent's handle on one spawned process; the process runs
:func:`_worker_main`, which serves commands over a pipe: host some room members
(``consensus.join``) or some raw ``pynng.Respondent0`` peers, report CPU time, leave.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import threading
import time
from typing import Any

import pynng
import trio

import consensus

from ._children import REAP_TIMEOUT_S, PipeChild

SETUP_TIMEOUT_S = 60.0  # worker start-up, joins, leaves
JOIN_TIMEOUT_S = 30.0  # consensus.join(join_timeout=...) in the workers


# ===================================================================== worker side (child)
async def _answer_async(question: Any) -> Any:
    return question


def _answer_sync(question: Any) -> Any:
    return question


class _Commands:
    """The worker's end of the command pipe, read from trio without blocking the loop."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self.conn = conn

    async def next(self) -> tuple[Any, ...]:
        msg: tuple[Any, ...] = await trio.to_thread.run_sync(self.conn.recv)
        return msg


async def _serve_members(
    conn: multiprocessing.connection.Connection, address: str, names: list[str], handler: str
) -> dict[str, Any]:
    """Join the room as ``names`` (concurrently), report ready, answer until told to stop."""
    on_poll = _answer_async if handler == "async" else _answer_sync
    members: list[consensus.Member] = []
    stop = trio.Event()
    all_joined = trio.Event()

    async def one(name: str) -> None:
        async with consensus.join(address, name=name, on_poll=on_poll, join_timeout=JOIN_TIMEOUT_S) as member:
            members.append(member)
            if len(members) == len(names):
                all_joined.set()
            await stop.wait()

    commands = _Commands(conn)
    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
        await all_joined.wait()
        conn.send(("ready", len(members)))
        while True:
            msg = await commands.next()
            if msg[0] == "mark":
                conn.send(("mark", time.process_time()))
            elif msg[0] == "stop":
                break
            else:
                raise RuntimeError(f"unexpected command {msg[0]!r} while serving members")
        stats = [m.statistics() for m in members]
        stop.set()  # every member leaves (sends LEAVE) and closes its sockets
    return {
        "members": len(members),
        "polls_answered": sum(s.polls_answered for s in stats),
        "handler_errors": sum(s.handler_errors for s in stats),
        "malformed": sum(s.malformed for s in stats),
    }


def _serve_raw(conn: multiprocessing.connection.Connection, address: str, count: int) -> dict[str, Any]:
    """``count`` raw Respondent0 sockets, each echoing every survey at once from its own thread."""
    socks: list[Any] = []
    threads: list[threading.Thread] = []
    answered = [0] * count

    def echo(i: int, sock: Any) -> None:
        try:
            while True:
                sock.send(sock.recv())
                answered[i] += 1
        except pynng.Closed:
            pass

    try:
        for i in range(count):
            sock = pynng.Respondent0()
            socks.append(sock)
            sock.dial(address, block=True)
            thread = threading.Thread(target=echo, args=(i, sock), daemon=True)
            thread.start()
            threads.append(thread)
        conn.send(("ready", count))
        while True:
            msg = conn.recv()
            if msg[0] == "mark":
                conn.send(("mark", time.process_time()))
            elif msg[0] == "stop":
                break
            else:
                raise RuntimeError(f"unexpected command {msg[0]!r} while serving raw respondents")
    finally:
        for sock in socks:
            sock.close()
        for thread in threads:
            thread.join(REAP_TIMEOUT_S)
    return {"members": count, "polls_answered": sum(answered), "handler_errors": 0, "malformed": 0}


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a spawned worker: runs commands until ``exit`` (or the pipe closes)."""
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return  # the parent is gone
            try:
                if msg[0] == "members":
                    _, address, names, handler = msg
                    stats = trio.run(_serve_members, conn, address, names, handler)
                elif msg[0] == "raw":
                    _, address, count = msg
                    stats = _serve_raw(conn, address, count)
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


# ===================================================================== worker management (parent)
class Worker(PipeChild):
    """A spawned worker process that is always reaped: exit command, join, terminate, kill."""

    label = "worker"

    def __init__(self, index: int) -> None:
        super().__init__(_worker_main, index, f"poll-worker-{index}")


def split_members(n: int, per_process: int) -> list[int]:
    """How many of ``n`` members each process gets: as even as possible, at most ``per_process``."""
    procs = max(1, math.ceil(n / per_process))
    base, extra = divmod(n, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]
