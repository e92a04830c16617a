"""Large payloads streamed back to back: K sends of 64 MiB with no pause, one way, two processes.

``bench.shm`` times one delivery after a settle pause, which leaves the toolkit's warm
spare segment time to be ready; a producer streaming arrays never pauses. Here the sender
sends ``K`` payloads one after another and the clock runs from just before the first
timed send to the receiver holding the last one (``time.monotonic_ns``: one clock for
every process on Linux); each row is that time / K, after ``WARMUP`` untimed sends (the
stream's start: its first segment is made afresh, and the toolkit builds what it reuses,
see ``patterns/shm/ring.py``; how long those took is reported as ``startup_ms``). Rows:

* ``Pair, shared memory (place)``: ``patterns.Pair`` over ipc, ``send({"data": array})`` of
  one prebuilt numpy array: the toolkit copies it into a segment (``Placement.put``) and
  sends a reference; the receiver takes ``body["data"]`` (a memoryview) and releases it;
* ``shared_buffer (producer)``: a fresh ``patterns.shared_buffer(size)`` per send, filled in
  place by numpy on the clock (a producer writes its data somewhere anyway), then
  ``send({"data": buf})``: nothing is copied by the toolkit;
* ``Pair1 sync`` (pynng): the same bytes as one bare frame per send over ipc, blocking
  ``send`` / ``recv``: what the transport costs;
* ``memcpy`` (one process): ``numpy.copyto`` of the array into a preallocated array of the
  same size, the cost of one plain copy on this machine, measured in the same run.

Segments go to a private folder under ``/dev/shm``, removed at the end (a leftover is
reported); the receiver is a spawned child, always reaped.

    python -m bench.shm_stream            # K = 20
    python -m bench.shm_stream --quick    # K = 8
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pynng
import trio

import patterns

from . import _cli
from ._children import Child, Conn
from ._common import format_table
from ._schema import TOOLKIT, Metric, Skip

__all__ = ["measure", "suite_step"]

MiB = 1 << 20
SIZE = 64 * MiB
WARMUP = 4  # the stream's start, timed apart: a fresh segment, its first reuse, a spare prepared
MAX_MESSAGE_SIZE = 2 * SIZE
STEP_TIMEOUT_S = 120.0
SHM_ROOT = Path("/dev/shm")
VARIANTS = {  # key -> (system, variant, transport)
    "place": (TOOLKIT, "Pair, shared memory (place)", "ipc"),
    "shared_buffer": (TOOLKIT, "shared_buffer (producer)", "ipc"),
    "pynng": ("pynng", "Pair1 sync", "ipc"),
    "memcpy": ("memcpy", "memcpy (numpy.copyto, one process)", "memory"),
}


# ===================================================================== the receiver (child)
async def _receive_toolkit(conn: Conn, address: str, count: int, directory: str) -> dict[str, Any]:
    shm = patterns.SharedMemory(directory=directory)
    async with patterns.Pair(dial=address, name="receiver", shared_memory=shm,
                             max_message_size=MAX_MESSAGE_SIZE) as pair:  # fmt: skip
        with trio.fail_after(STEP_TIMEOUT_S):
            await pair.wait_for_peers(1)
        conn.send(("ready", None))
        wrong = 0
        with trio.fail_after(STEP_TIMEOUT_S):
            for i in range(WARMUP + count):
                body = await pair.receive()
                data = body["data"]
                wrong += data.nbytes != SIZE
                if isinstance(data, memoryview):
                    data.release()  # the segment goes back now, as a streaming consumer's would
                del body, data
                if i == WARMUP - 1:
                    conn.send(("warm", time.monotonic_ns()))
        return {"last_ns": time.monotonic_ns(), "wrong_size": wrong}


def receive(conn: Conn, style: str, address: str, count: int, directory: str) -> dict[str, Any]:
    """The receiver's job: ``WARMUP`` then ``count`` payloads; when the last one was held."""
    if style != "pynng":
        return trio.run(_receive_toolkit, conn, address, count, directory)
    wrong = 0
    with pynng.Pair1(recv_timeout=int(STEP_TIMEOUT_S * 1000), recv_max_size=MAX_MESSAGE_SIZE) as sock:
        sock.dial(address, block=True)
        conn.send(("ready", None))
        for i in range(WARMUP + count):
            wrong += len(sock.recv()) != SIZE
            if i == WARMUP - 1:
                conn.send(("warm", time.monotonic_ns()))
        return {"last_ns": time.monotonic_ns(), "wrong_size": wrong}


