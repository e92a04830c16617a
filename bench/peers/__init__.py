"""The peer systems of the benchmark suite: pyzmq, NATS and Redis Streams, measured like the toolkit.

``ALL`` maps a short name to a function ``run(quick) -> list[Metric | Skip]`` that runs
every measurement of that system, each starting and stopping what it needs (brokers,
child processes, temporary folders) on 127.0.0.1 and free ports. A missing package or
server, or a measurement that fails, yields a :class:`~bench._schema.Skip` with a
one-line reason, never an exception.

=========  ==================================================================  ===============================
system     measurement (module)                                                metrics
=========  ==================================================================  ===============================
pyzmq      PAIR and ROUTER-DEALER round trip, sync and asyncio (zmq_rtt)      rtt_median_us, rtt_p99_us
pyzmq      ROUTER scatter-gather of N (zmq_gather)                             gather_median_ms, gather_p99_ms
nats       request/reply round trip (nats_reqrep)                              rtt_median_us, rtt_p99_us
nats       scatter-gather of N through a reply inbox (nats_reqrep)             gather_median_ms, gather_p99_ms
nats       JetStream work queue, 2 workers, acked (nats_jetstream)             tasks_per_s
redis      Streams request/reply (redis_streams)                               rtt_median_us, rtt_p99_us
redis      Streams XREADGROUP + XACK, 2 workers (redis_streams)                tasks_per_s
=========  ==================================================================  ===============================

Scenarios (``Metric.scenario``): ``rtt``, ``poll`` (scatter-gather, beside ``bench.poll``),
``work`` (beside ``bench.distribute``). ``python -m bench.peers [--quick] [--only NAME]``
prints them as a table. Imports nothing heavy: each system's modules load when it runs.
"""

from __future__ import annotations

from collections.abc import Callable

from .._schema import Metric, Skip

__all__ = ["ALL", "run_nats", "run_redis", "run_zmq", "versions"]


def run_zmq(quick: bool) -> list[Metric | Skip]:
    from . import zmq_gather, zmq_rtt
    from ._util import guarded

    return [
        *guarded("rtt", "pyzmq", "PAIR, ROUTER-DEALER", lambda: zmq_rtt.measure(quick)),
        *guarded("poll", "pyzmq", zmq_gather.VARIANT, lambda: zmq_gather.measure(quick)),
    ]


def run_nats(quick: bool) -> list[Metric | Skip]:
    from . import nats_jetstream, nats_reqrep
    from ._util import guarded

    return [
        *guarded("rtt", "nats", nats_reqrep.RTT_VARIANT, lambda: nats_reqrep.measure_rtt(quick)),
        *guarded("poll", "nats", nats_reqrep.GATHER_VARIANT, lambda: nats_reqrep.measure_gather(quick)),
        *guarded("work", "nats", "JetStream work queue", lambda: nats_jetstream.measure(quick)),
    ]


def run_redis(quick: bool) -> list[Metric | Skip]:
    from . import redis_streams
    from ._util import guarded

    return [
        *guarded("rtt", "redis", redis_streams.RTT_VARIANT, lambda: redis_streams.measure_rtt(quick)),
        *guarded("work", "redis", redis_streams.WORK_VARIANT, lambda: redis_streams.measure_work(quick)),
    ]


ALL: dict[str, Callable[[bool], list[Metric | Skip]]] = {"zmq": run_zmq, "nats": run_nats, "redis": run_redis}


def versions() -> dict[str, str | None]:
    """Versions of the peers' packages and servers (None where missing), for the report."""
    from ._servers import versions as _versions

    return _versions()
