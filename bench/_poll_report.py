"""The report of ``bench.poll``: its goals (issue 3) and the printed table."""

from __future__ import annotations

from typing import Any

from ._common import format_table

__all__ = ["GOAL_MS", "GOAL_N", "LINEAR_SLACK", "compute_goals", "render"]

GOAL_N = 8
GOAL_MS = 5.0
LINEAR_SLACK = 1.25  # "about linear": median(N=64)/median(N=8) at most 8 x this


def compute_goals(results: list[dict[str, Any]]) -> dict[str, Any]:
    med = {
        r["n"]: r["wall"]["median_ms"]
        for r in results
        if r["kind"] == "consensus" and r["handler"] == "async" and r["transport"] == "ipc"
    }
    goals: dict[str, Any] = {"basis": "median wall time of room.poll over ipc, async handlers"}
    if GOAL_N in med:
        goals["n8_median_ms"] = {
            "value": med[GOAL_N],
            "op": "<",
            "target": GOAL_MS,
            "met": med[GOAL_N] < GOAL_MS,
        }
    if 64 in med and 8 in med and med[8] > 0:
        ratio = med[64] / med[8]
        goals["linearity"] = {
            "ratio_64_over_8": round(ratio, 3),
            "linear_would_be": 8.0,
            "op": "<=",
            "target": round(8.0 * LINEAR_SLACK, 2),
            "met": ratio <= 8.0 * LINEAR_SLACK,
            "marginal_ms_per_member_8_to_64": round((med[64] - med[8]) / 56, 4),
        }
    missing = sum(r["polls_missing"] for r in results if r["kind"] == "consensus")
    goals["all_answers"] = {"polls_with_missing_members": missing, "met": missing == 0}
    return goals


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(results: list[dict[str, Any]], goals: dict[str, Any]) -> str:
    rows = []
    for r in results:
        if r["kind"] == "consensus":
            rows.append(
                (
                    f"room.poll {r['transport']}, {r['handler']} handler",
                    r["n"],
                    r["processes"],
                    _f(r["wall"]["median_ms"]),
                    _f(r["wall"]["p99_ms"]),
                    _f(r["wall"]["mean_ms"]),
                    r["polls"],
                    f"{r['polls_missing']}/{r['members_missing']}",
                    _f(r["per_member_ms"], 3),
                    _f(r["first_answer"] and r["first_answer"]["median_ms"]),
                    _f(r["last_answer"] and r["last_answer"]["median_ms"]),
                    _f(r["host_cpu_ms_per_poll"]),
                    _f(r["members_cpu_ms_per_poll"]),
                )
            )
        else:
            all_in = r["all_replies"] and r["all_replies"]["median_ms"]
            rows.append(
                (
                    "raw Surveyor0 ipc recv loop",
                    r["n"],
                    r["processes"],
                    _f(r["recv_loop"]["median_ms"], 1),
                    _f(r["recv_loop"]["p99_ms"], 1),
                    _f(r["recv_loop"]["mean_ms"], 1),
                    r["polls"],
                    f"{r['polls_missing']}/{r['members_missing']}",
                    _f(all_in / r["n"] if all_in is not None else None, 3),
                    _f(r["first_reply"] and r["first_reply"]["median_ms"]),
                    _f(all_in),
                    "-",
                    "-",
                )
            )
    table = format_table(
        (
            "what",
            "N",
            "procs",
            "median ms",
            "p99 ms",
            "mean ms",
            "polls",
            "missing",
            "median/N ms",
            "1st ans ms",
            "last ans ms",
            "host CPU ms/poll",
            "members CPU ms/poll",
        ),
        rows,
    )
    lines = [
        table,
        "",
        "missing = polls with missing members / members missing in total (must be 0/0)",
        "1st/last ans = median arrival of the first and the last answer (PollResult.latencies);",
        "  for raw rows: first reply, and the moment all N replies were in (best case if N is known);",
        "  the raw median/N column is that all-in time / N. CPU = process_time per timed poll.",
        "",
    ]
    n8 = goals.get("n8_median_ms")
    if n8:
        lines.append(
            f"goal N={GOAL_N} median < {GOAL_MS:g} ms: {n8['value']:.2f} ms -> {'met' if n8['met'] else 'NOT met'}"
        )
    lin = goals.get("linearity")
    if lin:
        lines.append(
            f"linearity: median(N=64)/median(N=8) = {lin['ratio_64_over_8']:.2f} (linear = 8, goal <= "
            f"{lin['target']:g}: {'met' if lin['met'] else 'NOT met'}); "
            f"marginal cost {lin['marginal_ms_per_member_8_to_64']:.3f} ms per member from 8 to 64"
        )
    miss = goals["all_answers"]
    lines.append(
        f"all answers in every poll: {'yes' if miss['met'] else 'NO'} "
        f"({miss['polls_with_missing_members']} polls with missing members)"
    )
    return "\n".join(lines)
