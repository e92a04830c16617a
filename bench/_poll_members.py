"""The member side of ``bench.poll``'s phases: the jobs its child processes run, and the room's address.

The member processes are :class:`~bench._children.Child` processes running one job per
phase: :func:`members` (``consensus.join`` as some members), :func:`respondents` (raw
``pynng.Respondent0`` peers, a thread each), :func:`floor_respondents` (bare
``Respondent0`` tasks under trio: the floor's members, see :mod:`bench._poll_phases`) or
:func:`pattern_respondents` (``patterns.Respondent``, no room). While a job runs, ``mark``
answers with the process's CPU time; ``stop`` ends it with its statistics.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

import pynng
import trio

import consensus
import patterns

from ._children import REAP_TIMEOUT_S, Conn, aserve, serve
from ._placement import address as listen_address
from ._ports import free_port_block

__all__ = ["JOIN_TIMEOUT_S", "SETTLE_S", "floor_respondents", "members", "pattern_respondents", "respondents",
           "room_address", "split_members"]  # fmt: skip

JOIN_TIMEOUT_S = 30.0  # consensus.join(join_timeout=...) in the member processes
SETTLE_S = 0.3  # after the last join: roster updates and mesh dials die down
MARK = {"mark": lambda: ("mark", time.process_time())}


# ===================================================================== member processes (child side)
async def _answer_async(question: Any) -> Any:
    return question


def _answer_sync(question: Any) -> Any:
    return question


async def _members(conn: Conn, address: str, names: list[str], handler: str,
                   secret: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    on_poll = _answer_async if handler == "async" else _answer_sync
    joined: list[consensus.Member] = []
    stop, all_joined = trio.Event(), trio.Event()

    async def one(name: str) -> None:
        async with consensus.join(address, name=name, on_poll=on_poll, join_timeout=JOIN_TIMEOUT_S,
                                  secret=secret) as member:  # fmt: skip
            joined.append(member)
            if len(joined) == len(names):
                all_joined.set()
            await stop.wait()

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
        await all_joined.wait()
        conn.send(("ready", len(joined)))
        await aserve(conn, MARK)
        stats = [m.statistics() for m in joined]
        stop.set()  # every member leaves (sends LEAVE) and closes its sockets
    return {"members": len(joined), "polls_answered": sum(s.polls_answered for s in stats),
            "handler_errors": sum(s.handler_errors for s in stats),
            "malformed": sum(s.malformed for s in stats)}  # fmt: skip


def members(conn: Conn, address: str, names: list[str], handler: str,
            secret: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    """Join the room as ``names`` (concurrently, with ``secret`` if any), report ready, answer until told to stop."""
    return trio.run(_members, conn, address, names, handler, secret)


def respondents(conn: Conn, address: str, count: int) -> dict[str, Any]:
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
            socks.append(sock := pynng.Respondent0())
            sock.dial(address, block=True)
            threads.append(thread := threading.Thread(target=echo, args=(i, sock), daemon=True))
            thread.start()
        conn.send(("ready", count))
        serve(conn, MARK)
    finally:
        for sock in socks:
            sock.close()
        for thread in threads:
            thread.join(REAP_TIMEOUT_S)
    return {"members": count, "polls_answered": sum(answered), "handler_errors": 0, "malformed": 0}


async def _floor_respondents(conn: Conn, address: str, count: int) -> dict[str, Any]:
    answered = [0]

    async def one(sock: Any) -> None:
        fd, wait, again = sock.recv_fd, trio.lowlevel.wait_readable, pynng.TryAgain
        while True:
            try:
                question = sock.recv(block=False)
            except again:
                await wait(fd)
                continue
            sock.send(question)
            answered[0] += 1

    socks = [pynng.Respondent0() for _ in range(count)]
    try:
        async with trio.open_nursery() as nursery:
            for sock in socks:
                sock.dial(address, block=True)
                nursery.start_soon(one, sock)
            conn.send(("ready", count))
            await aserve(conn, MARK)
            nursery.cancel_scope.cancel()
    finally:
        for sock in socks:
            sock.close()
    return {"members": count, "polls_answered": answered[0], "handler_errors": 0, "malformed": 0}


def floor_respondents(conn: Conn, address: str, count: int) -> dict[str, Any]:
    """``count`` bare Respondent0 sockets under trio, one task each, echoing every survey at once."""
    return trio.run(_floor_respondents, conn, address, count)


async def _pattern_respondents(conn: Conn, address: str, count: int) -> dict[str, Any]:
    answered = [0]

    async def one(resp: patterns.Respondent) -> None:
        async for survey in resp:
            await survey.reply(survey.body)
            answered[0] += 1

    async with contextlib.AsyncExitStack() as stack, trio.open_nursery() as nursery:
        for i in range(count):
            resp = await stack.enter_async_context(patterns.Respondent(dial=address, name=f"r{i}"))
            nursery.start_soon(one, resp)
        conn.send(("ready", count))
        await aserve(conn, MARK)
        nursery.cancel_scope.cancel()
    return {"members": count, "polls_answered": answered[0], "handler_errors": 0, "malformed": 0}


def pattern_respondents(conn: Conn, address: str, count: int) -> dict[str, Any]:
    """``count`` ``patterns.Respondent`` sockets (no room), one task each, echoing every survey at once."""
    return trio.run(_pattern_respondents, conn, address, count)


def split_members(n: int, per_process: int) -> list[int]:
    """How many of ``n`` members each process gets: as even as possible, at most ``per_process``."""
    procs = max(1, math.ceil(n / per_process))
    base, extra = divmod(n, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]


def room_address(transport: str, tmpdir: str, name: str) -> str:
    """A fresh room address: an ipc path in ``tmpdir``, tcp on 127.0.0.1 (5 free ports P..P+4),
    or ws on 127.0.0.1 (one free port: the endpoints are URL paths on it); across hosts, the
    host's address instead of 127.0.0.1 (:mod:`bench._placement`)."""
    if transport == "ws":
        return f"ws://{listen_address()}:{free_port_block(1)}/{name}"
    return f"ipc://{tmpdir}/{name}" if transport == "ipc" else f"tcp://{listen_address()}:{free_port_block(5)}"
