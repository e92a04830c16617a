"""The scaffold every ``python -m bench.<name>`` shares: its options, the machine, the JSON, the goals.

A benchmark gives :func:`parser` its own options and :func:`run` two functions:
``measure()`` returns the report's body (``params``, ``results``, ``goals`` or
``ratios``, ...), ``render(report)`` the text printed under the title. :func:`run`
samples the machine's other CPU load around the measurement (and warns when it was
high), writes ``{"benchmark": name, "machine": ..., **body}`` as JSON, prints the table
and, with ``--check``, exits with status 1 when a goal is not met (any ``"met": false``
or ``"<name>_met": false`` under ``goals`` or ``ratios``) or the body says ``failed``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ._common import RESULTS_DIR, cpu_busy_fraction, describe_machine, machine_info, write_json

__all__ = ["parser", "run", "unmet_goals"]

BUSY_WARNING = 0.15  # warn when other work kept the CPUs busier than this around the run


def parser(name: str, description: str, quick: str, json: bool = True) -> argparse.ArgumentParser:
    """An argument parser with ``--quick``, ``--json`` (default ``bench/results/<name>.json``) and ``--check``."""
    p = argparse.ArgumentParser(prog=f"python -m bench{'.' + name if name else ''}", description=description)
    p.add_argument("--quick", action="store_true", help=quick)
    default = RESULTS_DIR / f"{name}.json" if json else None
    p.add_argument("--json", type=Path, default=default,
                   help=f"also write the JSON report here (default {default})")  # fmt: skip
    p.add_argument("--check", action="store_true", help="exit with status 1 if a goal is not met")
    return p


def unmet_goals(tree: Any, path: str = "") -> list[str]:
    """The names of every goal marked not met below ``tree`` (or a FAIL in a list of the suite's goals)."""
    out: list[str] = []
    if isinstance(tree, list):
        out += [g["goal"] for g in tree if isinstance(g, dict) and g.get("status") == "FAIL"]
    if isinstance(tree, dict):
        if tree.get("met") is False:
            out.append(path)
        for key, value in tree.items():
            if key.endswith("_met") and value is False:
                out.append(f"{path}:{key[:-4]}" if path else key[:-4])
            out += unmet_goals(value, f"{path}:{key}" if path else str(key))
    return out


def run(args: argparse.Namespace, name: str, title: str, measure: Callable[[dict[str, Any]], dict[str, Any]],
        render: Callable[[dict[str, Any]], str], packages: Iterable[str] = (),
        json_paths: Iterable[Path] = ()) -> int:  # fmt: skip
    """Measure, report and judge; ``measure(machine)`` returns the body (which, without ``name``, holds
    the machine itself); the JSON goes to ``--json`` and ``json_paths``."""
    machine = machine_info(packages)
    machine["cpu_busy_before"] = cpu_busy_fraction()
    started = time.perf_counter()
    body = measure(machine)
    elapsed = time.perf_counter() - started
    machine["cpu_busy_after"] = cpu_busy_fraction()
    busy = [b for b in (machine["cpu_busy_before"], machine["cpu_busy_after"]) if b is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(f"warning: other processes kept the CPUs {max(busy):.0%} busy around this run; "
              "the figures are skewed (compare ratios within one run, or rerun on an idle "
              "machine)", file=sys.stderr)  # fmt: skip
    report: dict[str, Any] = body
    if name:
        report = {"benchmark": name, "machine": machine, **body}
        report.setdefault("params", {})["elapsed_s"] = round(elapsed, 2)
    written = [str(write_json(path, report)) for path in [*json_paths, *([args.json] if args.json else [])]]
    print(f"\n{title}\nmachine: {describe_machine(machine)}\n\n{render(report)}")
    print(f"\nrun took {elapsed:.0f} s" + (f"; JSON written to {', '.join(written)}" if written else ""))
    unmet = unmet_goals(report.get("goals")) + unmet_goals(report.get("ratios"), "ratios")
    if unmet:
        print(f"goals not met: {', '.join(unmet)}", file=sys.stderr)
    return 1 if report.get("failed") or (args.check and unmet) else 0
