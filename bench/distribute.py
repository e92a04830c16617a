"""Work sharing throughput: 64-byte tasks, trivial work, 2 worker processes over ipc, acknowledged.

The issue's goal: *64-byte tasks with trivial work, 2 worker processes over ipc,
acknowledged: tasks per second end to end. At least 20,000 tasks/s on this machine (raw
pynng push/pull under trio moves ~8,000-15,000 bare messages/s here).*

One run measures, side by side:

* ``toolkit``: ``consensus.Dispatcher`` in this process, two ``consensus.Worker``
  processes dialing it over ipc, handler ``async def echo(task): return task``; N unique
  64-byte ``bytes`` tasks (pre-built, handed over as a list) consumed with
  ``async for outcome in outcomes``. Tasks/s from entering ``distribute()`` (the first
  submit) to the N-th outcome. Every outcome must be ok and carry its own task as
  result, and every task id and task must come out exactly once, or the run aborts.
  Knobs: ``Worker(concurrency=1, prefetch=4095)``, ``Dispatcher(max_batch=256)``
  (``--concurrency``, ``--prefetch``, ``--max-batch``; ``--explore`` shows why).
* ``defaults`` (not with ``--quick``): the same with the library's default knobs
  (``concurrency=1``, ``prefetch`` = concurrency, ``max_batch=256``), on N/20 tasks.
* The references, bare 64-byte frames without acknowledgement: a raw ``pynng.Push0``
  listening in this process, a raw ``pynng.Pull0`` dialing from each of two processes;
  messages/s from the first send to the last receive in any puller
  (``time.monotonic_ns``: one clock for every process on Linux), over ``--raw-n`` frames
  (default N/2):

  - ``raw_trio``: ``await sock.asend()`` here, ``await sock.arecv()`` loops under trio;
  - ``raw_trio_pull``: blocking ``send`` here, ``arecv`` loops under trio in the pullers
    (the sender is no longer the bottleneck: what trio pullers can take);
  - ``raw_sync``: blocking ``send`` and ``recv`` (a thread in each puller).

* ``kill``: the toolkit again, but once 40% of the outcomes are in, at the first outcome
  at which it holds claimed tasks, one of the two worker processes gets SIGKILL, and an
  idle third process (started beforehand, with everything imported) starts a worker at
  that moment. Tasks/s, tasks redelivered, the longest pause between outcomes, and the
  same exactly-once checks. Attempts pushed to the killed worker that it never claimed
  come back only after ``claim_timeout`` (or, in library versions without it, the
  lease), so this phase runs with ``lease=2`` (``--kill-lease``).

Every phase gets a fresh ipc path and warms up first (``--warmup`` untimed tasks or
frames). The child processes (multiprocessing spawn: NNG is not fork-safe) are started
once and reused; the killed one is replaced. ``--repeats`` rounds run the phases in
turn, and the table shows the median round. Where the time goes: CPU time of this
process and of the children over each timed window, the rest of the machine's CPU use
in that window (this machine is shared: a busy neighbour deflates every rate), and for
the toolkit the messages on the dispatcher's sockets (tasks per batch, replies per task).
A worker the dispatcher does not count within 5 s of connecting is restarted (a
lost hello; logged and counted in the JSON).

``--explore`` also sweeps the knobs that matter for throughput,
``Worker(concurrency=, prefetch=)`` and ``Dispatcher(max_batch=)``, over
``--explore-repeats`` rounds of ``--explore-n`` tasks each.

    python -m bench.distribute                 # N=200,000, 3 rounds
    python -m bench.distribute --quick         # N=50,000, 1 round, no defaults row
    python -m bench.distribute --phase toolkit --repeats 1 --n 30000 --explore
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import trio

from . import _cli
from ._distribute_jobs import DEFAULT_KNOBS, EXPLORE, LIBRARY_DEFAULTS, PAYLOAD_SIZE, WORKERS, Knobs, Pool
from ._distribute_phases import RAW_STYLES, raw_phase, toolkit_phase
from ._distribute_report import compute_goals, fmt, render, summarize_rounds, summarize_sweep
from ._goals import ALTERNATING
from ._placement import SPAWN_ENV
from ._schema import TOOLKIT, Metric, Skip
from .peers._servers import redis_missing
from .peers._util import WORK_ROUNDS, rate_metric

PHASES = ("toolkit", "defaults", "raw_trio", "raw_trio_pull", "raw_sync", "kill")
KILL_AT = 0.4  # SIGKILL one worker once this share of the outcomes is in (and it holds claimed tasks)
KILL_LEASE_S = 2.0  # attempts pushed to the killed worker but never claimed come back only at their lease


# ===================================================================== driver
def _run_phase(pool: Pool, phase: str, args: argparse.Namespace, tmpdir: str, knobs: Knobs,
               n: int | None = None) -> dict[str, Any]:  # fmt: skip
    if phase in RAW_STYLES:
        return raw_phase(pool, args.raw_n, args.warmup, tmpdir, phase)
    if phase == "defaults":
        knobs, n, warmup = LIBRARY_DEFAULTS, max(1000, args.n // 20), args.warmup // 10
    else:
        warmup = args.warmup if n is None else min(args.warmup, n // 10)
    kill = phase == "kill"
    try:
        return trio.run(toolkit_phase, pool, knobs, n or args.n, warmup, tmpdir, phase,
                        args.kill_lease if kill else args.lease, args.kill_at if kill else None,
                        args.transport)  # fmt: skip
    finally:
        for child in [c for c in pool.children if c.killed]:
            pool.replace(child)


def _progress(label: str) -> float:
    print(f"  {label:<58} ...", end="", flush=True, file=sys.stderr)
    return time.perf_counter()


def _done(row: dict[str, Any], started: float) -> None:
    unit = "msgs/s" if row["kind"].startswith("raw") else "tasks/s"
    print(f" {row['rate']:>9,.0f} {unit} ({time.perf_counter() - started:.1f} s; CPU % parent "
          f"{fmt(row['parent_cpu_pct'])}, children {fmt(row['children_cpu_pct'])}, other "
          f"{fmt(row['other_cpu_pct'])})", file=sys.stderr)  # fmt: skip


def measure(args: argparse.Namespace, knobs: Knobs, tmpdir: str) -> tuple[list[dict[str, Any]],
                                                                          list[dict[str, Any]]]:  # fmt: skip
    pool = Pool(WORKERS + (1 if "kill" in args.phases else 0))
    rounds: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    try:
        pool.start()
        for r in range(args.repeats):
            for phase in args.phases:
                started = _progress(f"round {r + 1}/{args.repeats} {phase}")
                row = _run_phase(pool, phase, args, tmpdir, knobs)
                row["round"] = r + 1
                rounds.append(row)
                _done(row, started)
        if args.explore:
            for r in range(args.explore_repeats):  # rounds over the sweep: drift hits every point
                for candidate in EXPLORE:
                    started = _progress(f"explore {r + 1}/{args.explore_repeats} {candidate.label()}")
                    row = _run_phase(pool, "toolkit", args, tmpdir, candidate, n=args.explore_n)
                    row["kind"] = "explore"
                    row["round"] = r + 1
                    sweep.append(row)
                    _done(row, started)
    finally:
        pool.stop()
    return rounds, sweep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser("distribute",
                    "Tasks/s of Dispatcher + 2 Worker processes over ipc (64-byte tasks, "
                    "trivial work), against raw pynng push/pull.",
                    "N=50000, 1 round, no library-defaults row")  # fmt: skip
    add = p.add_argument
    add("--n", type=int, default=None, help="tasks (frames) per phase (default 200000, --quick 50000)")
    add("--warmup", type=int, default=None, help="untimed tasks first (default 5000, --quick 2000)")
    add("--repeats", type=int, default=None, help="rounds of all phases (default 3, --quick 1)")
    add("--phase", dest="phases", action="append", choices=PHASES,
        help="run only this phase (repeatable; default all, --quick all but 'defaults')")  # fmt: skip
    add("--transport", choices=("ipc", "tcp"), default="ipc",
        help="the toolkit phases' transport (default ipc; tcp: 2 free ports on 127.0.0.1; raw "
        "phases stay on ipc)")  # fmt: skip
    add("--concurrency", type=int, default=1, help="Worker(concurrency=) (default 1)")
    add("--prefetch", type=int, default=DEFAULT_KNOBS.prefetch,
        help=f"Worker(prefetch=) (default {DEFAULT_KNOBS.prefetch}; -1: the library's default)")  # fmt: skip
    add("--max-batch", type=int, default=DEFAULT_KNOBS.max_batch,
        help=f"Dispatcher(max_batch=) (default {DEFAULT_KNOBS.max_batch})")  # fmt: skip
    add("--raw-n", type=int, default=None, help="frames per raw phase (default N/2)")
    add("--lease", type=float, default=60.0, help="distribute(lease=) of the toolkit phases (default 60)")
    add("--kill-lease", type=float, default=KILL_LEASE_S,
        help=f"distribute(lease=) of the kill phase (default {KILL_LEASE_S:g}; see the module "
        "docstring)")  # fmt: skip
    add("--kill-at", type=float, default=KILL_AT, help="kill phase: share of outcomes before the SIGKILL")
    add("--explore", action="store_true", help="also sweep concurrency, prefetch and max_batch")
    add("--explore-n", type=int, default=30_000, help="tasks per sweep point (default 30000)")
    add("--explore-repeats", type=int, default=2, help="rounds over the sweep (default 2)")
    args = p.parse_args(argv)
    args.n = args.n or (50_000 if args.quick else 200_000)
    args.raw_n = args.raw_n or max(10, args.n // 2)
    args.warmup = (2000 if args.quick else 5000) if args.warmup is None else args.warmup
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.phases = [ph for ph in PHASES if (ph in args.phases if args.phases else not (args.quick and ph == "defaults"))]
    if min(args.n, args.raw_n, args.explore_n) < 10 or min(args.repeats, args.explore_repeats) < 1 or args.warmup < 0:
        p.error("--n, --raw-n and --explore-n must be >= 10, --repeats and --explore-repeats "
                ">= 1, --warmup >= 0")  # fmt: skip
    if args.concurrency < 1 or args.prefetch < -1 or not 1 <= args.max_batch <= 65536:
        p.error("--concurrency must be >= 1, --prefetch >= 0 (or -1), --max-batch in 1..65536")
    if args.lease <= 0 or args.kill_lease <= 0 or not 0.0 < args.kill_at < 1.0:
        p.error("--lease and --kill-lease must be > 0, --kill-at within (0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(args.concurrency, None if args.prefetch < 0 else args.prefetch, args.max_batch)
    print(f"distribute: {PAYLOAD_SIZE}-byte tasks, N={args.n:,} (raw {args.raw_n:,}; "
          f"+{args.warmup:,} warm-up), {args.repeats} round(s) of {', '.join(args.phases)}; "
          f"{knobs.label()}" + (f"; knob sweep at N={args.explore_n:,}" if args.explore else ""),
          file=sys.stderr)  # fmt: skip

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        tmpdir = tempfile.mkdtemp(prefix="nng-bench-distribute-")
        try:
            rounds, sweep = measure(args, knobs, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        summary = summarize_rounds(rounds, args.phases)
        kill = "kill" in args.phases
        params = {
            "n": args.n, "raw_n": args.raw_n, "warmup": args.warmup, "repeats": args.repeats, "phases": args.phases,
            "payload_bytes": PAYLOAD_SIZE, "tasks": "unique 64-byte bytes values, pre-built, given to distribute() as a list",
            "handler": "async def echo(task): return task (runs in the worker's trio loop)",
            "knobs": knobs.as_dict(), "library_defaults": LIBRARY_DEFAULTS.as_dict(),
            "distribute": "lease=--lease (kill phase: --kill-lease), max_attempts=3, ordered=False, buffer=None",
            "transport": f"{args.transport} (raw phases: ipc)", "workers": WORKERS,
            "children": "multiprocessing spawn, started once and reused; a fresh ipc path per phase; "
            "the killed child is replaced",
            "clock": "toolkit: time.perf_counter from entering distribute() to the N-th outcome; "
            "raw: time.monotonic_ns from the first send to the last receive in any puller",
            "lease_s": args.lease, "kill_at": args.kill_at if kill else None,
            "kill_lease_s": args.kill_lease if kill else None,
            "raw_reference": "pynng.Push0 listening here, pynng.Pull0 dialing from each child; "
            "bare 64-byte frames, no ack; default buffers",
            "explore_n": args.explore_n if args.explore else None,
            "explore_repeats": args.explore_repeats if args.explore else None,
        }  # fmt: skip
        return {"params": params, "summary": summary, "rounds": rounds, "sweep": summarize_sweep(sweep),
                "sweep_rounds": sweep, "goals": compute_goals(summary),
                "join_retries": sum(r.get("join_retries", 0) for r in rounds + sweep)}  # fmt: skip

    def text(report: dict[str, Any]) -> str:
        out = render(report["summary"], report["sweep"], report["goals"], knobs)
        if report["join_retries"]:
            joins = sum(WORKERS for r in report["rounds"] + report["sweep_rounds"] if "join_retries" in r)
            out += ("\nworkers restarted because the dispatcher dropped their hello: "
                    f"{report['join_retries']} (of {joins} worker joins)")  # fmt: skip
        return out

    title = f"distribute: {PAYLOAD_SIZE}-byte tasks, trivial async handler, {WORKERS} worker processes over {args.transport}"
    return _cli.run(args, "distribute", title, run, text)


# ===================================================================== the suite's step
WORK_VARIANT = "Dispatcher, 2 Workers, acked"
KILL_VARIANT = "Dispatcher, 2 Workers, acked, one SIGKILLed mid-run"


def suite_step(quick: bool, transports: tuple[str, ...] = ("ipc", "tcp"), n: int | None = None,
               with_kill: bool = True, with_redis: bool | None = None) -> list[Metric | Skip]:  # fmt: skip
    """The suite's ``work`` step: tcp and ipc, the median of ``WORK_ROUNDS`` rounds; the kill run over ipc.

    ``n``: tasks per round (default 50,000, full 200,000); ``with_kill``: the kill run too.
    ``with_redis`` (default: on one host, not with ``--hosts``, whose peer steps place Redis
    themselves) and redis-server installed: the tcp rounds alternate with as many Redis
    Streams rounds of the same ``n`` (ABBA), reported as their own Redis row, which the goal
    compares with: measured minutes apart, a neighbour's burst in one window moved the
    ratio by tens of percent (``bench.distribute_peers`` shows the spread)."""
    n = n or (50_000 if quick else 200_000)
    if with_redis is None:
        with_redis = not os.environ.get(SPAWN_ENV)
    out: list[Metric | Skip] = []
    pool = Pool(WORKERS + (1 if with_kill else 0))  # the spare replaces the killed worker
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-work-")
    try:
        pool.start()
        phases = [(t, "toolkit") for t in transports] + ([("ipc", "kill")] if with_kill else [])
        for transport, phase in phases:
            args = parse_args(["--quick", "--n", str(n), "--transport", transport])
            knobs = Knobs(args.concurrency, None if args.prefetch < 0 else args.prefetch, args.max_batch)
            rounds = 1 if phase == "kill" else WORK_ROUNDS  # the peers' figures are medians of as many

            def one() -> dict[str, Any]:
                return _run_phase(pool, phase, args, tmpdir, knobs)  # noqa: B023 -- called in this iteration

            if transport == "tcp" and phase == "toolkit" and with_redis and redis_missing() is None:
                rows, redis = _alternating(one, n, rounds)
                out.append(redis)
            else:
                rows = [one() for _ in range(rounds)]
            row = sorted(rows, key=lambda r: r["rate"])[len(rows) // 2]
            variant = KILL_VARIANT if phase == "kill" else WORK_VARIANT
            out.append(Metric("work", TOOLKIT, variant, transport, 64, WORKERS, "tasks_per_s", row["rate"],
                              "tasks/s", higher_is_better=True))  # fmt: skip
            kill = row.get("kill")
            if kill:
                out.append(Metric("work", TOOLKIT, variant, transport, 64, WORKERS, "kill_pause_ms",
                                  kill["longest_pause_after_kill_ms"], "ms"))  # fmt: skip
                out.append(Metric("work", TOOLKIT, variant, transport, 64, WORKERS, "redelivered",
                                  row["distribution"]["redelivered"], "tasks"))  # fmt: skip
    finally:
        pool.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def _alternating(
    toolkit: Callable[[], dict[str, Any]], n: int, rounds: int
) -> tuple[list[dict[str, Any]], Metric]:
    """``rounds`` toolkit rounds and as many Redis Streams rounds of ``n`` tasks, in ABBA order."""
    from .peers import redis_streams

    rows: list[dict[str, Any]] = []
    seconds: list[float] = []
    with redis_streams.work_session() as redis:
        for r in range(rounds):
            for system in ("toolkit", "redis") if r % 2 == 0 else ("redis", "toolkit"):
                if system == "toolkit":
                    rows.append(toolkit())
                else:
                    seconds.append(redis(n))
    variant = redis_streams.WORK_VARIANT + redis_streams.hiredis_note() + ALTERNATING
    return rows, rate_metric("redis", variant, "tcp", n, statistics.median(seconds))


if __name__ == "__main__":
    sys.exit(main())
