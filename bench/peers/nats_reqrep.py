"""NATS (nats-server + nats-py under asyncio): request/reply round trips and scatter-gather of N.

* ``request/reply``: a responder child subscribes to a subject and publishes each
  request's data to its reply subject; this process times ``await nc.request(...)``
  (nats-py's shared response inbox, the library's default) per round trip.
* ``scatter-gather (reply inbox)``: N responders, each its own connection (an agent),
  ``PER_PROCESS`` (8) to a child process, all subscribed to one subject. A round
  publishes one 64-byte request with a reply inbox this process subscribed to (a
  callback counts the replies carrying this round's number) and ends at the N-th reply:
  the NATS counterpart of ``bench.poll``.

One nats-server per measurement, on 127.0.0.1 and a free port (see :mod:`._servers`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from .._children import Child, children
from .._schema import Metric, Skip
from ._servers import nats_missing, nats_server
from ._util import (
    GATHER_PAYLOAD,
    PER_PROCESS,
    gather_metrics,
    gather_ns,
    make_payload,
    payloads,
    rtt_counts,
    rtt_metrics,
)

SYSTEM = "nats"
RTT_VARIANT = "request/reply"
GATHER_VARIANT = "scatter-gather (reply inbox)"
BASE_N = 2000  # timed round trips per 64 B / 4 KiB size (quick: 500; 1 MiB: a tenth)
ROUNDS, QUICK_ROUNDS = 300, 100
WARMUP = 20
REPLY_TIMEOUT_S = 5.0


# ===================================================================== request/reply
async def _rtt(url: str, subject: str, sizes: Sequence[int], quick: bool) -> dict[int, list[int]]:
    import nats

    nc = await nats.connect(url, allow_reconnect=False)
    samples: dict[int, list[int]] = {}
    try:
        request, clock = nc.request, time.perf_counter_ns
        for size in sizes:
            payload = make_payload(size, size)
            warmup, n = rtt_counts(size, quick, BASE_N)
            timed = samples[size] = []
            for i in range(warmup + n):
                t0 = clock()
                reply = await request(subject, payload, timeout=REPLY_TIMEOUT_S)
                t1 = clock()
                if i >= warmup:
                    timed.append(t1 - t0)
            if reply.data != payload:
                raise RuntimeError(f"request/reply: {len(reply.data)} bytes came back, not the {size} sent")
    finally:
        await nc.close()
    return samples


def measure_rtt(quick: bool, sizes: Sequence[int] | None = None) -> list[Metric | Skip]:
    missing = nats_missing()
    if missing:
        return [Skip("rtt", SYSTEM, RTT_VARIANT, missing)]
    from . import _nats_jobs

    sizes = payloads(quick, sizes)
    with nats_server() as url, children(1, "nats-echo") as (child,):
        child.start(_nats_jobs.respond, url, "echo", 1)
        child.receive("ready")
        samples = asyncio.run(_rtt(url, "echo", sizes, quick))
        child.finish(stop=True)
    out: list[Metric | Skip] = []
    for size in sizes:
        out += rtt_metrics(SYSTEM, RTT_VARIANT, "tcp", size, samples[size])
    return out


# ===================================================================== scatter-gather
async def _gather(url: str, subject: str, n: int, rounds: int) -> list[int]:
    import nats

    nc = await nats.connect(url, allow_reconnect=False)
    try:
        state: dict[str, Any] = {"tag": b"", "count": 0}
        complete = asyncio.Event()

        async def on_reply(msg: Any) -> None:
            if msg.data[:8] == state["tag"]:
                state["count"] += 1
                if state["count"] == n:
                    complete.set()

        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=on_reply)
        await nc.flush()
        samples: list[int] = []
        clock = time.perf_counter_ns
        for r in range(WARMUP + rounds):
            request = make_payload(GATHER_PAYLOAD, r)
            state["tag"], state["count"] = request[:8], 0
            complete.clear()
            t0 = clock()
            await nc.publish(subject, request, reply=inbox)
            try:
                async with asyncio.timeout(REPLY_TIMEOUT_S):  # cheaper than wait_for (no extra task)
                    await complete.wait()
            except TimeoutError:
                raise RuntimeError(f"round {r}: {state['count']} of {n} replies within {REPLY_TIMEOUT_S} s")
            t1 = clock()
            if r >= WARMUP:
                samples.append(t1 - t0)
        return samples
    finally:
        await nc.close()


def _one_n(pool: list[Child], url: str, n: int, rounds: int) -> list[int]:
    from . import _nats_jobs

    subject = f"gather.{n}"
    busy = pool[: -(-n // PER_PROCESS)]
    started: list[Child] = []
    try:
        for k, child in enumerate(busy):
            child.start(_nats_jobs.respond, url, subject, min(PER_PROCESS, n - k * PER_PROCESS))
            started.append(child)
        for child in busy:
            child.receive("ready")
        samples = asyncio.run(_gather(url, subject, n, rounds))
    except BaseException:
        for child in started:  # their jobs are out of step with the pipe: end them
            child.kill()
        raise
    answered = sum(child.finish(stop=True) for child in busy)
    if answered != n * (WARMUP + rounds):
        raise RuntimeError(f"N={n}: respondents answered {answered} times, expected {n * (WARMUP + rounds)}")
    return samples


def measure_gather(quick: bool, ns: Sequence[int] | None = None) -> list[Metric | Skip]:
    """Time to the N-th reply for each N (default 1, 8, 32, 64; quick 1, 8)."""
    missing = nats_missing()
    if missing:
        return [Skip("poll", SYSTEM, GATHER_VARIANT, missing)]
    sizes = gather_ns(quick, ns)
    rounds = QUICK_ROUNDS if quick else ROUNDS
    out: list[Metric | Skip] = []
    with nats_server() as url, children(-(-max(sizes) // PER_PROCESS), "nats-respond") as pool:
        for n in sizes:
            out += gather_metrics(SYSTEM, GATHER_VARIANT, "tcp", n, _one_n(pool, url, n, rounds))
    return out
