"""The report of ``bench.distribute``: rounds summarised, goals checked, the tables rendered."""

from __future__ import annotations

from typing import Any

from ._common import format_table, median
from ._distribute_jobs import EXPLORE, Knobs
from ._distribute_phases import RAW_STYLES

GOAL_TASKS_PER_S = 20_000.0


def summarize_rounds(rounds: list[dict[str, Any]], phases: list[str]) -> list[dict[str, Any]]:
    """Per phase: the round with the median rate (the lower middle one for an even count)."""
    summary = []
    for phase in phases:
        rows = sorted((r for r in rounds if r["kind"] == phase), key=lambda r: r["rate"])
        if not rows:
            continue
        mid = rows[(len(rows) - 1) // 2]
        summary.append({**mid, "rates": [r["rate"] for r in rounds if r["kind"] == phase],
                        "rate_median": round(median([r["rate"] for r in rows]), 1)})  # fmt: skip
    return summary


def summarize_sweep(sweep: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per knob setting: median, min and max rate over the sweep's rounds, median tasks per batch."""
    out = []
    for knobs in EXPLORE:
        rows = [r for r in sweep if r["knobs"] == knobs.as_dict()]
        if not rows:
            continue
        rates = [r["rate"] for r in rows]
        out.append({"knobs": knobs.as_dict(), "n": rows[0]["n"], "rates": rates, "rate_median": round(median(rates), 1),
                    "tasks_per_batch_median": round(median([r["wire"]["tasks_per_batch"] for r in rows]), 1),
                    "replies_per_task_median": round(median([r["wire"]["replies_per_task"] for r in rows]), 3),
                    "parent_cpu_pct_median": round(median([r["parent_cpu_pct"] for r in rows]), 1),
                    "children_cpu_pct_median": round(median([r["children_cpu_pct"] for r in rows]), 1),
                    "other_cpu_pct_max": max((r["other_cpu_pct"] or 0.0) for r in rows)})  # fmt: skip
    return out


def compute_goals(summary: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind = {row["kind"]: row for row in summary}
    goals: dict[str, Any] = {"basis": "median over rounds of tasks/s (toolkit) and msgs/s (raw)"}
    toolkit = by_kind.get("toolkit")
    if toolkit:
        rate = toolkit["rate_median"]
        goals["toolkit_tasks_per_s"] = {"value": rate, "op": ">=", "target": GOAL_TASKS_PER_S,
                                        "ratio": round(rate / GOAL_TASKS_PER_S, 3),
                                        "met": rate >= GOAL_TASKS_PER_S}  # fmt: skip
        for ref in RAW_STYLES:
            if ref in by_kind:
                goals[f"toolkit_over_{ref}"] = round(rate / by_kind[ref]["rate_median"], 3)
    kill = by_kind.get("kill")
    if kill:
        goals["kill_exactly_once"] = {"met": True, "redelivered": kill["distribution"]["redelivered"]}
    redelivered = {row["kind"]: row["distribution"]["redelivered"] for row in summary
                   if "distribution" in row}  # fmt: skip
    clean = {k: v for k, v in redelivered.items() if k != "kill"}
    goals["no_redelivery_without_failures"] = {"redelivered": clean, "met": not any(clean.values())}
    return goals


DESCRIPTIONS = {"toolkit": "toolkit: Dispatcher + 2 Worker procs, acked",
                "defaults": "toolkit, library default knobs",
                "raw_trio": "raw Push0 asend -> 2 x Pull0 arecv (trio)",
                "raw_trio_pull": "raw Push0 send (blocking) -> 2 x Pull0 arecv (trio)",
                "raw_sync": "raw Push0 send -> 2 x Pull0 recv (blocking)",
                "kill": "toolkit, 1 of 2 workers SIGKILLed, spare joins"}  # fmt: skip


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(summary: list[dict[str, Any]], sweep: list[dict[str, Any]], goals: dict[str, Any],
           knobs: Knobs) -> str:  # fmt: skip
    rows = []
    for r in summary:
        dist, wire, kill = r.get("distribution"), r.get("wire"), r.get("kill")
        rows.append((DESCRIPTIONS[r["kind"]], f"{r['n']:,}", fmt(r["rate_median"]),
                     " ".join(fmt(v) for v in r["rates"]) if len(r["rates"]) > 1 else "",
                     "tasks/s" if dist else "msgs/s", fmt(r["parent_cpu_pct"]),
                     fmt(r["children_cpu_pct"]), fmt(r["other_cpu_pct"]),
                     fmt(wire["tasks_per_batch"], 1) if wire else "-",
                     fmt(wire["replies_per_task"], 2) if wire else "-",
                     dist["redelivered"] if dist else "-", dist["stale"] if dist else "-",
                     fmt(kill["longest_pause_after_kill_ms"], 1) if kill else "-"))  # fmt: skip
    table = format_table(("what", "N", "rate", "rounds", "unit", "parent CPU %",
                          "children CPU %", "other CPU %", "tasks/batch", "replies/task",
                          "redelivered", "stale", "pause ms"), rows, left=1)  # fmt: skip
    lines = [
        table,
        "",
        f"toolkit knobs: Worker(concurrency={knobs.concurrency}, prefetch={knobs.prefetch}), Dispatcher("
        + f"max_batch={knobs.max_batch}); rate = median of rounds;",
        "CPU % = CPU time / elapsed over the timed window (100 = one core);",
        "children CPU is both workers (or pullers) together; other CPU = the rest of the machine's use in the",
        "same window (other processes); tasks/batch = tasks per 'tasks' message the dispatcher sent;",
        "replies/task = claim and done messages it received per task; pause = longest gap between",
        "outcomes after the kill.",
    ]
    by_kind = {row["kind"]: row for row in summary}
    kill = by_kind.get("kill")
    if kill:
        k = kill["kill"]
        dist = kill["distribution"]
        lines.append(f"kill (lease {k['lease_s']:g} s): SIGKILL after "
                     f"{k['killed_after_outcomes']:,} outcomes ({k['killed_at_s']:.2f} s; it "
                     f"had claimed {k['victim_claimed_at_kill']} tasks); {dist['redelivered']} "
                     f"redelivered ({k['redelivered_claimed']} claimed by the killed worker, "
                     f"at once; {k['redelivered_unclaimed']} pushed to it, never claimed: at "
                     f"the claim timeout or lease), {dist['stale']} stale, "
                     f"{dist['late_accepted']} late accepted; spare's first outcome "
                     f"{fmt(k['spare_first_outcome_after_kill_ms'], 1)} ms after the kill; "
                     f"{fmt(k['rate_before_kill'])} tasks/s before, "
                     f"{fmt(k['rate_after_kill'])} after; every task exactly once: yes")  # fmt: skip
    if sweep:
        lines += ["", f"knob sweep ({len(sweep[0]['rates'])} rounds each; tasks/s = median, then each round):"]
        sweep_rows = [(r["knobs"]["concurrency"],
                       "default" if r["knobs"]["prefetch"] is None else r["knobs"]["prefetch"],
                       r["knobs"]["max_batch"], r["knobs"]["capacity_per_worker"], f"{r['n']:,}",
                       fmt(r["rate_median"]), " ".join(fmt(v) for v in r["rates"]),
                       fmt(r["tasks_per_batch_median"], 1), fmt(r["replies_per_task_median"], 2),
                       fmt(r["parent_cpu_pct_median"]), fmt(r["children_cpu_pct_median"]),
                       fmt(r["other_cpu_pct_max"])) for r in sweep]  # fmt: skip
        lines.append(format_table(("concurrency", "prefetch", "max_batch", "capacity/worker",
                                   "N", "tasks/s", "rounds", "tasks/batch", "replies/task",
                                   "parent CPU %", "children CPU %", "other CPU % (max)"),
                                  sweep_rows, left=0))  # fmt: skip
    lines.append("")
    goal = goals.get("toolkit_tasks_per_s")
    if goal:
        text = (f"goal >= {GOAL_TASKS_PER_S:,.0f} tasks/s: {goal['value']:,.0f} tasks/s = "
                f"{goal['ratio']:.2f} x goal -> {'met' if goal['met'] else 'NOT met'}")  # fmt: skip
        for ref in RAW_STYLES:
            if f"toolkit_over_{ref}" in goals:
                text += f"; {goals[f'toolkit_over_{ref}']:.2f} x {ref} msgs/s"
        lines.append(text)
    clean = goals["no_redelivery_without_failures"]
    lines.append(f"no redelivery without failures: {'yes' if clean['met'] else 'NO'} "
                 f"({clean['redelivered']})")  # fmt: skip
    return "\n".join(lines)
