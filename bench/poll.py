"""Time to the result of a room poll whose members answer at once, over ipc.

The issue's goal: *a poll of N members that answer at once, over ipc, with a 5 s
timeout: median time to the result for N = 1, 8, 32, 64 (many members may share one
process); 8 members under 5 ms on this 2-core machine (raw NNG survey: the whole
5 s), and cost growing about linearly in N.*

Layout of one run:

* The room host (``consensus.host``) lives in this process (the suite's step runs it in a
  child process, so that an NNG panic costs one cell: :func:`suite_step`); the members
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
    python -m bench.poll --quick --transport tcp --transport ws    # one-port rooms (ws) beside tcp
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import trio

from patterns import sweep_shared_memory

from . import _cli
from ._cells import run_isolated
from ._children import Child
from ._common import format_table
from ._goals import poll_cell
from ._poll_members import SETTLE_S, split_members
from ._poll_phases import floor_phase, pattern_phase, poll_phase, raw_phase
from ._schema import TOOLKIT, Metric, Skip

DEFAULT_NS = (1, 8, 32, 64)
HANDLERS = ("async", "sync")
TRANSPORTS = ("ipc", "tcp", "ws")
POLL_TIMEOUT_S = 5.0
GOAL_N = 8
GOAL_MS = 5.0
FLOOR_VARIANT = "Surveyor0 trio floor (knows N)"
LINEAR_SLACK = 1.25  # "about linear": median(N=64)/median(N=8) at most 8 x this


def compute_goals(results: list[dict[str, Any]]) -> dict[str, Any]:
    med = {r["n"]: r["wall"]["median_ms"] for r in results
           if r["kind"] == "consensus" and r["handler"] == "async" and r["transport"] == "ipc"}  # fmt: skip
    goals: dict[str, Any] = {"basis": "median wall time of room.poll over ipc, async handlers"}
    if GOAL_N in med:
        goals["n8_median_ms"] = {"value": med[GOAL_N], "op": "<", "target": GOAL_MS,
                                 "met": med[GOAL_N] < GOAL_MS}  # fmt: skip
    if 64 in med and 8 in med and med[8] > 0:
        ratio = med[64] / med[8]
        goals["linearity"] = {"ratio_64_over_8": round(ratio, 3), "linear_would_be": 8.0, "op": "<=",
                              "target": round(8.0 * LINEAR_SLACK, 2), "met": ratio <= 8.0 * LINEAR_SLACK,
                              "marginal_ms_per_member_8_to_64": round((med[64] - med[8]) / 56, 4)}  # fmt: skip
    missing = sum(r["polls_missing"] for r in results if r["kind"] == "consensus")
    goals["all_answers"] = {"polls_with_missing_members": missing, "met": missing == 0}
    return goals


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: list[dict[str, Any]], goals: dict[str, Any]) -> str:
    rows = []
    for r in results:
        median = r["all_replies"] and r["all_replies"]["median_ms"] if r["kind"] != "consensus" else None
        if r["kind"] in ("floor", "pattern"):
            a = r["all_replies"]
            what = "floor: trio + Surveyor0" if r["kind"] == "floor" else "patterns.Surveyor, no room:"
            rows.append((f"{what} {r['transport']}", r["n"], r["processes"], _f(a["median_ms"]),
                         _f(a["p99_ms"]), _f(a["mean_ms"]), r["polls"], "0/0", _f(a["median_ms"] / r["n"], 3),
                         "-", _f(a["median_ms"]), "-", "-"))  # fmt: skip
        elif r["kind"] == "consensus":
            first, last = r["first_answer"], r["last_answer"]
            rows.append((f"room.poll {r['transport']}, {r['handler']} handler", r["n"], r["processes"],
                         _f(r["wall"]["median_ms"]), _f(r["wall"]["p99_ms"]), _f(r["wall"]["mean_ms"]), r["polls"],
                         f"{r['polls_missing']}/{r['members_missing']}", _f(r["per_member_ms"], 3),
                         _f(first and first["median_ms"]), _f(last and last["median_ms"]),
                         _f(r["host_cpu_ms_per_poll"]), _f(r["members_cpu_ms_per_poll"])))  # fmt: skip
        else:
            loop, first = r["recv_loop"], r["first_reply"]
            rows.append(("raw Surveyor0 ipc recv loop", r["n"], r["processes"],
                         _f(loop["median_ms"], 1), _f(loop["p99_ms"], 1), _f(loop["mean_ms"], 1),
                         r["polls"], f"{r['polls_missing']}/{r['members_missing']}",
                         _f(median / r["n"] if median is not None else None, 3),
                         _f(first and first["median_ms"]), _f(median), "-", "-"))  # fmt: skip
    table = format_table(("what", "N", "procs", "median ms", "p99 ms", "mean ms", "polls",
                          "missing", "median/N ms", "1st ans ms", "last ans ms",
                          "host CPU ms/poll", "members CPU ms/poll"), rows)  # fmt: skip
    lines = [table, "", "missing = polls with missing members / members missing in total (must be 0/0)",
             "1st/last ans = median arrival of the first and the last answer (PollResult.latencies);",
             "  for raw rows: first reply, and the moment all N replies were in (best case if N is known);",
             "  the raw median/N column is that all-in time / N. CPU = process_time per timed poll.",
             ""]  # fmt: skip
    n8 = goals.get("n8_median_ms")
    if n8:
        lines.append(f"goal N={GOAL_N} median < {GOAL_MS:g} ms: {n8['value']:.2f} ms -> "
                     f"{'met' if n8['met'] else 'NOT met'}")  # fmt: skip
    lin = goals.get("linearity")
    if lin:
        lines.append(f"linearity: median(N=64)/median(N=8) = {lin['ratio_64_over_8']:.2f} "
                     f"(linear = 8, goal <= {lin['target']:g}: "
                     f"{'met' if lin['met'] else 'NOT met'}); marginal cost "
                     f"{lin['marginal_ms_per_member_8_to_64']:.3f} ms per member from 8 to 64")  # fmt: skip
    miss = goals["all_answers"]
    lines.append(f"all answers in every poll: {'yes' if miss['met'] else 'NO'} "
                 f"({miss['polls_with_missing_members']} polls with missing members)")  # fmt: skip
    return "\n".join(lines)


# ===================================================================== driver
Cell = tuple[int, str]  # (N, transport): a room and its floor


def measure(args: argparse.Namespace, tmpdir: str,
            cell_done: Callable[[Cell, list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every phase of ``args``: per cell (N x transport, or ``args.cells``) each handler, the
    pattern and the floor; after an N's last cell, the raw reference. ``cell_done(cell, rows)``
    after each cell with its rows (the raw reference's in its N's last cell)."""
    cells: list[Cell] = args.cells or [(n, transport) for n in args.ns for transport in args.transports]
    max_procs = max(len(split_members(n, args.per_process)) for n, _ in cells)
    workers: list[Child] = []
    results: list[dict[str, Any]] = []
    try:
        workers += [Child(f"poll-worker-{i}", i) for i in range(max_procs)]
        for i, (n, transport) in enumerate(cells):
            first = len(results)
            for handler in args.handlers:
                t = time.perf_counter()
                print(f"  N={n:<3} {transport} {handler:<5} ...", end="", flush=True, file=sys.stderr)
                row = trio.run(functools.partial(poll_phase, abort_after_join=args.abort_at == (n, transport)),
                               workers, n, handler, args.polls, args.warmup, args.timeout, args.per_process, tmpdir,
                               transport)  # fmt: skip
                results.append(row)
                print(f" median {row['wall']['median_ms']:.2f} ms "
                      f"({time.perf_counter() - t:.1f} s)", file=sys.stderr)  # fmt: skip
            for label, phase, wanted in (("pattern", pattern_phase, args.pattern),
                                         ("floor", floor_phase, args.floor)):  # fmt: skip
                if not wanted:
                    continue
                print(f"  N={n:<3} {transport} {label} ...", end="", flush=True, file=sys.stderr)
                row = trio.run(phase, workers, n, args.polls, args.warmup, args.per_process, tmpdir, transport)
                results.append(row)
                print(f" median {row['all_replies']['median_ms']:.2f} ms", file=sys.stderr)
            last_of_n = i + 1 == len(cells) or cells[i + 1][0] != n
            if last_of_n and args.raw_polls > 0 and n in args.raw_ns:
                t = time.perf_counter()
                print(f"  N={n:<3} raw   ... ({args.raw_polls} x {args.timeout:g} s)", end="",
                      flush=True, file=sys.stderr)  # fmt: skip
                results.append(raw_phase(workers, n, args.raw_polls, args.timeout, args.per_process, tmpdir))
                print(f" {time.perf_counter() - t:.1f} s", file=sys.stderr)
            if cell_done is not None:
                cell_done((n, transport), results[first:])
    finally:
        for worker in workers:
            worker.stop()
    return results


