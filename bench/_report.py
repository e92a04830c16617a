"""The suite's report: ratios toolkit / peer (and to the floor of trio + NNG), and the Markdown tables.

A ratio divides the toolkit's value by a peer's, for the same scenario, metric,
transport, payload, N and placement, measured in the same run (absolute figures drift on shared
machines; ratios much less). For times (lower is better) a ratio below 1 means the
toolkit is faster; for rates (higher is better) above 1 does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._common import size_label
from ._goals import compute_goals, fmt
from ._schema import ONE_HOST, TOOLKIT, Metric, Skip

__all__ = ["compute_goals", "compute_ratios", "console_summary", "fmt", "markdown", "summary_table"]

SCENARIOS = ("rtt", "throughput", "poll", "work", "large", "bridge", "security", "deliberate", "stream")
TITLES = {"rtt": "Round trip (request and its reply, one at a time)",
          "throughput": "One-way throughput, push/pull", "poll": "Poll to result (scatter-gather of N)",
          "work": "Work distribution with acknowledgement",
          "large": "Large payloads, one-way delivery between two processes",
          "bridge": "The asyncio and blocking fronts next to trio (poll of 8, hotline ask)",
          "security": "Room secrets: the cost of authentication, and of hostile frames",
          "deliberate": "Host overhead of a 3-round deliberation vs 3 polls and a vote by hand",
          "stream": "Large payloads streamed back to back (no pause), one-way, between two processes"}  # fmt: skip
HOSTS_TITLES = {"large": "Large payloads inline and an 8-byte reply, between two hosts (round trip)"}  # --hosts
UNITS = {"us": "µs"}
TRANSPORT_ORDER = {t: i for i, t in enumerate(("inproc", "ipc", "tcp", "ws", "tls+tcp", "shm"))}
SYSTEM_ORDER = {s: i for i, s in enumerate((TOOLKIT, "pynng", "pyzmq", "nats", "redis", "iceoryx2", "memcpy"))}
P99 = {"rtt_median_us": "rtt_p99_us", "gather_median_ms": "gather_p99_ms"}


@dataclass(frozen=True)
class Comparison:
    """The toolkit's ``variant`` against a peer's variant (a prefix), on one metric."""

    scenario: str
    metric: str
    toolkit: str
    system: str
    peer: str
    any_transport: bool = False  # a peer with no transport of its own (a memcpy in one process)


def _rtt(toolkit: str, peers: Iterable[tuple[str, str]]) -> list[Comparison]:
    return [Comparison("rtt", "rtt_median_us", toolkit, system, peer) for system, peer in peers]


FLOOR = ("pynng", "Pair1 trio floor")  # bench._rtt.FLOOR_VARIANT: every round trip is also a ratio to it
COMPARISONS = (
    *_rtt("hotline ask", [FLOOR, ("pynng", "Pair1 sync"), ("pyzmq", "PAIR asyncio"), ("pyzmq", "ROUTER-DEALER asyncio"),
                          ("pyzmq", "PAIR sync"), ("nats", "request/reply"), ("redis", "Streams request/reply")]),
    *_rtt("plain-handler hotline ask", [FLOOR]),
    *_rtt("Pair", [FLOOR, ("pynng", "Pair1 sync"), ("pyzmq", "PAIR asyncio"), ("pyzmq", "PAIR sync")]),
    Comparison("throughput", "msgs_per_s", "Push/Pull", "pynng", "Push0/Pull0 trio floor"),
    Comparison("throughput", "msgs_per_s", "Push/Pull", "pynng", "Push0/Pull0 sync"),
    Comparison("poll", "gather_median_ms", "room.poll", "pyzmq", "ROUTER scatter-gather"),
    Comparison("poll", "gather_median_ms", "room.poll", "nats", "scatter-gather"),
    Comparison("poll", "gather_median_ms", "room.poll", "pynng", "Surveyor0"),
    Comparison("work", "tasks_per_s", "Dispatcher, 2 Workers, acked", "nats", "JetStream work queue"),
    Comparison("work", "tasks_per_s", "Dispatcher, 2 Workers, acked", "redis", "Streams XREADGROUP"),
    Comparison("large", "delivered_ms", "Pair, shared memory", "iceoryx2", "loan + copy"),
    Comparison("large", "delivered_ms", "shared_buffer, zero-copy", "iceoryx2", "loan, zero-copy, event"),
    Comparison("stream", "delivered_ms", "Pair, shared memory", "pynng", "Pair1 sync"),
    Comparison("stream", "delivered_ms", "shared_buffer", "pynng", "Pair1 sync"),
    Comparison("stream", "delivered_ms", "Pair, shared memory", "memcpy", "memcpy", any_transport=True),
    # python -m bench --hosts: a large payload and its 8-byte reply between two hosts (bench.inline)
    Comparison("large", "rtt_median_ms", "Pair", "pynng", "Pair1 sync"),
    Comparison("large", "rtt_median_ms", "hotline ask", "pynng", "Pair1 sync"),
)  # fmt: skip


def _key(m: Metric) -> tuple[str, str, str, str, int, int, str]:
    return (m.scenario, m.system, m.variant, m.transport, m.payload, m.n, m.placement)


# ===================================================================== ratios
def compute_ratios(metrics: list[Metric]) -> list[dict[str, Any]]:
    """Every comparison the run can make: toolkit value / peer value, same configuration."""
    by_key: dict[tuple[Any, ...], dict[str, Metric]] = {}
    for m in metrics:
        by_key.setdefault(_key(m), {})[m.name] = m
    out = []
    for c in COMPARISONS:
        mine = [m for m in metrics if m.scenario == c.scenario and m.name == c.metric and m.system == TOOLKIT
                and m.variant.startswith(c.toolkit)]  # fmt: skip
        theirs = [m for m in metrics if m.scenario == c.scenario and m.name == c.metric and m.system == c.system
                  and m.variant.startswith(c.peer)]  # fmt: skip
        for t in mine:
            for p in theirs:
                if t.placement != p.placement:  # one host against across hosts says nothing
                    continue
                if c.any_transport and (t.payload, t.n) == (p.payload, p.n):
                    pass
                elif (t.transport, t.payload, t.n) != (p.transport, p.payload, p.n) and not (
                    c.scenario == "poll"
                    and (t.transport, t.n) == (p.transport, p.n)  # the question's size differs
                ):
                    continue
                if p.value <= 0 or t.value <= 0:
                    continue
                ratio = t.value / p.value
                entry: dict[str, Any] = {
                    "scenario": c.scenario,
                    "metric": c.metric,
                    "unit": t.unit,
                    "toolkit": {"variant": t.variant, "value": t.value},
                    "peer": {"system": p.system, "variant": p.variant, "value": p.value},
                    "transport": t.transport,
                    "payload": t.payload,
                    "n": t.n,
                    "placement": t.placement,
                    "ratio": round(ratio, 3),
                    "toolkit_better": ratio > 1 if t.higher_is_better else ratio < 1,
                }
                p99 = P99.get(c.metric)
                if p99:
                    tp, pp = by_key[_key(t)].get(p99), by_key[_key(p)].get(p99)
                    if tp and pp and pp.value > 0:
                        entry["p99_ratio"] = round(tp.value / pp.value, 3)
                out.append(entry)
    return out


# ===================================================================== text
def _short(variant: str) -> str:
    return variant.split(" (")[0]


def _where(r: dict[str, Any]) -> str:
    where = str(r["transport"])
    if r["payload"] and r["scenario"] not in ("poll", "work"):
        where += f" {size_label(r['payload'])}"
    if r["scenario"] == "poll":
        where += f" N={r['n']}"
    return where


def describe_ratio(r: dict[str, Any], short: bool = False) -> str:
    mine, theirs = r["toolkit"]["variant"], r["peer"]["variant"]
    if short:
        mine, theirs = _short(mine), _short(theirs)
    return f"{r['scenario']} {_where(r)}: {mine} / {r['peer']['system']} {theirs}"


def headline(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparisons shown on the console and in the summary: round trips at 64 B, all others."""
    return [r for r in ratios if r["scenario"] != "rtt" or r["payload"] == 64]


