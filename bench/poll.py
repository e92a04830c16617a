"""Time to the result of a room poll whose members answer at once, over ipc.

The issue's goal: *a poll of N members that answer at once, over ipc, with a 5 s
timeout: median time to the result for N = 1, 8, 32, 64 (many members may share one
process); 8 members under 5 ms on this 2-core machine (raw NNG survey: the whole
5 s), and cost growing about linearly in N.*

Layout of one run:

* The room host (``consensus.host``) lives in this process; the members
  (``consensus.join``) live in spawned worker processes, at most ``--per-process``
  (default 8) per process, so N=64 uses 8 processes and N=1 one. The workers are
  started once and reused: per N and handler style they get a fresh room (a new
  ipc path), join, are polled, leave, and report back before the next phase starts.
* Per phase: wait for N members, let the joins settle, ``--warmup`` untimed polls,
  then ``--polls`` timed ones with ``timeout=5``. Each records ``PollResult.elapsed``
  and the wall time around ``await room.poll(...)``. Every poll must have all N
  answers, each equal to the question; polls that miss some are kept in the
  statistics (they take the whole timeout) and counted in the ``missing`` column.
* Handlers: ``async def on_poll(q): return q`` (the headline; runs in the member's
  trio loop) and, for comparison, a plain ``def`` (run in a worker thread).
* Reference: raw ``pynng.Surveyor0`` with N raw ``pynng.Respondent0`` peers in the same
  worker processes (a thread each, answering at once). NNG does not know N, so its
  receive loop ends only at ``survey_time`` (5 s): ``--raw-polls`` such surveys per N
  (default 2; 0 skips; ``--quick`` runs them for N=8 only). The time at which the raw
  surveyor had all N replies is reported too: the best NNG can do if you know N.

Besides the time to the result, each row shows where time goes: when the first and
the last answer arrived (``PollResult.latencies``), and the CPU time per poll spent by
the host process and by all member processes together (``time.process_time`` deltas
around the timed polls, so member heartbeats during that window are included).

    python -m bench.poll               # N = 1, 8, 32, 64; 50 polls each; async + sync handlers
    python -m bench.poll --quick       # 20 polls, async handlers only, raw reference at N=8
    python -m bench.poll --n 8 --polls 200 --raw-polls 0 --json /tmp/poll.json
    python -m bench.poll --quick --transport ipc --transport tcp   # also rooms over tcp (127.0.0.1)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import consensus

from ._common import (
    RESULTS_DIR,
    cpu_busy_fraction,
    describe_machine,
    machine_info,
    median,
    summarize,
    write_json,
)
from ._poll_raw import raw_phase
from ._poll_report import GOAL_N, compute_goals, render
from ._poll_workers import SETUP_TIMEOUT_S, Worker, split_members
from ._ports import free_port_block

DEFAULT_NS = (1, 8, 32, 64)
HANDLERS = ("async", "sync")
TRANSPORTS = ("ipc", "tcp")
POLL_TIMEOUT_S = 5.0
SETTLE_S = 0.3  # after the last join: roster updates and mesh dials die down
BUSY_WARNING = 0.15


def _names(n: int) -> list[str]:
    return [f"m{i:03d}" for i in range(n)]


def room_address(transport: str, tmpdir: str, name: str) -> str:
    """A fresh room address: an ipc path in ``tmpdir``, or tcp on 127.0.0.1 (5 free ports P..P+4)."""
    if transport == "ipc":
        return f"ipc://{tmpdir}/{name}"
    if transport == "tcp":
        return f"tcp://127.0.0.1:{free_port_block(5)}"
    raise ValueError(f"unknown transport {transport!r}")


# ===================================================================== consensus phase
async def _poll_phase(
    workers: list[Worker],
    n: int,
    handler: str,
    polls: int,
    warmup: int,
    timeout: float,
    per_process: int,
    tmpdir: str,
    transport: str = "ipc",
) -> dict[str, Any]:
    """One fresh room with N members of one handler style: warm up, then time ``polls`` polls."""
    address = room_address(transport, tmpdir, f"room-{handler}-{n}")
    sizes = split_members(n, per_process)
    used = workers[: len(sizes)]
    names = iter(_names(n))
    samples: dict[str, list[float]] = {"wall_ms": [], "elapsed_ms": [], "first_ms": [], "last_ms": []}
    bad = {"polls_missing": 0, "members_missing": 0, "errors": 0, "wrong_answers": 0}
    started_members = []
    async with consensus.host(address) as room:
        try:
            for worker, size in zip(used, sizes):
                worker.send("members", address, [next(names) for _ in range(size)], handler)
                started_members.append(worker)
            with trio.fail_after(SETUP_TIMEOUT_S):
                await room.wait_for_members(n)
            for worker in used:
                await worker.areceive("ready", SETUP_TIMEOUT_S)
            if len(room.members) != n:
                raise RuntimeError(f"expected {n} members, the room has {len(room.members)}")
            await trio.sleep(SETTLE_S)

            for i in range(warmup):
                await room.poll(-1 - i, timeout=timeout)
            for worker in used:
                worker.send("mark")
            worker_cpu0 = [await w.areceive("mark", SETUP_TIMEOUT_S) for w in used]
            stats0 = room.statistics()
            host_cpu0 = time.process_time()
            clock = time.perf_counter
            for i in range(polls):
                t0 = clock()
                result = await room.poll(i, timeout=timeout)
                t1 = clock()
                samples["wall_ms"].append((t1 - t0) * 1e3)
                samples["elapsed_ms"].append(result.elapsed * 1e3)
                if result.latencies:
                    samples["first_ms"].append(min(result.latencies.values()) * 1e3)
                    samples["last_ms"].append(max(result.latencies.values()) * 1e3)
                if result.missing or len(result.answers) != n:
                    bad["polls_missing"] += 1
                    bad["members_missing"] += max(len(result.missing), n - len(result.answers))
                bad["errors"] += len(result.errors)
                bad["wrong_answers"] += sum(1 for answer in result.answers.values() if answer != i)
            host_cpu = time.process_time() - host_cpu0
            stats1 = room.statistics()
            for worker in used:
                worker.send("mark")
            worker_cpu = sum([await w.areceive("mark", SETUP_TIMEOUT_S) for w in used]) - sum(worker_cpu0)
        finally:
            member_stats = []
            for worker in started_members:
                worker.send("stop")
            for worker in started_members:
                member_stats.append(await worker.areceive("done", SETUP_TIMEOUT_S))
    answered = sum(s["polls_answered"] for s in member_stats)
    if answered < (warmup + polls) * n:
        print(
            f"warning: N={n} {handler}: members answered {answered} of {(warmup + polls) * n} polls",
            file=sys.stderr,
        )
    return {
        "kind": "consensus",
        "handler": handler,
        "transport": transport,
        "n": n,
        "processes": len(sizes),
        "members_per_process": sizes,
        "polls": polls,
        "warmup": warmup,
        "wall": summarize(samples["wall_ms"], unit="ms"),
        "elapsed": summarize(samples["elapsed_ms"], unit="ms"),
        "first_answer": summarize(samples["first_ms"], unit="ms") if samples["first_ms"] else None,
        "last_answer": summarize(samples["last_ms"], unit="ms") if samples["last_ms"] else None,
        "per_member_ms": round(median(samples["wall_ms"]) / n, 4),
        "host_cpu_ms_per_poll": round(host_cpu * 1e3 / polls, 3),
        "members_cpu_ms_per_poll": round(worker_cpu * 1e3 / polls, 3),
        **bad,
        "late_replies": stats1.late_replies - stats0.late_replies,
        "rejected_replies": stats1.rejected_replies - stats0.rejected_replies,
        "malformed": stats1.malformed - stats0.malformed,
        "member_polls_answered": answered,
        "member_handler_errors": sum(s["handler_errors"] for s in member_stats),
        "samples_wall_ms": [round(v, 4) for v in samples["wall_ms"]],
    }


# ===================================================================== driver
def measure(args: argparse.Namespace, tmpdir: str) -> list[dict[str, Any]]:
    """Every phase of ``args`` (N x transport x handler, then the raw reference)."""
    max_procs = max(len(split_members(n, args.per_process)) for n in args.ns)
    workers: list[Worker] = []
    results: list[dict[str, Any]] = []
    try:
        for i in range(max_procs):
            workers.append(Worker(i))
        for n in args.ns:
            for transport in args.transports:
                for handler in args.handlers:
                    t = time.perf_counter()
                    print(f"  N={n:<3} {transport} {handler:<5} ...", end="", flush=True, file=sys.stderr)
                    row = trio.run(
                        _poll_phase,
                        workers,
                        n,
                        handler,
                        args.polls,
                        args.warmup,
                        args.timeout,
                        args.per_process,
                        tmpdir,
                        transport,
                    )
                    results.append(row)
                    print(
                        f" median {row['wall']['median_ms']:.2f} ms ({time.perf_counter() - t:.1f} s)",
                        file=sys.stderr,
                    )
            if args.raw_polls > 0 and n in args.raw_ns:
                t = time.perf_counter()
                print(
                    f"  N={n:<3} raw   ... ({args.raw_polls} x {args.timeout:g} s)",
                    end="",
                    flush=True,
                    file=sys.stderr,
                )
                row = raw_phase(workers, n, args.raw_polls, args.timeout, args.per_process, tmpdir)
                results.append(row)
                print(f" {time.perf_counter() - t:.1f} s", file=sys.stderr)
    finally:
        for worker in workers:
            worker.stop()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.poll",
        description="Median time to the result of a room poll whose N members answer at once (ipc).",
    )
    parser.add_argument(
        "--n", dest="ns", type=int, action="append", help="member count (repeatable; default 1, 8, 32, 64)"
    )
    parser.add_argument("--polls", type=int, default=None, help="timed polls per N (default 50, --quick 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed polls first (default 5)")
    parser.add_argument(
        "--quick", action="store_true", help="20 polls, async handlers only, raw reference only at N=8"
    )
    parser.add_argument(
        "--handler",
        dest="handlers",
        action="append",
        choices=HANDLERS,
        help="member handler style (repeatable; default async and sync, --quick async)",
    )
    parser.add_argument(
        "--raw-polls",
        type=int,
        default=2,
        help=f"raw pynng surveys per N, {POLL_TIMEOUT_S:g} s each (default 2; 0 skips)",
    )
    parser.add_argument(
        "--raw-n",
        dest="raw_ns",
        type=int,
        action="append",
        help="run the raw reference only at this N (repeatable; default every N, --quick 8)",
    )
    parser.add_argument(
        "--transport",
        dest="transports",
        action="append",
        choices=TRANSPORTS,
        help="room transport (repeatable; default ipc; tcp uses 5 free ports on 127.0.0.1; "
        "the goals and the raw reference are over ipc)",
    )
    parser.add_argument("--per-process", type=int, default=8, help="members per worker process (default 8)")
    parser.add_argument("--timeout", type=float, default=POLL_TIMEOUT_S, help=argparse.SUPPRESS)
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "poll.json",
        help="where to write the JSON report (default bench/results/poll.json)",
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a goal is not met")
    args = parser.parse_args(argv)
    args.ns = args.ns or list(DEFAULT_NS)
    args.transports = args.transports or ["ipc"]
    if args.polls is None:
        args.polls = 20 if args.quick else 50
    args.handlers = args.handlers or (["async"] if args.quick else list(HANDLERS))
    if args.raw_ns is None:
        args.raw_ns = [GOAL_N] if args.quick else list(args.ns)
    if any(n < 1 for n in args.ns):
        parser.error("--n must be at least 1")
    if args.polls < 1 or args.warmup < 0 or args.raw_polls < 0 or args.per_process < 1:
        parser.error("--polls and --per-process must be >= 1, --warmup and --raw-polls >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"poll: N={args.ns}, {args.polls} polls (+{args.warmup} warm-up), handlers {args.handlers}, "
        f"raw reference {args.raw_polls} x {args.timeout:g} s at N={args.raw_ns}",
        file=sys.stderr,
    )
    machine = machine_info()
    machine["cpu_busy_before"] = cpu_busy_fraction()
    started = time.perf_counter()
    tmpdir = tempfile.mkdtemp(prefix="nng-bench-poll-")
    try:
        results = measure(args, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    machine["cpu_busy_after"] = cpu_busy_fraction()
    busy = [b for b in (machine["cpu_busy_before"], machine["cpu_busy_after"]) if b is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(
            f"warning: other processes kept the CPUs {max(busy):.0%} busy around this run; "
            "the poll times are inflated. Rerun on an idle machine.",
            file=sys.stderr,
        )
    goals = compute_goals(results)
    report = {
        "benchmark": "poll",
        "machine": machine,
        "params": {
            "ns": args.ns,
            "polls": args.polls,
            "warmup": args.warmup,
            "timeout_s": args.timeout,
            "handlers": {
                "async": "async def on_poll(q): return q (runs in the member's trio loop)",
                "sync": "def on_poll(q): return q (runs in a worker thread)",
            },
            "transports": args.transports,
            "members_per_process": args.per_process,
            "member_processes": "multiprocessing spawn, started once and reused; a fresh room (new ipc path) "
            "per N and handler; members leave and report before the next phase",
            "host": "consensus.host in the measuring process, defaults (heartbeat 0.5 s)",
            "settle_s": SETTLE_S,
            "clock": "time.perf_counter around await room.poll(i, timeout); PollResult.elapsed also kept",
            "raw_reference": {
                "polls": args.raw_polls,
                "ns": args.raw_ns,
                "survey_time_s": args.timeout,
                "respondents": "pynng.Respondent0, one thread each, echo at once",
                "surveyor": "pynng.Surveyor0 send, then blocking recv until pynng.Timeout",
            },
            "gc": "enabled",
            "elapsed_s": round(elapsed, 2),
        },
        "results": results,
        "goals": goals,
    }
    path = write_json(args.json, report)
    print()
    print(
        f"poll: time to the result of room.poll over ipc, members answering at once, timeout {args.timeout:g} s"
    )
    print(f"machine: {describe_machine(machine)}")
    print()
    print(render(results, goals))
    print(f"\nrun took {elapsed:.0f} s; JSON written to {path}")
    if args.check:
        unmet = [name for name, goal in goals.items() if isinstance(goal, dict) and goal.get("met") is False]
        if unmet:
            print(f"goals not met: {', '.join(unmet)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
