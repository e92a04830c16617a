"""What the work sharing tests share (``tests/test_work_*.py``): worker processes, task
streams and the exactly-once check. The ``work_address`` fixture is in ``conftest.py``.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from conftest import Peers, read_line

from consensus import Outcome


async def start_workers(
    peers: Peers, address: str, names: list[str], *options: str
) -> dict[str, subprocess.Popen[str]]:
    procs = {name: peers.start(address, name, *options, script="work_agent.py") for name in names}
    for proc in procs.values():
        assert await read_line(proc) == "ready"
    return procs


def tasks(count: int, sleep: float = 0.0,
          special: Mapping[int, dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Task maps for work_agent.py; ``special={7: {"raise": True}}`` changes task 7."""
    special = special or {}
    for n in range(count):
        yield {"n": n, "sleep": sleep, **special.get(n, {})}


def exactly_once(outcomes: list[Outcome], count: int) -> None:
    ids = Counter(o.task_id for o in outcomes)
    assert sorted(ids) == list(range(count)), f"missing: {set(range(count)) - set(ids)}"
    assert max(ids.values()) == 1, f"twice: {[i for i, c in ids.items() if c > 1]}"
    for o in outcomes:
        assert o.task["n"] == o.task_id