def _cell(text: str) -> Cell:
    n, _, transport = text.partition(":")
    if transport not in TRANSPORTS or not n.isdigit() or int(n) < 1:
        raise argparse.ArgumentTypeError(f"a cell is N:transport (N >= 1, transport one of {TRANSPORTS}), got {text!r}")
    return int(n), transport


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser("poll", "Median time to the result of a room poll whose N members answer at once (ipc).",
                    "20 polls, async handlers only, raw reference only at N=8")  # fmt: skip
    p.add_argument("--n", dest="ns", type=int, action="append",
                   help="member count (repeatable; default 1, 8, 32, 64)")  # fmt: skip
    p.add_argument("--polls", type=int, default=None, help="timed polls per N (default 50, --quick 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed polls first (default 5)")
    p.add_argument("--handler", dest="handlers", action="append", choices=HANDLERS,
                   help="member handler style (repeatable; default async and sync, --quick "
                   "async)")  # fmt: skip
    p.add_argument("--raw-polls", type=int, default=2,
                   help=f"raw pynng surveys per N, {POLL_TIMEOUT_S:g} s each (default 2; 0 "
                   "skips)")  # fmt: skip
    p.add_argument("--raw-n", dest="raw_ns", type=int, action="append",
                   help="run the raw reference only at this N (repeatable; default every N, "
                   "--quick 8)")  # fmt: skip
    p.add_argument("--transport", dest="transports", action="append", choices=TRANSPORTS,
                   help="room transport (repeatable; default ipc; tcp uses 5 free ports on 127.0.0.1, ws one; "
                   "the goals and the raw reference are over ipc)")  # fmt: skip
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="skip the floor: a bare trio + pynng surveyor and respondents, per N and transport")
    p.add_argument("--no-pattern", dest="pattern", action="store_false",
                   help="skip the pattern layer alone: patterns.Surveyor and Respondents, no room, per N and "
                   "transport (where between the floor and room.poll the time goes)")  # fmt: skip
    p.add_argument("--per-process", type=int, default=8, help="members per worker process (default 8)")
    p.add_argument("--timeout", type=float, default=POLL_TIMEOUT_S, help=argparse.SUPPRESS)
    p.add_argument("--cell", dest="cells", type=_cell, action="append", help=argparse.SUPPRESS)  # the suite's
    p.add_argument("--abort-at", type=_cell, default=None, help=argparse.SUPPRESS)  # tests: see suite_step
    args = p.parse_args(argv)
    args.ns = args.ns or list(DEFAULT_NS)
    args.transports = args.transports or ["ipc"]
    args.polls = args.polls or (20 if args.quick else 50)
    args.handlers = args.handlers or (["async"] if args.quick else list(HANDLERS))
    if args.raw_ns is None:
        args.raw_ns = [GOAL_N] if args.quick else list(args.ns)
    if any(n < 1 for n in args.ns) or args.polls < 1 or args.warmup < 0 or args.raw_polls < 0 or args.per_process < 1:
        p.error("--n, --polls and --per-process must be >= 1, --warmup and --raw-polls >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"poll: N={args.ns}, {args.polls} polls (+{args.warmup} warm-up), handlers "
          f"{args.handlers}, raw reference {args.raw_polls} x {args.timeout:g} s at "
          f"N={args.raw_ns}", file=sys.stderr)  # fmt: skip

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        tmpdir = tempfile.mkdtemp(prefix="nng-bench-poll-")
        try:
            results = measure(args, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        params = {
            "ns": args.ns, "polls": args.polls, "warmup": args.warmup, "timeout_s": args.timeout,
            "handlers": {"async": "async def on_poll(q): return q (runs in the member's trio loop)",
                         "sync": "def on_poll(q): return q (runs in a worker thread)"},
            "transports": args.transports, "members_per_process": args.per_process,
            "member_processes": "multiprocessing spawn, started once and reused; a fresh room (new ipc path) "
            "per N and handler; members leave and report before the next phase",
            "host": "consensus.host in the measuring process, defaults (heartbeat 0.5 s)", "settle_s": SETTLE_S,
            "clock": "time.perf_counter around await room.poll(i, timeout); PollResult.elapsed also kept",
            "raw_reference": {"polls": args.raw_polls, "ns": args.raw_ns, "survey_time_s": args.timeout,
                              "respondents": "pynng.Respondent0, one thread each, echo at once",
                              "surveyor": "pynng.Surveyor0 send, then blocking recv until pynng.Timeout"},
        }  # fmt: skip
        return {"params": params, "results": results, "goals": compute_goals(results)}

    title = f"poll: time to the result of room.poll, members answering at once, timeout {args.timeout:g} s"
    return _cli.run(args, "poll", title, run, lambda report: render(report["results"], report["goals"]))


# ===================================================================== the suite's step
CELL_TIMEOUT_S = 600.0  # one cell (N over one transport): normally 5-30 s; a cell's process hung past it is killed


def _cells_argv(quick: bool, cells: list[Cell], polls: int | None, raw: bool) -> list[str]:
    argv = ["--quick"] if quick else []
    argv += ["--polls", str(polls or (50 if quick else 100)), "--no-pattern", "--handler", "async"]
    for n, transport in cells:
        argv += ["--cell", f"{n}:{transport}"]
    return argv + (["--raw-polls", "2", "--raw-n", str(GOAL_N)] if raw else ["--raw-polls", "0"])


def _records(rows: list[dict[str, Any]]) -> list[Metric | Skip]:
    out: list[Metric | Skip] = []
    for row in rows:
        if row["kind"] == "consensus":
            variant = f"room.poll ({row['handler']} handler)"
            stats, system, transport = row["wall"], TOOLKIT, row["transport"]
        elif row["kind"] == "floor":
            variant, stats, system, transport = FLOOR_VARIANT, row["all_replies"], "pynng", row["transport"]
        else:
            if row["all_replies"] is None:
                out.append(Skip("poll", "pynng", "Surveyor0", f"N={row['n']}: not every reply arrived"))
                continue
            variant = "Surveyor0 sync, all N replies in (its recv loop ends only at survey_time)"
            stats, system, transport = row["all_replies"], "pynng", "ipc"
        for name, key in (("gather_median_ms", "median_ms"), ("gather_p99_ms", "p99_ms")):
            out.append(Metric("poll", system, variant, transport, 0, row["n"], name, stats[key], "ms"))
    return out


def suite_step(quick: bool, transports: tuple[str, ...] = ("ipc", "tcp", "ws"), ns: tuple[int, ...] | None = None,
               raw_survey: bool = True, *, polls: int | None = None,
               abort: frozenset[tuple[int, str]] = frozenset()) -> list[Metric | Skip]:  # fmt: skip
    """The suite's ``poll`` step: async handlers over ipc, tcp and ws (a one-port room), as Metric rows.

    The cells (each N over each transport: a room and its floor) run in a process of their
    own (:mod:`bench._poll_cell` through :func:`bench._cells.run_isolated`), which hosts the
    rooms and keeps its member processes from cell to cell: an NNG panic there costs the cell
    it hit only, which becomes a Skip (``bench._goals.poll_cell``) with how its process ended
    and its last line; the cells after it run in a new process. A process that hangs is
    killed once no cell ended for :data:`CELL_TIMEOUT_S` (not after every cell's time). ``ns``: the member counts
    (default 1, 8, 64; full 1, 8, 32, 64); ``raw_survey``: the raw sync survey at N=8 in a
    full run (over ipc, after N=8's last cell: ``--hosts`` turns it off). ``polls`` and ``abort`` (the
    cells whose process aborts once its members are in) are for tests."""
    out: list[Metric | Skip] = []
    todo = [(n, transport) for n in ns or ((1, 8, 64) if quick else (1, 8, 32, 64)) for transport in transports]
    raw = not quick and raw_survey
    while todo:  # one process for the cells left; after a crash, a new one for those after the cell it hit
        argv = _cells_argv(quick, todo, polls, raw)
        argv += [arg for cell in todo if cell in abort for arg in ("--abort-at", "{}:{}".format(*cell))][:2]
        outcome = run_isolated("bench._poll_cell", argv, CELL_TIMEOUT_S * len(todo), idle=CELL_TIMEOUT_S)
        for done in outcome.results:
            out += _records(done["rows"])
            todo.remove((done["n"], done["transport"]))
        if not todo:
            break
        if outcome.reason is None:  # (it ended well without them: running them again would too)
            out += [Skip("poll", TOOLKIT, poll_cell(n, transport), "failed: its process ended without this "
                         "cell's rows (see run.log)") for n, transport in todo]  # fmt: skip
            break
        n, transport = todo.pop(0)  # the cell it was in
        sweep_shared_memory()  # what its rooms left in shared memory (their owner is dead)
        print(f"  N={n} {transport}: failed, {outcome.reason}", file=sys.stderr, flush=True)
        out.append(Skip("poll", TOOLKIT, poll_cell(n, transport), f"failed: {outcome.reason} (see run.log)"))
    return out


if __name__ == "__main__":
    sys.exit(main())
