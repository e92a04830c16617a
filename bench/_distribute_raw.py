"""The raw references of ``bench.distribute``: bare 64-byte frames over pynng push/pull, no ack.

A ``pynng.Push0`` listens in this process, a ``pynng.Pull0`` dials from each of
``WORKERS`` children; :func:`raw_phase` measures messages/s from the first send to the
last receive in any puller, with the sender and the pullers under trio or blocking
(``RAW_STYLES``).
"""

from __future__ import annotations

import time
from typing import Any

import pynng
import trio

from ._distribute_setup import RAW_STYLES, WORKERS, Pool, SystemCpu, other_pct, sequence
from ._distribute_workers import RAW_PAYLOAD, SETUP_TIMEOUT_S, Child

DRAIN_TIMEOUT_S = 30.0  # raw phases: no progress for this long means frames were lost
COUNT_POLL_S = 0.02


def _wait_pipes(sock: Any, count: int, children: list[Child]) -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while len(sock.pipes) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"raw reference: only {len(sock.pipes)} of {count} pullers connected")
        for child in children:
            if not child.process.is_alive():
                raise RuntimeError(f"child {child.index} exited (code {child.process.exitcode})")
        time.sleep(0.01)


def _drain(children: list[Child], target: int) -> int:
    """Poll the pullers' counts until they add up to ``target`` (or stop progressing)."""
    last, since = -1, time.monotonic()
    while True:
        for child in children:
            child.send("count")
        total: int = sum(child.receive("count", SETUP_TIMEOUT_S) for child in children)
        if total >= target:
            return total
        if total != last:
            last, since = total, time.monotonic()
        elif time.monotonic() - since > DRAIN_TIMEOUT_S:
            return total
        time.sleep(COUNT_POLL_S)


def raw_phase(pool: Pool, n: int, warmup: int, tmpdir: str, kind: str) -> dict[str, Any]:
    """Push0 here (trio: ``await asend``; sync: ``send``) -> Pull0 in ``WORKERS`` children (likewise)."""
    sender, puller = RAW_STYLES[kind]
    address = f"ipc://{tmpdir}/raw{sequence.next()}"
    pullers = pool.children[:WORKERS]
    started: list[Child] = []
    stats: list[dict[str, Any]] = []
    sock = pynng.Push0()
    try:
        sock.listen(address)
        for child in pullers:
            child.send(f"raw_{puller}", address)
            started.append(child)
        for child in pullers:
            child.receive("ready", SETUP_TIMEOUT_S)
        _wait_pipes(sock, len(pullers), pullers)

        if sender == "trio":

            async def push(count: int) -> None:
                for _ in range(count):
                    await sock.asend(RAW_PAYLOAD)

            def send(count: int) -> None:
                trio.run(push, count)
        else:

            def send(count: int) -> None:
                for _ in range(count):
                    sock.send(RAW_PAYLOAD)

        if warmup:
            send(warmup)
            if _drain(pullers, warmup) < warmup:
                raise RuntimeError(f"{kind}: the warm-up frames did not all arrive")
        for child in pullers:
            child.send("mark")
        cpu_children0 = [child.receive("mark", SETUP_TIMEOUT_S) for child in pullers]
        system = SystemCpu()
        cpu0 = time.process_time()
        t0_ns = time.monotonic_ns()
        send(n)
        sent_ns = time.monotonic_ns()
        cpu_parent = time.process_time() - cpu0
        received = _drain(pullers, warmup + n) - warmup
        system_pct = system.busy_pct()
        for child in pullers:
            child.send("mark")
        cpu_children = [child.receive("mark", SETUP_TIMEOUT_S) for child in pullers]
    finally:
        sock.close()
        for child in started:
            child.send("stop")
        for child in started:
            stats.append(child.receive("done", SETUP_TIMEOUT_S))
    last_ns = max(s["last_ns"] for s in stats)
    elapsed = (last_ns - t0_ns) / 1e9
    if received != n or any(s["wrong_size"] for s in stats):
        raise RuntimeError(
            f"{kind}: {received} of {n} frames arrived, "
            f"{sum(s['wrong_size'] for s in stats)} of the wrong size"
        )
    parent_pct = round(100 * cpu_parent / elapsed, 1)
    children_pct = round(100 * (sum(cpu_children) - sum(cpu_children0)) / elapsed, 1)
    return {
        "kind": kind,
        "n": n,
        "warmup": warmup,
        "elapsed_s": round(elapsed, 4),
        "rate": round(n / elapsed, 1),
        "send_rate": round(n / ((sent_ns - t0_ns) / 1e9), 1),
        "parent_cpu_pct": parent_pct,
        "children_cpu_pct": children_pct,
        "other_cpu_pct": other_pct(system_pct, parent_pct, children_pct),
        "per_puller": [s["count"] for s in stats],  # warm-up included
    }