def _verdict(r: dict[str, Any]) -> str:
    higher = r["metric"] in ("msgs_per_s", "tasks_per_s", "mb_per_s", "gb_per_s")
    ratio = r["ratio"]
    if r["toolkit_better"]:
        return f"toolkit {ratio:.2f}x higher" if higher else f"toolkit {1 / ratio:.2f}x faster"
    return f"toolkit loses ({1 / ratio:.2f}x lower)" if higher else f"toolkit loses ({ratio:.2f}x slower)"


def losses(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in ratios if not r["toolkit_better"]]


def loss_line(ratios: list[dict[str, Any]]) -> str:
    lost = losses(ratios)
    if not ratios:
        return "No toolkit / peer comparison was possible in this run."
    if not lost:
        return f"The toolkit wins all {len(ratios)} comparisons of this run."
    scenarios = sorted({r["scenario"] for r in lost}, key=SCENARIOS.index)
    return (
        f"The toolkit loses {len(lost)} of {len(ratios)} comparisons, in: {', '.join(scenarios)} "
        "(listed under each scenario below)."
    )


SHORT = {"rtt_median_us": "median", "rtt_p99_us": "p99", "msgs_per_s": "msgs/s", "mb_per_s": "MB/s",
         "gather_median_ms": "median", "gather_p99_ms": "p99", "tasks_per_s": "tasks/s",
         "kill_pause_ms": "longest pause", "redelivered": "redelivered", "delivered_ms": "delivered",
         "gb_per_s": "GB/s", "rtt_median_ms": "round trip"}  # fmt: skip
