"""Helpers shared by the benchmarks: statistics, machine description, JSON output.

Nothing here imports the toolkit or opens sockets, so a benchmark can import it
in a spawned child process cheaply.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR", "cpu_busy_fraction", "describe_machine", "format_table",
           "machine_info", "mean", "median", "percentile", "size_label", "summarize",
           "summarize_ns", "write_json"]  # fmt: skip

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Default folder for benchmark JSON output (``bench/results``)."""


# --------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be within [0, 100], got {q!r}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def mean(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("mean of an empty sequence")
    return math.fsum(values) / len(values)


def summarize(values: Sequence[float], *, unit: str, digits: int = 3) -> dict[str, Any]:
    """Median, p99, mean, min and max of ``values`` (keys ``median_<unit>``, ...) and their count."""
    figures = {"median": median(values), "p99": percentile(values, 99.0), "mean": mean(values),
               "min": min(values), "max": max(values)}  # fmt: skip
    return {**{f"{k}_{unit}": round(v, digits) for k, v in figures.items()}, "n": len(values)}


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, Any]:
    """:func:`summarize` of nanosecond samples in µs."""
    return summarize([s / 1000.0 for s in samples_ns], unit="us")


def size_label(size: int) -> str:
    """``64 B``, ``4 KiB``, ``1 MiB``."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


# --------------------------------------------------------------------- machine
def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _nng_version() -> str | None:
    try:
        import pynng

        return str(pynng.ffi.string(pynng.lib.nng_version()).decode())
    except (ImportError, AttributeError):  # informational only
        return None


def _git_revision() -> str | None:
    def git(*argv: str) -> subprocess.CompletedProcess[str]:
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(["git", *argv], check=False, cwd=root, capture_output=True,
                              text=True, timeout=5)  # fmt: skip

    try:
        rev = git("rev-parse", "--short", "HEAD")
        if rev.returncode != 0:
            return None
        return rev.stdout.strip() + ("-dirty" if git("status", "--porcelain", "--untracked-files=no").stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(extra_packages: Iterable[str] = ()) -> dict[str, Any]:
    """A description of where a benchmark ran, for the JSON report."""
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable_cpus = None
    packages = {name: _version(name) for name in ("pynng", "trio", "cbor2", *extra_packages)}
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
            "cpus_usable": usable_cpus, "loadavg": load, "python": sys.version.split()[0],
            "python_implementation": platform.python_implementation(), "nng": _nng_version(),
            "packages": packages, "git_revision": _git_revision()}  # fmt: skip


# --------------------------------------------------------------------- output
def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def cpu_busy_fraction(interval: float = 0.5) -> float | None:
    """Share of all CPUs busy during the next ``interval`` seconds (Linux /proc/stat; else None).

    Sampled while this process sleeps, so it measures *other* work on the machine.
    """
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(interval)
    after = _cpu_times()
    if after is None or after[0] == before[0]:
        return None
    total, idle = after[0] - before[0], after[1] - before[1]
    return round(1.0 - idle / total, 3)


def describe_machine(info: dict[str, Any]) -> str:
    """One line summarizing :func:`machine_info` for a printed report."""
    pkgs = info.get("packages", {})
    return (f"{info['platform']}, {info['cpu_count']} CPUs, load {info['loadavg']}, other CPU "
            "load before/after "
            f"{_pct(info.get('cpu_busy_before'))}/{_pct(info.get('cpu_busy_after'))}, Python "
            f"{info['python']}, pynng {pkgs.get('pynng')} (NNG {info['nng']}), trio "
            f"{pkgs.get('trio')}, {info['date']}")  # fmt: skip


def _pct(fraction: float | None) -> str:
    return "?" if fraction is None else f"{fraction:.0%}"


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON, creating parent folders. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned.

    Floats are shown with one decimal; pass strings for any other formatting.
    """
    text_rows = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) if i < left else cell.rjust(widths[i]) for i,
                         cell in enumerate(cells))  # fmt: skip

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in text_rows)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
