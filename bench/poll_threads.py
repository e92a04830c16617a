"""Where a poll's time goes, by process and thread: room.poll beside its floor, in the same run.

Each variant polls N members in spawned processes (8 per process, as ``bench.poll``): the
floor (bare trio + pynng ``Surveyor0`` against bare ``Respondent0`` tasks), ``patterns``
(``patterns.Surveyor`` against ``patterns.Respondent``, no room) and ``room`` (``room.poll``
against ``consensus.join`` members with async handlers). Over the timed polls ``perf stat
--per-thread`` counts, in the host process and the members' processes, each thread's CPU
time, context switches and system calls; they are reported per poll for the trio threads
(``main``) and for NNG's own threads (``nng``), beside the median time to all N answers.
``room-surveyor`` polls the same room members through the room's own ``patterns.Surveyor``,
without ``room.poll``: the host's difference to ``room`` is what the room adds per poll.

The variants alternate ``--rounds`` times, so a shared machine's load hits them alike:
compare the ratios within a round. Needs ``perf`` (Linux, with permission to attach to
the processes: root, or ``perf_event_paranoid`` <= 1).

    python -m bench.poll_threads                      # N = 1 and 8 over ipc, 2 rounds
    python -m bench.poll_threads --n 64 --transport tcp --variant floor --variant room
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pynng
import trio

import consensus
import patterns

from ._children import Child
from ._common import median
from ._poll_phases import (
    JOIN_TIMEOUT_S,
    SETTLE_S,
    floor_respondents,
    members,
    pattern_respondents,
    room_address,
    split_members,
)

VARIANTS = ("floor", "patterns", "room", "room-surveyor")
EVENTS = ("task-clock", "context-switches", "raw_syscalls:sys_enter")
TIMEOUT_S = 5.0


class Perf:
    """``perf stat --per-thread`` attached to some processes until :meth:`stop`."""

    def __init__(self, pids: list[int], out: str) -> None:
        self._out = out
        self._proc = subprocess.Popen(
            ["perf", "stat", "-x", ";", "--per-thread", "-e", ",".join(EVENTS), "-o", out,
             "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> dict[int, dict[str, float]]:
        """Counts by thread id: {tid: {event: value}} (task-clock in ms)."""
        self._proc.send_signal(signal.SIGINT)
        self._proc.wait(30)
        counts: dict[int, dict[str, float]] = collections.defaultdict(dict)
        with open(self._out) as lines:
            for line in lines:
                fields = line.strip().split(";")
                if len(fields) < 4 or line.startswith("#"):
                    continue
                try:
                    counts[int(fields[0].rpartition("-")[2])][fields[3]] = float(fields[1])
                except ValueError:  # "<not counted>" and the like
                    continue
        return counts


def by_role(
    counts: dict[int, dict[str, float]], host: int, children: list[int], polls: int
) -> dict[str, Any]:
    """Per poll: CPU µs, switches and syscalls of the host's and the members' trio and NNG threads."""
    roles: dict[str, dict[str, float]] = collections.defaultdict(lambda: dict.fromkeys(EVENTS, 0.0))
    for tid, events in counts.items():
        process = "host" if os.path.exists(f"/proc/{host}/task/{tid}") else "members"
        thread = "main" if tid == host or tid in children else "nng"
        for event, value in events.items():
            roles[f"{process} {thread}"][event] += value
    return {role: {"cpu_us": round(v["task-clock"] * 1e3 / polls, 1),
                   "switches": round(v["context-switches"] / polls, 1),
                   "syscalls": round(v["raw_syscalls:sys_enter"] / polls, 1)}
            for role, v in sorted(roles.items())}  # fmt: skip


async def _timed(workers: list[Child], polls: int, warmup: int, tmp: str,
                 one: Callable[[int], Awaitable[None]]) -> tuple[list[float], dict[int, dict[str, float]]]:  # fmt: skip
    for i in range(warmup):
        await one(-1 - i)
    perf = Perf([os.getpid(), *(w.pid for w in workers)], f"{tmp}/perf.txt")
    await trio.sleep(0.3)  # perf attaches
    times = []
    for i in range(polls):
        t0 = time.perf_counter()
        await one(i)
        times.append(time.perf_counter() - t0)
    return times, perf.stop()


async def _floor(workers: list[Child], n: int, address: str, polls: int, warmup: int, tmp: str) -> Any:
    sizes = split_members(n, 8)
    sock = pynng.Surveyor0(opener=pynng.lib.nng_surveyor0_open_raw)
    pipes = [0]
    try:
        sock.add_post_pipe_connect_cb(lambda _pipe: pipes.__setitem__(0, pipes[0] + 1))
        sock.listen(address)
        for worker, size in zip(workers, sizes):
            worker.start(floor_respondents, address, size)
        for worker in workers[: len(sizes)]:
            await worker.areceive("ready")
        with trio.fail_after(JOIN_TIMEOUT_S):
            while pipes[0] < n:
                await trio.sleep(0.01)
        fd, again = sock.recv_fd, pynng.TryAgain

        async def one(i: int) -> None:
            sock.send((0x8000_0000 | (i & 0x7FFF_FFFF)).to_bytes(4, "big") + b"q")
            for _ in range(n):
                while True:
                    try:
                        sock.recv(block=False)
                        break
                    except again:
                        await trio.lowlevel.wait_readable(fd)

        with trio.fail_after(TIMEOUT_S * (polls + warmup)):
            return await _timed(workers[: len(sizes)], polls, warmup, tmp, one)
    finally:
        sock.close()
        for worker in workers[: len(sizes)]:
            worker.send("stop")
            await worker.areceive("done")


async def _all_replies(replies: Any, i: int, n: int) -> None:
    """Read a bare survey's ``n`` replies; a survey that ends short of them raises."""
    got = len(replies.take())
    while got < n:
        if replies.done:  # the deadline passed (wait() would return at once for ever)
            raise RuntimeError(f"poll {i}: {got} of {n} replies before its deadline")
        await replies.wait()
        got += len(replies.take())
    replies.close()


