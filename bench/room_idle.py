"""What an idle room costs: CPU a second of the host and of its members' processes, nobody polling.

Layout as in :mod:`bench.poll` (the host in this process, the members in spawned worker
processes of at most ``--per-process`` members each, ``consensus.join`` with an async
handler, default heartbeat 0.5 s): per N a fresh room, wait for every member, let the joins
settle (``--settle`` s), then read the CPU time of every process before and after
``--seconds`` of nothing. What is left is the room's background: members' heartbeats, the
host's beats, and whatever else the host sends unprompted. At N = 64 the poll is CPU-bound
(9 processes on 2 CPUs), so every millisecond of it shows in ``bench.poll``.

    python -m bench.room_idle                  # N = 8 and 64, 3 rounds of 5 s each, ipc
    python -m bench.room_idle --n 64 --rounds 5 --transport tcp
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import trio

import consensus

from . import _cli
from ._children import Child
from ._common import format_table
from ._poll_members import JOIN_TIMEOUT_S, members, room_address, split_members

__all__ = ["main", "measure_once"]

DEFAULT_NS = (8, 64)


async def measure_once(workers: list[Child], n: int, seconds: float, settle: float, per_process: int,
                       tmpdir: str, transport: str, tag: str) -> dict[str, Any]:  # fmt: skip
    """One fresh room of ``n`` members: CPU ms a second of the host and of the members' processes."""
    address = room_address(transport, tmpdir, f"idle-{n}-{tag}")
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    names = iter(f"m{i:03d}" for i in range(n))
    started: list[Child] = []
    async with consensus.host(address) as room:
        try:
            for worker, size in zip(used, sizes):
                worker.start(members, address, [next(names) for _ in range(size)], "async")
                started.append(worker)
            with trio.fail_after(JOIN_TIMEOUT_S * 2):
                await room.wait_for_members(n)
            for worker in used:
                await worker.areceive("ready")
            await trio.sleep(settle)
            for worker in used:
                worker.send("mark")
            cpu0 = [await w.areceive("mark") for w in used]
            host0, wall0, stats0 = time.process_time(), time.perf_counter(), room.statistics()
            await trio.sleep(seconds)
            host1, wall1, stats1 = time.process_time(), time.perf_counter(), room.statistics()
            for worker in used:
                worker.send("mark")
            cpu1 = [await w.areceive("mark") for w in used]
        finally:
            for worker in started:
                worker.send("stop")
            for worker in started:
                await worker.areceive("done")
    wall = wall1 - wall0
    per_proc = [(b - a) * 1e3 / wall for a, b in zip(cpu0, cpu1)]
    return {"n": n, "transport": transport, "seconds": round(wall, 3), "processes": len(sizes),
            "host_ms_per_s": round((host1 - host0) * 1e3 / wall, 2),
            "members_ms_per_s": round(sum(per_proc), 2),
            "member_process_ms_per_s": [round(v, 2) for v in per_proc],
            "members_left": stats1.leaves - stats0.leaves + stats1.expired - stats0.expired
            + stats1.connection_losses - stats0.connection_losses}  # fmt: skip


def measure(args: argparse.Namespace, tmpdir: str) -> list[dict[str, Any]]:
    workers = [Child(f"idle-worker-{i}", i) for i in range(max(len(split_members(n, args.per_process))
                                                             for n in args.ns))]  # fmt: skip
    rows: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            for transport in args.transports:
                for n in args.ns:
                    row = trio.run(measure_once, workers, n, args.seconds, args.settle, args.per_process,
                                   tmpdir, transport, f"{transport}-{r}")  # fmt: skip
                    print(f"  round {r} N={n:<3} {transport}: host {row['host_ms_per_s']:.1f} ms/s, "
                          f"members {row['members_ms_per_s']:.1f} ms/s", file=sys.stderr)  # fmt: skip
                    rows.append(row | {"round": r})
    finally:
        for worker in workers:
            worker.stop()
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    table = []
    for key in sorted({(row["transport"], row["n"]) for row in rows}):
        mine = [row for row in rows if (row["transport"], row["n"]) == key]
        host = [row["host_ms_per_s"] for row in mine]
        memb = [row["members_ms_per_s"] for row in mine]
        table.append([key[0], str(key[1]), str(len(mine)),
                      f"{statistics.median(host):.1f} ({min(host):.1f}-{max(host):.1f})",
                      f"{statistics.median(memb):.1f} ({min(memb):.1f}-{max(memb):.1f})"])  # fmt: skip
    return format_table(["transport", "N", "rounds", "host CPU ms/s median (range)",
                         "members' processes CPU ms/s median (range)"], table)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser("room_idle", "CPU a second of an idle room: host and members' processes.",
                    "1 round of 3 s per N")  # fmt: skip
    p.add_argument("--n", dest="ns", type=int, action="append", help="member count (repeatable; default 8, 64)")
    p.add_argument("--seconds", type=float, default=None, help="idle time measured per round (default 5)")
    p.add_argument("--rounds", type=int, default=None, help="rounds, N and transports interleaved (default 3)")
    p.add_argument("--settle", type=float, default=1.0, help="wait after the last join (default 1 s)")
    p.add_argument("--transport", dest="transports", action="append", choices=("ipc", "tcp"),
                   help="room transport (repeatable; default ipc)")  # fmt: skip
    p.add_argument("--per-process", type=int, default=8, help="members per worker process (default 8)")
    args = p.parse_args(argv)
    args.ns = args.ns or list(DEFAULT_NS)
    args.transports = args.transports or ["ipc"]
    args.seconds = args.seconds or (3.0 if args.quick else 5.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if any(n < 1 for n in args.ns) or args.seconds <= 0 or args.rounds < 1 or args.per_process < 1:
        p.error("--n, --rounds and --per-process must be >= 1, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        tmpdir = tempfile.mkdtemp(prefix="nng-bench-idle-")
        try:
            rows = measure(args, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        params = {"ns": args.ns, "seconds": args.seconds, "rounds": args.rounds, "settle_s": args.settle,
                  "transports": args.transports, "members_per_process": args.per_process,
                  "host": "consensus.host in the measuring process, defaults (heartbeat 0.5 s)",
                  "members": "consensus.join, async handler, in spawned worker processes",
                  "clock": "time.process_time of each process around the idle window, over wall time"}  # fmt: skip
        return {"params": params, "results": rows}

    title = "room_idle: CPU a second of an idle room (nobody polls)"
    return _cli.run(args, "room_idle", title, run, lambda report: render(report["results"]))


if __name__ == "__main__":
    sys.exit(main())