# ===================================================================== the sender (here)
async def _send_toolkit(child: Child, style: str, address: str, array: Any, count: int,
                        directory: str) -> tuple[int, dict[str, Any]]:  # fmt: skip
    import numpy as np

    shm = patterns.SharedMemory(directory=directory)
    async with patterns.Pair(listen=address, name="sender", shared_memory=shm,
                             max_message_size=MAX_MESSAGE_SIZE) as pair:  # fmt: skip
        child.start(receive, style, pair.addresses[0], count, directory)
        await child.areceive("ready", STEP_TIMEOUT_S)
        with trio.fail_after(STEP_TIMEOUT_S):
            await pair.wait_for_peers(1)
        start = time.monotonic_ns()
        t0, warm_ns = 0, 0
        before = pair.statistics().shm_pool
        for i in range(WARMUP + count):
            if i == WARMUP:
                warm_ns = await child.areceive("warm", STEP_TIMEOUT_S)
                before = pair.statistics().shm_pool
                t0 = time.monotonic_ns()
            with trio.fail_after(STEP_TIMEOUT_S):
                if style == "place":
                    await pair.send({"data": array})
                else:
                    buf = patterns.shared_buffer(SIZE, directory=directory)
                    np.frombuffer(buf.view, dtype=np.uint64)[:] = i  # the producer writes its data in place
                    await pair.send({"data": buf})
        stats = await child.areceive("done", STEP_TIMEOUT_S)
        pool = pair.statistics().shm_pool  # (the process's pool, before the socket closes and drops it)
        # the timed sends' own: reused segments, and those that found none (a spare or a fresh one)
        stats["pool"] = {"reused": pool.reused - before.reused, "missed": pool.missed - before.missed}
        stats["startup_ms"] = (warm_ns - start) / WARMUP / 1e6
    return t0, stats


def _send_pynng(child: Child, address: str, payload: bytes, count: int) -> tuple[int, dict[str, Any]]:
    with pynng.Pair1(send_timeout=int(STEP_TIMEOUT_S * 1000)) as sock:
        sock.listen(address)
        child.start(receive, "pynng", address, count, "")
        child.receive("ready", STEP_TIMEOUT_S)
        start = time.monotonic_ns()
        t0, warm_ns = 0, 0
        for i in range(WARMUP + count):
            if i == WARMUP:
                warm_ns = child.receive("warm", STEP_TIMEOUT_S)
                t0 = time.monotonic_ns()
            sock.send(payload)
        stats = child.receive("done", STEP_TIMEOUT_S)
        stats["startup_ms"] = (warm_ns - start) / WARMUP / 1e6
    return t0, stats


def _memcpy(array: Any, count: int) -> float:
    import numpy as np

    target = np.empty_like(array)
    np.copyto(target, array)  # the target's pages exist before the clock: a plain copy
    t0 = time.perf_counter_ns()
    for _ in range(count):
        np.copyto(target, array)
    return (time.perf_counter_ns() - t0) / count / 1e6


