"""NATS JetStream work queue with acknowledgements: 64-byte tasks, 2 worker processes, tasks/s end to end.

Mirrors ``bench.distribute`` (``consensus.Dispatcher`` + 2 ``consensus.Worker``
processes, trivial echo handler, tasks/s from the first submit to the N-th result):

* a stream with ``WorkQueue`` retention (an acknowledged message is removed) and one
  durable pull consumer (explicit acks) that both workers bind to;
* this process publishes N unique 64-byte tasks with ``js.publish_async`` (pipelined:
  up to ``publish_async_max_pending`` unconfirmed publishes, each still confirmed by a
  PubAck; a synchronous ``js.publish`` per task waits a round trip for each);
* each worker process loops ``fetch(batch)`` and, per task, publishes the task back as
  its result on a core-NATS subject this process subscribes to, then acks it;
* the clock runs from the first publish to the N-th result; every task's result must
  come back exactly once, every PubAck must be in, and afterwards the stream must be
  empty (every task acknowledged), or the run fails.

Variants: ``storage`` memory (like the toolkit, Redis here and the toolkit's ledger:
nothing on disk) or file (JetStream's default, durable), and the fetch batch size.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from .._children import Child, children
from .._schema import Metric, Skip
from ._servers import nats_missing, nats_server
from ._util import TASK_SIZE, WORK_ROUNDS, WORKERS, make_payload, rate_metric

SYSTEM = "nats"
STREAM, SUBJECT, DURABLE, RESULTS = "TASKS", "tasks", "workers", "results"
N, QUICK_N = 50_000, 20_000
WARMUP = 1000
BATCH = 256  # fetch batch: the headline (batch 1 in the full run shows what batching buys)
MAX_ACK_PENDING = 4096  # per consumer; > 2 workers x BATCH so fetches never stall on it
PUBLISH_MAX_PENDING = 4000  # nats-py's default for publish_async
PROGRESS_TIMEOUT_S = 10.0


def variant(storage: str, batch: int) -> str:
    return f"JetStream work queue ({storage}, fetch {batch}, publish_async)"


async def _phase(nc: Any, js: Any, first: int, n: int) -> float:
    """Submit tasks first..first+n-1, wait for all n results; seconds from first publish to last result."""
    seen = bytearray(n)
    state = {"count": 0, "foreign": 0}
    complete = asyncio.Event()

    async def on_result(msg: Any) -> None:
        i = int.from_bytes(msg.data[:8], "big") - first
        if 0 <= i < n and not seen[i] and len(msg.data) == TASK_SIZE:
            seen[i] = 1
            state["count"] += 1
            if state["count"] == n:
                complete.set()
        else:
            state["foreign"] += 1

    sub = await nc.subscribe(RESULTS, cb=on_result, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await nc.flush()
    tasks = [make_payload(TASK_SIZE, first + i) for i in range(n)]
    futures = []
    t0 = time.perf_counter()
    for task in tasks:
        futures.append(await js.publish_async(SUBJECT, task))
    while not complete.is_set():
        before = state["count"]
        try:
            await asyncio.wait_for(complete.wait(), PROGRESS_TIMEOUT_S)
        except TimeoutError:
            if state["count"] == before:
                raise RuntimeError(
                    f"JetStream: {state['count']} of {n} results, none in {PROGRESS_TIMEOUT_S} s"
                )
    t1 = time.perf_counter()
    await js.publish_async_completed()
    failed = [f.exception() for f in futures if f.exception() is not None]
    await sub.unsubscribe()
    if failed or state["foreign"]:
        raise RuntimeError(
            f"JetStream: {len(failed)} publishes failed ({failed[:1]}), {state['foreign']} stray"
        )
    return t1 - t0


async def _stream_empty(js: Any) -> int:
    """Messages left in the work queue (unacknowledged), after giving in-flight acks a moment."""
    deadline = time.monotonic() + 5.0
    while True:
        left = int((await js.stream_info(STREAM)).state.messages)
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)


async def _run(url: str, pool: list[Child], n: int, storage: str, batch: int) -> float:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

    from . import _nats_jobs

    nc = await nats.connect(url, allow_reconnect=False)
    started: list[Child] = []
    try:
        js = nc.jetstream(publish_async_max_pending=PUBLISH_MAX_PENDING)
        await js.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=[SUBJECT],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.MEMORY if storage == "memory" else StorageType.FILE,
            )
        )
        await js.add_consumer(STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT,
                                                     ack_wait=30, max_ack_pending=MAX_ACK_PENDING,
                                                     max_waiting=512))  # fmt: skip
        for child in pool:
            child.start(_nats_jobs.work, url, STREAM, DURABLE, batch, RESULTS)
            started.append(child)
        for child in pool:
            child.receive("ready")
        await _phase(nc, js, 0, WARMUP)
        elapsed = await _phase(nc, js, 10**9, n)
        left = await _stream_empty(js)
        done = sum(child.finish(stop=True) for child in pool)
        started.clear()
        if left or done != WARMUP + n:
            raise RuntimeError(
                f"JetStream: workers handled {done} of {WARMUP + n} tasks, {left} left unacked"
            )
        await js.delete_stream(STREAM)
        return elapsed
    finally:
        for child in started:  # an error left their jobs running: end them
            child.kill()
        await nc.close()


def measure(quick: bool, n: int | None = None) -> list[Metric | Skip]:
    """Tasks/s of the work queue: memory storage with fetch 256 (quick: only that), file storage, fetch 1."""
    missing = nats_missing()
    if missing:
        return [Skip("work", SYSTEM, variant("memory", BATCH), missing)]
    n = n or (QUICK_N if quick else N)
    configs = [("memory", BATCH, n)]
    if not quick:
        configs += [("file", BATCH, n), ("memory", 1, n // 10)]
    out: list[Metric | Skip] = []
    with children(WORKERS, "nats-worker") as pool:
        for storage, batch, count in configs:
            times = []
            for _ in range(WORK_ROUNDS):
                with nats_server() as url:
                    times.append(asyncio.run(_run(url, pool, count, storage, batch)))
            out.append(rate_metric(SYSTEM, variant(storage, batch), "tcp", count, statistics.median(times)))
    return out
