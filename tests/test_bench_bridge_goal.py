"""Issue 16's goal in the suite: each front on both ends over trio on both ends, worst ratio."""

from __future__ import annotations

from bench._goals import _bridge_goals
from bench._schema import TOOLKIT, Metric


def _metrics(poll: dict[str, float], ask: dict[str, float]) -> list[Metric]:
    out = [Metric("bridge", TOOLKIT, f"poll via {f}, children {f}", "ipc", 0, 8, "gather_median_ms", v, "ms")
           for f, v in poll.items()]  # fmt: skip
    out += [Metric("bridge", TOOLKIT, f"ask via {f}, children {f}", "ipc", 64, 1, "rtt_median_us", v, "us")
            for f, v in ask.items()]  # fmt: skip
    # a caller's side alone (a front against trio children) is reported, never judged
    out.append(Metric("bridge", TOOLKIT, "poll via aio, children trio", "ipc", 0, 8, "gather_median_ms", 9.0, "ms"))
    return out


def test_the_worst_front_decides() -> None:
    (goal,) = _bridge_goals(_metrics({"trio": 1.0, "aio": 1.2, "blocking": 1.35}, {"trio": 200, "aio": 210, "blocking": 250}))
    assert goal["status"] == "FAIL" and goal["ratio"] == 1.35
    assert "poll blocking (ms) 1.35 vs 1.00 (1.35)" in goal["detail"] and "  " not in goal["detail"]


def test_every_front_within_the_goal_passes() -> None:
    (goal,) = _bridge_goals(_metrics({"trio": 1.0, "aio": 1.3, "blocking": 0.9}, {"trio": 200, "aio": 210, "blocking": 250}))
    assert goal["status"] == "PASS" and goal["ratio"] == 1.3


def test_no_bridge_run_is_a_skip() -> None:
    assert _bridge_goals([])[0]["status"] == "SKIP"