def measure(count: int) -> tuple[dict[str, float], list[str]]:
    """ms per payload for each variant, and the shared-memory files left behind (removed)."""
    import numpy as np

    array = np.arange(SIZE // 8, dtype=np.uint64)
    out: dict[str, float] = {"memcpy": _memcpy(array, count)}
    pools: dict[str, dict[str, int]] = {}
    startup: dict[str, float] = {}
    folder = tempfile.mkdtemp(prefix="nngc-bench-stream-", dir=SHM_ROOT)
    ipc = tempfile.mkdtemp(prefix="nngc-bench-stream-ipc-")
    child = Child("stream-receiver")
    try:
        for key in ("place", "shared_buffer", "pynng"):
            address = f"ipc://{ipc}/{key}.ipc"
            if key == "pynng":
                t0, stats = _send_pynng(child, address, array.tobytes(), count)
            else:
                t0, stats = trio.run(_send_toolkit, child, key, address, array, count, folder)
            if stats["wrong_size"]:
                raise RuntimeError(f"{key}: {stats['wrong_size']} payloads of the wrong size")
            out[key] = (stats["last_ns"] - t0) / count / 1e6
            startup[key] = round(stats["startup_ms"], 2)
            if "pool" in stats:
                pools[key] = stats["pool"]
    finally:
        child.stop()
        left = sorted(p.name for p in Path(folder).iterdir())
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(ipc, ignore_errors=True)
    POOLS.clear()
    POOLS.update(pools)
    STARTUP.clear()
    STARTUP.update(startup)
    return out, left


POOLS: dict[str, dict[str, int]] = {}
"""The sender's segment pool over the timed sends of the last :func:`measure`, per toolkit
row: ``reused`` (a released segment carried the payload) and ``missed`` (none was
released in time: a spare or a fresh segment carried it)."""
STARTUP: dict[str, float] = {}
"""ms per payload of the ``WARMUP`` untimed sends that start each row's stream."""


def suite_step(quick: bool) -> list[Metric | Skip]:
    """The suite's ``stream`` step, as Metric rows (``delivered_ms``: ms per payload)."""
    if importlib.util.find_spec("numpy") is None:
        return [Skip("stream", TOOLKIT, "streamed shared memory", "numpy not installed: pip install -e '.[bench]'")]
    figures, left = measure(8 if quick else 20)
    out: list[Metric | Skip] = []
    for key, ms in figures.items():
        system, variant, transport = VARIANTS[key]
        out.append(Metric("stream", system, variant, transport, SIZE, 1, "delivered_ms", round(ms, 3), "ms"))
        out.append(Metric("stream", system, variant, transport, SIZE, 1, "gb_per_s", round(SIZE / ms / 1e6, 2),
                          "GB/s", higher_is_better=True))  # fmt: skip
    if left:
        out.append(Skip("stream", TOOLKIT, "cleanup", f"{len(left)} shared-memory files were left behind (removed)"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("shm_stream", "Back-to-back 64 MiB sends, no pause: shared memory vs raw pynng vs memcpy.",
                    "K = 8 sends per row (default 20)")  # fmt: skip
    args = p.parse_args(argv)
    count = 8 if args.quick else 20

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        figures, left = measure(count)
        raw, copy = figures["pynng"], figures["memcpy"]
        goals = {"place_vs_pynng": {"value": round(raw / figures["place"], 2), "op": ">=", "target": 15,
                                    "met": raw / figures["place"] >= 15},
                 "shared_buffer_vs_pynng": {"value": round(raw / figures["shared_buffer"], 2), "op": ">=",
                                            "target": 15, "met": raw / figures["shared_buffer"] >= 15},
                 "place_vs_memcpy": {"value": round(figures["place"] / copy, 2), "op": "<=", "target": 2,
                                     "met": figures["place"] / copy <= 2}}  # fmt: skip
        return {"params": {"count": count, "warmup": WARMUP, "size_bytes": SIZE}, "ms_per_payload": figures,
                "startup_ms": dict(STARTUP), "goals": goals, "shm_files_left": left,
                "segment_pool": dict(POOLS)}  # fmt: skip

    def render(report: dict[str, Any]) -> str:
        rows = [(VARIANTS[k][1], f"{v:.2f}", f"{SIZE / v / 1e6:.2f}") for k, v in report["ms_per_payload"].items()]
        goals = [f"{name}: {g['value']} (goal {g['op']} {g['target']}: {'met' if g['met'] else 'NOT met'})"
                 for name, g in report["goals"].items()]  # fmt: skip
        pools = [f"segment pool over the timed sends of {key}: {pool}"
                 for key, pool in report.get("segment_pool", {}).items()]  # fmt: skip
        pools.append(f"the first {report['params']['warmup']} sends of each row (untimed), ms each: "
                     + ", ".join(f"{key} {ms}" for key, ms in report.get("startup_ms", {}).items()))  # fmt: skip
        return "\n".join([format_table(("variant", "ms per 64 MiB", "GB/s"), rows), "", *goals, *pools])

    return _cli.run(args, "shm_stream", f"shm_stream: {count} x 64 MiB back to back", run, render, ("numpy",))


if __name__ == "__main__":
    sys.exit(main())
