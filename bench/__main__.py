"""``python -m bench``: the whole benchmark suite, transports and peers side by side, in one run.

    python -m bench                      # every scenario and peer (about 10 minutes on 2 cores)
    python -m bench --quick              # fewer sizes and iterations: about 2-3 minutes
    python -m bench --only poll --quick  # one scenario (or system: toolkit, pynng, zmq, nats, redis, iceoryx2)
    python -m bench --out /tmp/b --json /tmp/b.json

Scenarios: rtt (round trips), throughput (push/pull), poll (poll to result vs N), work
(acknowledged work distribution, a worker killed mid-run) and large (shared memory vs
inline vs iceoryx2); the peers (pyzmq, NATS, Redis Streams) come from ``bench.peers``.
Writes ``results.json``, ``results.md``, PNG plots and ``run.log`` (everything the steps
printed) into ``bench/results/<timestamp>/`` (``bench/results/latest`` points at it),
then prints the ratios toolkit / peer and the goals of issue 7. ``bench/README.md``
documents the JSON schema and the metric names. Each benchmark also runs alone:
``python -m bench.pair_rtt``, ``bench.hotline_rtt``, ``bench.poll``, ``bench.distribute``,
``bench.stream_memory``, ``bench.shm``, ``bench.peers``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The benchmark suite: every scenario over NNG's transports, beside pyzmq, NATS and Redis.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer sizes and iterations (about 2-3 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario (rtt, throughput, poll, work, large) or system (toolkit, pynng, zmq, "
        "nats, redis, iceoryx2); repeatable or comma-separated",
    )
    parser.add_argument("--json", type=Path, help="also write results.json to this path")
    parser.add_argument(
        "--out", help="results folder (default bench/results/<timestamp>/, with bench/results/latest -> it)"
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a goal of issue 7 fails")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from . import _plots, _report, _suite
    from ._common import cpu_busy_fraction, describe_machine, machine_info, write_json
    from ._schema import Metric, Skip

    try:
        scenarios, systems = _suite.parse_only(args.only)
    except ValueError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    steps = _suite.select(_suite.build_steps(), scenarios, systems)
    folder, default_place = _suite.results_folder(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "run.log"
    print(f"bench: {len(steps)} steps{' (quick)' if args.quick else ''}: {', '.join(s.label for s in steps)}")
    print(f"bench: results in {folder}/, step output in {log.name}", flush=True)

    machine = machine_info()
    machine["cpu_busy_before"] = cpu_busy_fraction()
    started = time.perf_counter()
    with _suite.watch() as cleanup:
        records, timing = _suite.run_steps(steps, args.quick, log)
    elapsed = time.perf_counter() - started
    machine["cpu_busy_after"] = cpu_busy_fraction()

    records = [r for r in records if _suite.keep(r, scenarios, systems)]
    metrics = [r for r in records if isinstance(r, Metric)]
    skips = [r for r in records if isinstance(r, Skip)]
    ratios = _report.compute_ratios(metrics)
    goals = _report.compute_goals(metrics, skips)
    plots, plot_problems = _plots.draw_all(metrics, folder)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "suite": "python -m bench",
        "quick": args.quick,
        "only": sorted(scenarios | systems),
        "date": machine["date"],
        "elapsed_s": round(elapsed, 1),
        "machine": machine,
        "versions": _suite.versions(),
        "metrics": [m.to_json() for m in metrics],
        "skips": [s.to_json() for s in skips],
        "ratios": ratios,
        "goals": goals,
        "steps": timing,
        "cleanup": cleanup,
        "plots": plots,
        "plot_problems": plot_problems,
    }
    write_json(folder / "results.json", report)
    if args.json:
        write_json(args.json, report)
    (folder / "results.md").write_text(
        _report.markdown(report, metrics, skips, ratios, goals, plots) + "\n", encoding="utf-8"
    )
    latest = _suite.point_latest(folder) if default_place else None

    print()
    print(f"machine: {describe_machine(machine)}")
    print(f"run took {elapsed:.0f} s: " + ", ".join(f"{t['step']} {t['seconds']:.0f} s" for t in timing))
    print()
    print(_report.console_summary(ratios, goals, skips))
    if cleanup.get("shm_files_left") or cleanup.get("processes_left"):
        print(f"\nleft behind (removed/ended): shared memory {cleanup['shm_files_left']}, "
              f"processes {cleanup['processes_left']}")  # fmt: skip
    for problem in plot_problems:
        print(f"plot not drawn: {problem}")
    print(f"\nwritten: {folder}/ (results.json, results.md, {', '.join(plots) or 'no plots'}, run.log)")
    if latest is not None:
        print(f"         {latest} -> {folder.name}")
    if args.json:
        print(f"         {args.json}")
    if args.check and any(g["status"] == "FAIL" for g in goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
