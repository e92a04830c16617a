"""``python -m bench``: the whole benchmark suite, transports and peers side by side, in one run.

    python -m bench                      # every scenario and peer (about 10 minutes on 2 cores)
    python -m bench --quick              # fewer sizes and iterations: about 4 minutes
    python -m bench --only poll --quick  # one scenario (or system: toolkit, pynng, zmq, nats, redis, iceoryx2)
    python -m bench --out /tmp/b --json /tmp/b.json
    python -m bench --hosts --quick      # poll, work, large across 3 hosts in network namespaces (root)

Scenarios: rtt (round trips), throughput (push/pull), poll (poll to result vs N), work
(acknowledged work distribution, a worker killed mid-run), large (shared memory vs
inline vs iceoryx2), stream (64 MiB sends back to back vs raw pynng and a memcpy), bridge
(the asyncio and blocking fronts), security (what a room secret costs) and deliberate (a
deliberation's host overhead vs polls and a vote by hand); the peers (pyzmq, NATS, Redis
Streams) come from ``bench.peers``, and the floor of trio + pynng (bare loops, nothing but the
I/O) is measured beside the toolkit in rtt, throughput and poll.
Writes ``results.json``, ``results.md``, PNG plots and ``run.log`` (everything the steps
printed) into ``bench/results/<timestamp>/`` (``bench/results/latest`` points at it),
then prints the ratios toolkit / peer and the goals of issues 7 and 18. ``bench/README.md``
documents the JSON schema and the metric names. Each benchmark also runs alone:
``python -m bench.pair_rtt``, ``bench.hotline_rtt``, ``bench.poll``, ``bench.distribute``,
``bench.stream_memory``, ``bench.shm``, ``bench.shm_stream``, ``bench.deliberate``, ``bench.peers``.

``--hosts`` runs the poll, work and large-payload scenarios, and the peers, across three
hosts of a network-namespace bed instead (``bench._hosts_suite``: who runs where, and the
``placement`` of each record); it is a run of its own, never part of the default suite.
Where namespaces cannot be made (not root, no ``ip netns``) it prints one line saying why
and exits with status 2.
"""

from __future__ import annotations

import sys
import time
from typing import Any

SCHEMA_VERSION = 1
GOALS_OF = {False: "issues 7 and 18", True: "issue 17, across hosts"}  # the goals' heading, per mode


def main(argv: list[str] | None = None) -> int:
    from . import _cli, _plots, _report, _suite
    from ._schema import Metric, Skip

    p = _cli.parser("",
                    "The benchmark suite: every scenario over NNG's transports, beside pyzmq, "
                    "NATS and Redis.", "fewer sizes and iterations (about 4 minutes)",
                    json=False)  # fmt: skip
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this scenario (rtt, throughput, poll, work, large, bridge, security, deliberate, stream) or system "
                   "(toolkit, pynng, zmq, nats, redis, iceoryx2); repeatable or comma-separated")  # fmt: skip
    p.add_argument("--out", help="results folder (default bench/results/<timestamp>/, with "
                   "bench/results/latest -> it)")  # fmt: skip
    p.add_argument("--hosts", action="store_true",
                   help="instead: poll, work and large payloads (and the peers) across 3 hosts in "
                   "network namespaces (needs root and ip netns; exits 2 saying why when it cannot)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        scenarios, systems = _suite.parse_only(args.only)
    except ValueError as exc:
        p.error(str(exc))
    placed = None
    if args.hosts:
        from . import _hosts_suite

        reason = _hosts_suite.unavailable()
        if reason is not None:
            print(f"bench --hosts: cannot run here: {reason}", file=sys.stderr)
            return 2
        placed = _hosts_suite.Run()
    steps = _suite.select(placed.steps() if placed else _suite.build_steps(), scenarios, systems)
    folder, default_place = _suite.results_folder(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"bench: {len(steps)} steps{' (quick)' if args.quick else ''}: {', '.join(s.label for s in steps)}")
    print(f"bench: results in {folder}/, step output in run.log", flush=True)

    def measure(machine: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        hosts_info: dict[str, Any] = {}
        with _suite.watch() as cleanup:
            if placed is None:
                records, timing = _suite.run_steps(steps, args.quick, folder / "run.log")
            else:  # the bed inside watch(): each host's /dev/shm gets the run's folder too
                with placed:
                    hosts_info = placed.describe()
                    records, timing = _suite.run_steps(steps, args.quick, folder / "run.log")
                cleanup["namespaces_left"] = _hosts_suite.left_behind(hosts_info["bed"])
                records = _hosts_suite.placed(records)
        records = [r for r in records if _suite.keep(r, scenarios, systems)]
        metrics = [r for r in records if isinstance(r, Metric)]
        skips = [r for r in records if isinstance(r, Skip)]
        ratios = _report.compute_ratios(metrics)
        goals = _hosts_suite.goals(metrics, skips) if placed else _report.compute_goals(metrics, skips)
        plots, plot_problems = _plots.draw_all(metrics, folder)
        report = {"schema_version": SCHEMA_VERSION, "suite": "python -m bench" + (" --hosts" if placed else ""),
                  "quick": args.quick, "only": sorted(scenarios | systems),
                  "date": machine["date"], "elapsed_s": round(time.perf_counter() - started, 1),
                  "machine": machine, "versions": _suite.versions(),
                  "metrics": [m.to_json() for m in metrics],
                  "skips": [s.to_json() for s in skips], "ratios": ratios, "goals": goals,
                  "steps": timing, "cleanup": cleanup, "plots": plots,
                  "plot_problems": plot_problems}  # fmt: skip
        if placed is not None:
            report["hosts"] = hosts_info
        text = _report.markdown(report, metrics, skips, ratios, goals, plots, GOALS_OF[bool(placed)])
        (folder / "results.md").write_text(text + "\n", encoding="utf-8")
        return report

    def render(report: dict[str, Any]) -> str:
        cleanup, plots = report["cleanup"], report["plots"]
        lines = ["steps: " + ", ".join(f"{t['step']} {t['seconds']:.0f} s" for t in report["steps"]), "",
                 _report.console_summary(report["ratios"], report["goals"], [Skip(**s) for s in report["skips"]],
                                         GOALS_OF[bool(placed)])]  # fmt: skip
        if cleanup.get("shm_files_left") or cleanup.get("processes_left") or cleanup.get("namespaces_left"):
            lines.append(f"\nleft behind (removed/ended): shared memory {cleanup['shm_files_left']}, "
                         f"processes {cleanup['processes_left']}, namespaces {cleanup.get('namespaces_left', [])}")  # fmt: skip
        lines += [f"plot not drawn: {problem}" for problem in report["plot_problems"]]
        lines.append(f"\nwritten: {folder}/ (results.json, results.md, "
                     f"{', '.join(plots) or 'no plots'}, run.log)")  # fmt: skip
        if default_place:
            lines.append(f"         {_suite.point_latest(folder)} -> {folder.name}")
        return "\n".join(lines)

    title = "python -m bench --hosts" if placed else "python -m bench"
    return _cli.run(args, "", title, measure, render, json_paths=[folder / "results.json"])


if __name__ == "__main__":
    sys.exit(main())