async def _patterns(workers: list[Child], n: int, address: str, polls: int, warmup: int, tmp: str) -> Any:
    sizes = split_members(n, 8)
    try:
        async with patterns.Surveyor(listen=address, name="bench") as boss:
            for worker, size in zip(workers, sizes):
                worker.start(pattern_respondents, address, size)
            for worker in workers[: len(sizes)]:
                await worker.areceive("ready")
            with trio.fail_after(JOIN_TIMEOUT_S):
                await boss.wait_for_peers(n)

            async def one(i: int) -> None:
                await _all_replies(await boss.survey(i, timeout=TIMEOUT_S), i, n)

            return await _timed(workers[: len(sizes)], polls, warmup, tmp, one)
    finally:
        for worker in workers[: len(sizes)]:
            worker.send("stop")
            await worker.areceive("done")


async def _room(workers: list[Child], n: int, address: str, polls: int, warmup: int, tmp: str,
                surveyor: bool = False) -> Any:  # fmt: skip
    sizes = split_members(n, 8)
    names = iter(f"m{i:03d}" for i in range(n))
    async with consensus.host(address) as room:
        try:
            for worker, size in zip(workers, sizes):
                worker.start(members, address, [next(names) for _ in range(size)], "async")
            with trio.fail_after(JOIN_TIMEOUT_S * 2):
                await room.wait_for_members(n)
            for worker in workers[: len(sizes)]:
                await worker.areceive("ready")
            await trio.sleep(SETTLE_S)

            async def one(i: int) -> None:
                result = await room.poll(i, timeout=TIMEOUT_S)
                if len(result.answers) != n:
                    raise RuntimeError(f"poll {i}: {len(result.answers)} of {n} answers")

            # The room's own socket and members, without room.poll: the difference is the room's.
            boss = room._surveyor

            async def bare(i: int) -> None:
                await _all_replies(await boss.survey({"question": i}, kind="poll", timeout=TIMEOUT_S), i, n)

            return await _timed(workers[: len(sizes)], polls, warmup, tmp, bare if surveyor else one)
        finally:
            for worker in workers[: len(sizes)]:
                worker.send("stop")
                await worker.areceive("done")


PHASES: dict[str, Callable[..., Awaitable[Any]]] = {"floor": _floor, "patterns": _patterns, "room": _room,
                                                    "room-surveyor": functools.partial(_room, surveyor=True)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.poll_threads", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", dest="ns", type=int, action="append", help="members (repeatable; default 1 and 8)")
    p.add_argument("--transport", dest="transports", action="append", choices=("ipc", "tcp", "ws"),
                   help="repeatable; default ipc")  # fmt: skip
    p.add_argument("--variant", dest="variants", action="append", choices=VARIANTS, help="default: all three")
    p.add_argument("--polls", type=int, default=500, help="timed polls per variant (default 500)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2, help="times the variants alternate (default 2)")
    args = p.parse_args(argv)
    if shutil.which("perf") is None:
        p.error("perf is not installed (linux-perf): this benchmark counts with perf stat")
    ns, transports = args.ns or [1, 8], args.transports or ["ipc"]
    variants = args.variants or list(VARIANTS)
    workers = [Child(f"poll-threads-{i}", i) for i in range(max(len(split_members(n, 8)) for n in ns))]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in ns:
                for transport in transports:
                    for r in range(args.rounds):
                        for variant in variants:
                            address = room_address(transport, tmp, f"{variant}-{n}-{r}")
                            times, counts = trio.run(PHASES[variant], workers, n, address, args.polls,
                                                     args.warmup, tmp)  # fmt: skip
                            used = [w.pid for w in workers[: len(split_members(n, 8))]]
                            roles = by_role(counts, os.getpid(), used, args.polls)
                            cells = "  ".join(f"{role}: {v['cpu_us']:.0f} us, {v['switches']:.1f} cs, "
                                              f"{v['syscalls']:.0f} sys" for role, v in roles.items())  # fmt: skip
                            print(f"N={n:<3} {transport} round {r + 1} {variant:8} median "
                                  f"{median(times) * 1e3:7.3f} ms | {cells}", flush=True)  # fmt: skip
    finally:
        for worker in workers:
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