PIVOT = {"rtt": "payload", "throughput": "payload", "large": "payload", "stream": "payload", "poll": "n"}


def _head(name: str, unit: str) -> str:
    short = SHORT.get(name, name)
    return short if short == unit else f"{short} ({unit})"


def _pivot_label(attr: str, value: int) -> str:
    return size_label(value) if attr == "payload" else f"N={value}"


def _metric_table(scenario: str, metrics: list[Metric]) -> list[str]:
    """One row per system, variant and transport; a column per payload (or N) and metric."""
    attr = PIVOT.get(scenario)
    names = list(dict.fromkeys(m.name for m in metrics))
    units = {m.name: UNITS.get(m.unit, m.unit) for m in metrics}
    values = sorted({getattr(m, attr) for m in metrics}) if attr else [None]
    columns = [(v, name) for v in values for name in names]
    rows: dict[tuple[str, str, str], dict[tuple[Any, str], Metric]] = {}
    placed = any(m.placement != ONE_HOST for m in metrics)  # --hosts: a column says where each ran
    for m in metrics:
        transport = f"{m.transport} | {m.placement}" if placed else m.transport
        rows.setdefault((m.system, m.variant, transport), {})[(getattr(m, attr) if attr else None,
                                                               m.name)] = m  # fmt: skip
    columns = [c for c in columns if any(c in cells for cells in rows.values())]
    heads = [(f"{_pivot_label(attr, v)} " if attr and v is not None else "") + f"{SHORT.get(name, name)} ({units[name]})"
             for v, name in columns]  # fmt: skip
    where = "transport | placement" if placed else "transport"
    lines = [f"| system | variant | {where} | " + " | ".join(heads) + " |",
             f"| --- | --- | {'--- | ' * (where.count('|') + 1)}" + " | ".join("---:" for _ in heads) + " |"]  # fmt: skip
    order = sorted(rows, key=lambda k: (SYSTEM_ORDER.get(k[0], 9), k[1], TRANSPORT_ORDER.get(k[2], 9)))
    for key in order:
        cells = [fmt(rows[key][c].value, rows[key][c].unit) if c in rows[key] else "" for c in columns]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(ratios: list[dict[str, Any]]) -> list[str]:
    lines = ["| toolkit | peer | transport | payload | N | toolkit | peer | ratio | p99 ratio | verdict |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r in ratios:
        unit = UNITS.get(r["unit"], r["unit"])
        p99 = f"{r['p99_ratio']:.2f}" if "p99_ratio" in r else ""
        lines.append(f"| {r['toolkit']['variant']} | {r['peer']['system']} "
                     f"{r['peer']['variant']} | {r['transport']} | "
                     f"{size_label(r['payload']) if r['payload'] else '-'} | {r['n']} | "
                     f"{fmt(r['toolkit']['value'], r['unit'])} {unit} | "
                     f"{fmt(r['peer']['value'], r['unit'])} {unit} | {r['ratio']:.2f} | {p99} "
                     f"| {_verdict(r)} |")  # fmt: skip
    return lines


def summary_table(ratios: list[dict[str, Any]]) -> list[str]:
    """The headline comparisons as one Markdown table (also what the top-level README shows)."""
    lines = ["| scenario | where | toolkit | peer | toolkit | peer | ratio | verdict |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | --- |"]  # fmt: skip
    rows = headline(ratios)
    short = [describe_ratio(r, short=True) for r in rows]
    for r, described in zip(rows, short):
        unit = UNITS.get(r["unit"], r["unit"])
        peer = r["peer"]["variant"] if short.count(described) > 1 else _short(r["peer"]["variant"])
        lines.append(
            f"| {r['scenario']} | {_where(r)} | {_short(r['toolkit']['variant'])} | {r['peer']['system']} "
            f"{peer} | {fmt(r['toolkit']['value'], r['unit'])} {unit} | "
            f"{fmt(r['peer']['value'], r['unit'])} {unit} | {r['ratio']:.2f} | {_verdict(r)} |"
        )
    return lines


def markdown(report: dict[str, Any], metrics: list[Metric], skips: list[Skip], ratios: list[dict[str, Any]],
             goals: list[dict[str, Any]], plots: list[str], goals_of: str = "issues 7 and 18") -> str:  # fmt: skip
    machine = report["machine"]
    lines = [
        f"# nng-consensus benchmark suite{' across hosts' if 'hosts' in report else ''}{' (quick)' if report['quick'] else ''}",
        "",
        (
            f"{report['date']} on {machine['platform']}, {machine['cpu_count']} CPUs, Python {machine['python']}, "
            f"NNG {machine['nng']}; run took {report['elapsed_s']:.0f} s. Ratios are toolkit / peer, measured in "
            "this run: for times below 1 means the toolkit is faster, for rates above 1."
        ),
        "",
        f"## Goals ({goals_of})",
        "",
    ]
    lines += [f"- **{g['status']}** {g['goal']}: {g['detail']}" for g in goals]
    lines += ["", loss_line(ratios), ""]
    if ratios:
        note = "Round trips at 64 B; every size in the scenario tables below."
        lines += ["## Summary: ratios toolkit / peer", "", note, "", *summary_table(ratios), ""]
    for scenario in SCENARIOS:
        mine = [m for m in metrics if m.scenario == scenario]
        skipped = [s for s in skips if s.scenario in (scenario, "all")]
        if not mine and not skipped:
            continue
        title = HOSTS_TITLES.get(scenario, TITLES[scenario]) if "hosts" in report else TITLES[scenario]
        lines += [f"## {scenario}: {title}", ""]
        if mine:
            lines += _metric_table(scenario, mine) + [""]
        ratio_rows = [r for r in ratios if r["scenario"] == scenario]
        if ratio_rows:
            lines += ["Ratios toolkit / peer:", ""] + _ratio_table(ratio_rows) + [""]
            lost = losses(ratio_rows)
            if lost:
                lines += [f"Where the toolkit loses here: {len(lost)} of {len(ratio_rows)}, "
                          + "; ".join(f"{describe_ratio(r, short=True)} = {r['ratio']:.2f}" for r in lost) + ".", ""]  # fmt: skip
            else:
                lines += ["The toolkit wins every comparison here.", ""]
        for s in [s for s in skipped if s.scenario == scenario]:
            lines.append(f"- skipped: {s.system} {s.variant}: {s.reason}")
        if skipped:
            lines.append("")
    other = [s for s in skips if s.scenario not in SCENARIOS]
    if other:
        lines += ["## Skipped", ""] + [f"- {s.system} {s.variant}: {s.reason}" for s in other] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def console_summary(ratios: list[dict[str, Any]], goals: list[dict[str, Any]], skips: list[Skip],
                    goals_of: str = "issues 7 and 18") -> str:  # fmt: skip
    """The ratios (64 B round trips, every other scenario), the goals, the losses and the skips."""
    shown = headline(ratios)
    short = [describe_ratio(r, short=True) for r in shown]
    text = [
        d if short.count(d) == 1 else describe_ratio(r) for d, r in zip(short, shown)
    ]  # keep what differs
    lines = ["ratios toolkit / peer (same run; rtt at 64 B, every size in results.md):"]
    width = max((len(t) for t in text), default=0)
    for t, r in zip(text, shown):
        lines.append(f"  {t:<{width}}  {r['ratio']:>6.2f}  {_verdict(r)}")
    lines += ["", f"goals ({goals_of}):"]
    lines += [f"  {g['status']:<4}  {g['goal']}: {g['detail']}" for g in goals]
    lines += ["", loss_line(ratios)]
    lost = sorted(losses(ratios), key=lambda r: -(r["ratio"] if r["ratio"] >= 1 else 1 / r["ratio"]))
    for r in lost[:8]:
        lines.append(f"  {describe_ratio(r, short=True)} = {r['ratio']:.2f}")
    if len(lost) > 8:
        lines.append(f"  ... and {len(lost) - 8} more in results.md")
    if skips:
        lines += ["", "skipped:"] + [f"  {s.scenario} {s.system} {s.variant}: {s.reason}" for s in skips]
    return "\n".join(lines)
