"""Work sharing against Redis Streams, rounds alternating, so drift on a shared machine hits both.

The suite measures the toolkit's work step and the Redis peer minutes apart, three rounds
each: on a 2-core machine shared with other work, a neighbour's burst in one window moves
the ratio by tens of percent. Here one run keeps both systems up (the toolkit's worker
processes, redis-server and its worker processes) and alternates timed rounds of the same
``N`` tasks between them, in ABBA order (toolkit, redis, redis, toolkit, ...) so a steady
drift cancels out. It reports, per system, every round, the median and the spread
(max / min), and the ratio of the medians beside the ratio of each adjacent pair of rounds
(the spread of those says how far one quick run's ratio can be trusted).

Both sides as in the suite: the toolkit is ``bench.distribute``'s phase (``Dispatcher``
here, two ``Worker`` processes over tcp, knobs ``DEFAULT_KNOBS``); Redis is
``bench.peers.redis_streams`` (pipelined XADD from a submitting thread, two consumer-group
workers doing XREADGROUP ``COUNT c`` + XADD result + XACK in one pipeline per batch).
``--read-count`` repeats gives Redis more than one batch size (each its own system in the
rotation), to show which one is its fastest (the goal compares with that).

    python -m bench.distribute_peers --rounds 6 --n 50000
    python -m bench.distribute_peers --rounds 4 --read-count 100 --read-count 256
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import trio

from . import _cli
from ._distribute_jobs import DEFAULT_KNOBS, WORKERS, Pool
from ._distribute_phases import SystemCpu, toolkit_phase
from .peers import redis_streams
from .peers._servers import redis_missing

TOOLKIT = "toolkit"


def _toolkit_round(pool: Pool, tmpdir: str, n: int, warmup: int, transport: str) -> dict[str, Any]:
    row = trio.run(toolkit_phase, pool, DEFAULT_KNOBS, n, warmup, tmpdir, "toolkit", 60.0, None, transport)
    return {"rate": row["rate"], "other_cpu_pct": row["other_cpu_pct"],
            "own_cpu_pct": round(row["parent_cpu_pct"] + (row["children_cpu_pct"] or 0.0), 1)}  # fmt: skip


def _redis_round(run: Callable[[int], float], n: int) -> dict[str, Any]:
    system = SystemCpu()
    seconds = run(n)
    busy = system.busy_pct()
    return {"rate": round(n / seconds, 1), "machine_cpu_pct": None if busy is None else round(busy, 1)}


def _order(systems: list[str], rnd: int) -> list[str]:
    """ABBA: every other round in reverse, so each system goes first as often as last."""
    return systems if rnd % 2 == 0 else systems[::-1]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    systems = [TOOLKIT] + [f"redis COUNT {c}" for c in args.read_count]
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    sequence: list[str] = []
    pool = Pool(WORKERS)
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-vs-")
    with contextlib.ExitStack() as stack:
        pool.start()
        stack.callback(pool.stop)
        sessions = {
            f"redis COUNT {c}": stack.enter_context(redis_streams.work_session(c)) for c in args.read_count
        }
        _toolkit_round(pool, tmpdir, args.warmup, 0, args.transport)  # untimed: the toolkit warms up too
        for rnd in range(args.rounds):
            for system in _order(systems, rnd):
                started = time.perf_counter()
                if system == TOOLKIT:
                    row = _toolkit_round(pool, tmpdir, args.n, args.warmup, args.transport)
                else:
                    row = _redis_round(sessions[system], args.n)
                rounds[system].append(row)
                sequence.append(system)
                print(f"  round {rnd + 1}/{args.rounds} {system:<18} {row['rate']:>9,.0f} tasks/s "
                      f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)  # fmt: skip
    return {"params": {"n": args.n, "warmup": args.warmup, "rounds": args.rounds, "order": "ABBA",
                       "transport": f"toolkit {args.transport}, redis tcp", "knobs": DEFAULT_KNOBS.as_dict(),
                       "redis_read_counts": args.read_count, "sequence": sequence},
            "rounds": rounds, "summary": summarize(rounds)}  # fmt: skip


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per system: median, min, max, spread; per peer: the ratio of medians and of adjacent pairs."""
    out: dict[str, Any] = {}
    for system, rows in rounds.items():
        rates = [r["rate"] for r in rows]
        out[system] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
                       "spread": round(max(rates) / min(rates), 3),
                       "cv_pct": round(100 * statistics.pstdev(rates) / statistics.mean(rates), 1)}  # fmt: skip
    mine = [r["rate"] for r in rounds[TOOLKIT]]
    for system, rows in rounds.items():
        if system == TOOLKIT:
            continue
        pairs = [a / r["rate"] for a, r in zip(mine, rows)]  # the same round: adjacent in time
        out[system]["ratio_of_medians"] = round(out[TOOLKIT]["median"] / out[system]["median"], 3)
        out[system]["pair_ratios"] = [round(p, 3) for p in pairs]
        out[system]["pair_ratio_median"] = round(statistics.median(pairs), 3)
    return out


def render(report: dict[str, Any]) -> str:
    head = (f"{'system':<18} {'median':>9} {'min':>9} {'max':>9} {'spread':>7} {'cv %':>5}  "
            "ratio (medians)  pair ratios (median)  rounds")  # fmt: skip
    lines = [head]
    for system, s in report["summary"].items():
        rates = " ".join(f"{r['rate'] / 1e3:.1f}k" for r in report["rounds"][system])
        ratio = f"{s['ratio_of_medians']:.2f}" if "ratio_of_medians" in s else ""
        pairs = (f"{min(s['pair_ratios']):.2f}..{max(s['pair_ratios']):.2f} ({s['pair_ratio_median']:.2f})"
                 if "pair_ratios" in s else "")  # fmt: skip
        lines.append(f"{system:<18} {s['median']:>9,.0f} {s['min']:>9,.0f} {s['max']:>9,.0f} "
                     f"{s['spread']:>7.2f} {s['cv_pct']:>5.1f}  {ratio:<15}  {pairs:<20}  {rates}")  # fmt: skip
    return (
        "\n".join(lines)
        + "\n\ntasks/s; spread = max/min of a system's rounds; pair ratios: toolkit / peer in the same round"
    )


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("distribute_peers", "Toolkit work sharing vs Redis Streams, rounds alternating (ABBA).",
                    "N=20000, 4 rounds")  # fmt: skip
    p.add_argument("--n", type=int, default=None, help="tasks per round (default 50000, --quick 20000)")
    p.add_argument("--rounds", type=int, default=None, help="rounds of every system (default 6, --quick 4)")
    p.add_argument("--warmup", type=int, default=2000, help="untimed toolkit tasks before each round")
    p.add_argument("--transport", choices=("tcp", "ipc"), default="tcp", help="the toolkit's (Redis: tcp)")
    p.add_argument("--read-count", type=int, action="append", default=None,
                   help=f"Redis XREADGROUP COUNT (repeatable; default {redis_streams.READ_COUNT})")  # fmt: skip
    args = p.parse_args(argv)
    args.n = args.n or (20_000 if args.quick else 50_000)
    args.rounds = args.rounds or (4 if args.quick else 6)
    args.read_count = args.read_count or [redis_streams.READ_COUNT]
    missing = redis_missing()
    if missing:
        print(f"distribute_peers: {missing}", file=sys.stderr)
        return 2
    title = f"work sharing, toolkit ({args.transport}) vs Redis Streams (tcp), {args.rounds} alternating rounds of {args.n:,}"
    return _cli.run(args, "distribute_peers", title, lambda machine: measure(args), render)


if __name__ == "__main__":
    sys.exit(main())
