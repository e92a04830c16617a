"""The suite's PNG plots (matplotlib, Agg backend): latency vs payload, throughput, poll vs N,
work distribution and large payloads. Each plot is drawn only when its scenario has data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import size_label
from ._report import TRANSPORT_ORDER
from ._schema import TOOLKIT, Metric

__all__ = ["PLOTS", "draw_all"]

_STYLE = {TOOLKIT: "-", "pynng": "--", "pyzmq": ":", "nats": "-.", "redis": "-.", "iceoryx2": ":"}


def _series(metrics: list[Metric], scenario: str, name: str, x: str) -> dict[str, list[tuple[float, float]]]:
    """``{label: [(x, value), ...]}`` for one scenario's metric, one series per system/variant/transport."""
    out: dict[str, list[tuple[float, float]]] = {}
    for m in metrics:
        if m.scenario == scenario and m.name == name:
            label = f"{m.system}: {m.variant}, {m.transport}"
            out.setdefault(label, []).append((getattr(m, x), m.value))
    return {label: sorted(points) for label, points in out.items()}


_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:gray", "tab:olive", "tab:cyan", "black", "gold")  # fmt: skip


def _lines(
    ax: Any, series: dict[str, list[tuple[float, float]]], colors: dict[str, str] | None = None
) -> None:
    """One line per series, a color each; with ``colors`` (shared by the panels of one figure,
    one per transport) a system and variant keeps its color across panels."""
    shared = colors is not None
    colors = {} if colors is None else colors
    for label, points in series.items():
        system = label.split(":", 1)[0]
        what = label.rsplit(", ", 1)[0] if shared else label  # without the transport across panels
        color = colors.setdefault(what, _PALETTE[len(colors) % len(_PALETTE)])
        xs, ys = zip(*points)
        ax.plot(xs, ys, _STYLE.get(system, "-"), color=color, marker="o", markersize=3,
                linewidth=1.6 if system == TOOLKIT else 1, label=label)  # fmt: skip


def _axes(ax: Any, xs: list[Any], labels: list[str], xlabel: str, ylabel: str | None,
          legend: dict[str, Any]) -> None:  # fmt: skip
    """Log-2 x axis ticked at ``xs``, log y axis, grid, legend."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels)
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(**legend)


def _save(plt: Any, fig: Any, path: Path, title: str | None = None) -> bool:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _latency(plt: Any, metrics: list[Metric], path: Path) -> bool:
    rtt = [m for m in metrics if m.scenario == "rtt" and m.name == "rtt_median_us"]
    if not rtt:
        return False
    transports = sorted({m.transport for m in rtt}, key=lambda t: TRANSPORT_ORDER.get(t, 9))
    sizes = sorted({m.payload for m in rtt})
    cols = min(3, len(transports))
    rows = -(-len(transports) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False, sharey=True)
    colors: dict[str, str] = {}
    for ax, transport in zip(axes.flat, transports):
        _lines(ax, _series([m for m in rtt if m.transport == transport], "rtt", "rtt_median_us",
                           "payload"), colors)  # fmt: skip
        _axes(ax, sizes, [size_label(s) for s in sizes], "payload", None, {"fontsize": 6.5,
                                                                           "loc": "upper left"})  # fmt: skip
        ax.set_title(f"round trip over {transport}")
    for ax in axes.flat[len(transports) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("median round trip (µs)")
    return _save(plt, fig, path, "Round-trip latency vs payload size (median; lower is better)")


def _throughput(plt: Any, metrics: list[Metric], path: Path) -> bool:
    data = [m for m in metrics if m.scenario == "throughput"]
    if not data:
        return False
    sizes = sorted({m.payload for m in data})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (name, ylabel) in zip(axes, (("msgs_per_s", "messages / s"), ("mb_per_s", "MB / s"))):
        _lines(ax, _series(data, "throughput", name, "payload"))
        _axes(ax, sizes, [size_label(s) for s in sizes], "payload", ylabel, {"fontsize": 7})
    return _save(plt, fig, path, "One-way push/pull throughput (higher is better)")


def _poll(plt: Any, metrics: list[Metric], path: Path) -> bool:
    series = _series(metrics, "poll", "gather_median_ms", "n")
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    _lines(ax, series)
    ns = sorted({n for points in series.values() for n, _ in points})
    _axes(ax, ns, [str(n) for n in ns], "N (members, respondents)",
          "median time to all N answers (ms)", {"fontsize": 7})  # fmt: skip
    ax.set_title("Poll / scatter-gather time vs N (lower is better)")
    return _save(plt, fig, path)


def _bars(plt: Any, rows: list[Metric], path: Path, title: str, xlabel: str, log: bool) -> None:
    labels = [f"{m.system}: {m.variant}, {m.transport}" + (f" ({size_label(m.payload)})" if m.scenario == "large"
              else "") for m in rows]  # fmt: skip
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.6))
    colors = ["tab:blue" if m.system == TOOLKIT else "tab:gray" for m in rows]
    ax.barh(range(len(rows)), [m.value for m in rows], color=colors)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    for i, m in enumerate(rows):
        ax.text(m.value, i, f" {m.value:,.3g}" if m.value < 1000 else f" {m.value:,.0f}", va="center",
                fontsize=7)  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    _save(plt, fig, path)


def _large(plt: Any, metrics: list[Metric], path: Path) -> bool:
    rows = [m for m in metrics if m.scenario == "large" and m.name == "delivered_ms"]
    if not rows:
        return False
    rows.sort(key=lambda m: (m.payload, m.value))
    _bars(plt, rows, path, "Large payload, one-way delivery between two processes\n(median; lower is better)",
          "delivered (ms, log scale)", log=True)  # fmt: skip
    return True


def _work(plt: Any, metrics: list[Metric], path: Path) -> bool:
    rows = [m for m in metrics if m.scenario == "work" and m.name == "tasks_per_s"]
    if not rows:
        return False
    rows.sort(key=lambda m: -m.value)
    _bars(plt, rows, path, "Acknowledged work distribution, 64-byte tasks, 2 workers\n(higher is better)",
          "tasks / s", log=False)  # fmt: skip
    return True


PLOTS: dict[str, Callable[[Any, list[Metric], Path], bool]] = {"latency.png": _latency,
                                                               "throughput.png": _throughput,
                                                               "poll.png": _poll, "work.png": _work,
                                                               "large.png": _large}  # fmt: skip


def draw_all(metrics: list[Metric], folder: Path) -> tuple[list[str], list[str]]:
    """Draw every plot the metrics allow into ``folder``: (file names written, problems)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ["matplotlib not installed: pip install -e '.[bench]' (no plots)"]
    written, problems = [], []
    for name, draw in PLOTS.items():
        try:
            if draw(plt, metrics, folder / name):
                written.append(name)
        except Exception as exc:  # noqa: BLE001 - a plot must not lose the run's numbers
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            plt.close("all")
    return written, problems
