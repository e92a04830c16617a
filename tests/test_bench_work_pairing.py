"""The work benchmark against Redis: rounds alternate (ABBA), the summary's spreads and pair
ratios, and the goal judged on the Redis rounds that alternated with the toolkit's. Pure:
no process, no server."""

from __future__ import annotations

from bench._goals import ALTERNATING, _work_goals
from bench._schema import TOOLKIT, Metric
from bench.distribute_peers import TOOLKIT as TOOLKIT_ROW
from bench.distribute_peers import _order, summarize

REDIS = "Streams XREADGROUP+XACK (COUNT 100, pipelined)"


def work(system: str, variant: str, rate: float) -> Metric:
    return Metric(
        "work", system, variant, "tcp", 64, 2, "tasks_per_s", rate, "tasks/s", higher_is_better=True
    )


def test_rounds_alternate_so_each_system_goes_first_as_often_as_last() -> None:
    systems = [TOOLKIT_ROW, "redis COUNT 100"]
    order = [name for rnd in range(4) for name in _order(systems, rnd)]
    assert order == [TOOLKIT_ROW, "redis COUNT 100", "redis COUNT 100", TOOLKIT_ROW] * 2


def test_the_summary_gives_spreads_and_the_ratio_of_each_pair_of_rounds() -> None:
    rounds = {
        TOOLKIT_ROW: [{"rate": 100.0}, {"rate": 60.0}, {"rate": 90.0}],
        "redis COUNT 100": [{"rate": 40.0}, {"rate": 20.0}, {"rate": 30.0}],
    }
    summary = summarize(rounds)
    assert summary[TOOLKIT_ROW]["median"] == 90.0 and summary[TOOLKIT_ROW]["spread"] == round(100 / 60, 3)
    redis = summary["redis COUNT 100"]
    assert redis["ratio_of_medians"] == 3.0
    assert redis["pair_ratios"] == [2.5, 3.0, 3.0] and redis["pair_ratio_median"] == 3.0


def test_the_goal_uses_the_redis_rounds_that_alternated_with_the_toolkits() -> None:
    metrics = [
        work(TOOLKIT, "Dispatcher, 2 Workers, acked", 90_000.0),
        work("redis", REDIS, 45_000.0),  # the peer step alone, minutes later, fewer tasks
        work("redis", REDIS + ALTERNATING, 25_000.0),
    ]
    goal = _work_goals(metrics, [])[0]
    assert goal["status"] == "PASS" and goal["ratio"] == 3.6 and "alternating" in goal["detail"]


def test_without_alternating_rounds_the_goal_takes_the_peers_fastest_configuration() -> None:
    metrics = [work(TOOLKIT, "Dispatcher, 2 Workers, acked", 90_000.0), work("redis", REDIS, 45_000.0),
               work("redis", REDIS + " (no hiredis)", 20_000.0)]  # fmt: skip
    goal = _work_goals(metrics, [])[0]
    assert goal["status"] == "FAIL" and goal["ratio"] == 2.0
