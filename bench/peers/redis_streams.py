"""Redis Streams (redis-server + redis-py): acknowledged work distribution and request/reply.

* ``Streams XREADGROUP+XACK``: mirrors ``bench.distribute`` (64-byte unique tasks, 2
  worker processes, trivial work, tasks/s from the first submit to the N-th result).
  This process XADDs the tasks to a stream in pipelines of ``SUBMIT_CHUNK`` (a thread),
  while reading results with ``XREAD COUNT 1000 BLOCK``; the workers, one consumer
  group, loop one pipeline per batch: XADD each task to the results stream, XACK the
  batch, ``XREADGROUP COUNT 100 BLOCK``. Every result must come back exactly once and
  nothing may stay pending (unacknowledged) afterwards, or the run fails.
* ``Streams request/reply``: per round trip this process sends one pipeline, XADD to
  the request stream (fields: its reply stream, the data) then ``XREAD BLOCK`` on its
  own reply stream from the last reply's id; a server process reads the requests with
  XREADGROUP and answers in one pipeline (XADD reply, XACK, next XREADGROUP). Both
  streams are trimmed (``MAXLEN ~ 16``) so 1 MiB payloads do not pile up.

redis-server runs without persistence (in memory, like the toolkit); redis-py uses the
hiredis parser when the ``hiredis`` package is installed (``redis[hiredis]``).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .._children import children
from .._schema import Metric, Skip
from ._servers import redis_missing, redis_server
from ._util import (
    TASK_SIZE,
    WORK_ROUNDS,
    WORKERS,
    make_payload,
    payloads,
    rate_metric,
    rtt_counts,
    rtt_metrics,
)

SYSTEM = "redis"
TASKS, GROUP, RESULTS = "tasks", "workers", "results"
REQUESTS, SERVERS = "requests", "servers"
N, QUICK_N = 50_000, 20_000
WARMUP = 1000
SUBMIT_CHUNK = 500  # XADDs per pipeline
READ_COUNT = 100  # XREADGROUP COUNT per worker batch
RESULT_COUNT = 1000
BASE_N = 2000  # round trips per 64 B / 4 KiB size (quick 500; 1 MiB a tenth)
PROGRESS_TIMEOUT_S = 10.0
REPLY_TIMEOUT_MS = 5000
WORK_VARIANT = f"Streams XREADGROUP+XACK (COUNT {READ_COUNT}, pipelined)"
RTT_VARIANT = "Streams request/reply (pipelined XADD+XREAD)"


def _client(port: int) -> Any:
    import redis

    from .._placement import address

    return redis.Redis(host=address(), port=port)


def hiredis_note() -> str:
    """' (no hiredis)' when redis-py parses replies in Python (slower), else ''."""
    try:
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:
        return ""
    return "" if HIREDIS_AVAILABLE else " (no hiredis)"


# ===================================================================== work distribution
def _submit(port: int, first: int, n: int, errors: list[BaseException]) -> None:
    r = _client(port)
    try:
        for start in range(0, n, SUBMIT_CHUNK):
            pipe = r.pipeline(transaction=False)
            for i in range(first + start, first + min(n, start + SUBMIT_CHUNK)):
                pipe.xadd(TASKS, {b"t": make_payload(TASK_SIZE, i)})
            pipe.execute()
    except BaseException as exc:  # noqa: BLE001 -- re-raised by the reading thread
        errors.append(exc)
    finally:
        r.close()


def _phase(r: Any, port: int, first: int, n: int, last: list[bytes]) -> float:
    """Submit tasks first..first+n-1 (a thread), read all n results here; seconds first XADD to last result."""
    seen = bytearray(n)
    count = 0
    errors: list[BaseException] = []
    submitter = threading.Thread(target=_submit, args=(port, first, n, errors), daemon=True)
    t0 = time.perf_counter()
    submitter.start()
    try:
        idle_since = time.monotonic()
        while count < n:
            response = r.xread({RESULTS: last[0]}, count=RESULT_COUNT, block=1000)
            if errors:
                raise RuntimeError(f"Redis submit failed: {errors[0]!r}")
            if not response:
                if time.monotonic() - idle_since > PROGRESS_TIMEOUT_S:
                    raise RuntimeError(f"Redis: {count} of {n} results, none in {PROGRESS_TIMEOUT_S} s")
                continue
            idle_since = time.monotonic()
            entries = response[0][1]
            for _, fields in entries:
                data = fields[b"r"]
                i = int.from_bytes(data[:8], "big") - first
                if not 0 <= i < n or seen[i] or len(data) != TASK_SIZE:
                    raise RuntimeError(f"Redis: a duplicate or foreign result (task {i + first})")
                seen[i] = 1
            count += len(entries)
            last[0] = entries[-1][0]
        t1 = time.perf_counter()
    finally:
        submitter.join(PROGRESS_TIMEOUT_S)
    return t1 - t0


def _pending(r: Any) -> int:
    deadline = time.monotonic() + 5.0
    while True:
        left = int(r.xpending(TASKS, GROUP)["pending"])
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@contextlib.contextmanager
def work_session(read_count: int = READ_COUNT) -> Iterator[Callable[[int], float]]:
    """redis-server and ``WORKERS`` worker processes, warmed up; yields ``run(n) -> seconds``,
    one timed round of ``n`` tasks (the next round's task indices follow on). On leaving,
    every task must have been handled exactly once and nothing may stay pending.
    ``bench.distribute_peers`` alternates these rounds with the toolkit's."""
    from . import _redis_jobs

    with redis_server() as port, children(WORKERS, "redis-worker") as pool:
        r = _client(port)
        try:
            r.xgroup_create(TASKS, GROUP, id="0", mkstream=True)
            for i, child in enumerate(pool):
                child.start(_redis_jobs.work, port, TASKS, GROUP, f"w{i}", RESULTS, read_count)
            for child in pool:
                child.receive("ready")
            last = [b"0-0"]
            _phase(r, port, 0, WARMUP, last)
            total = [WARMUP]

            def run(n: int) -> float:
                seconds = _phase(r, port, 10**9 * len(total), n, last)
                total.append(n)
                return seconds

            yield run
            left = _pending(r)
            done = sum(child.finish(stop=True) for child in pool)
            if left or done != sum(total):
                raise RuntimeError(f"Redis: workers handled {done} of {sum(total)} tasks, {left} unacked")
        finally:
            r.close()


def measure_work(quick: bool, n: int | None = None) -> list[Metric | Skip]:
    missing = redis_missing()
    if missing:
        return [Skip("work", SYSTEM, WORK_VARIANT, missing)]
    n = n or (QUICK_N if quick else N)
    with work_session() as run:
        times = [run(n) for _ in range(WORK_ROUNDS)]
    return [rate_metric(SYSTEM, WORK_VARIANT + hiredis_note(), "tcp", n, statistics.median(times))]


# ===================================================================== request/reply
def _roundtrips(r: Any, reply_stream: str, payload: bytes, count: int, last: list[bytes]) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    fields = {b"r": reply_stream, b"d": payload}
    for _ in range(count):
        t0 = clock()
        pipe = r.pipeline(transaction=False)
        pipe.xadd(REQUESTS, fields, maxlen=16, approximate=True)
        pipe.xread({reply_stream: last[0]}, count=1, block=REPLY_TIMEOUT_MS)
        response = pipe.execute()[1]
        t1 = clock()
        samples.append(t1 - t0)
        if not response:
            raise RuntimeError(f"Redis request/reply: no reply within {REPLY_TIMEOUT_MS} ms")
        eid, reply = response[0][1][0]
        last[0] = eid
    if reply[b"d"] != payload:
        raise RuntimeError(f"Redis request/reply: {len(reply[b'd'])} bytes came back, not {len(payload)}")
    return samples


def measure_rtt(quick: bool, sizes: Sequence[int] | None = None) -> list[Metric | Skip]:
    missing = redis_missing()
    if missing:
        return [Skip("rtt", SYSTEM, RTT_VARIANT, missing)]
    from . import _redis_jobs

    sizes = payloads(quick, sizes)
    out: list[Metric | Skip] = []
    with redis_server() as port, children(1, "redis-server-job") as (child,):
        r = _client(port)
        try:
            r.xgroup_create(REQUESTS, SERVERS, id="0", mkstream=True)
            child.start(_redis_jobs.serve, port, REQUESTS, SERVERS, 16)
            child.receive("ready")
            last = [b"0-0"]
            samples: dict[int, list[int]] = {}
            for size in sizes:
                payload = make_payload(size, size)
                warmup, count = rtt_counts(size, quick, BASE_N)
                _roundtrips(r, "reply:bench", payload, warmup, last)
                samples[size] = _roundtrips(r, "reply:bench", payload, count, last)
            child.finish(stop=True)
        finally:
            r.close()
    for size in sizes:
        out += rtt_metrics(SYSTEM, RTT_VARIANT + hiredis_note(), "tcp", size, samples[size])
    return out
