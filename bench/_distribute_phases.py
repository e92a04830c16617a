"""The phases of ``bench.distribute``: a ``consensus.Dispatcher`` or a raw ``pynng.Push0`` here.

:func:`toolkit_phase` measures tasks/s end to end with ``WORKERS`` worker processes
(the ``toolkit``, ``defaults`` and explore rows); with ``kill_at`` it SIGKILLs one of
them part-way and starts the spare (the ``kill`` row). Every run checks that each task
came out exactly once and ok (:func:`check_outcomes`). :func:`raw_phase` measures bare
64-byte frames without acknowledgement, messages/s from the first send to the last
receive in any puller, with the sender and the pullers under trio or blocking.
:class:`SystemCpu` and :func:`other_pct` account for the machine's CPU use over a
timed window.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from typing import Any

import pynng
import trio

import consensus

from ._children import Child
from ._common import _cpu_times
from ._distribute_jobs import RAW_PAYLOAD, WORKERS, Knobs, Pool, make_task, pull, task_index, worker
from ._placement import address as listen_address
from ._ports import free_port_block

RAW_STYLES = {  # phase: (how this process sends, how the pullers receive)
    "raw_trio": ("trio", "trio"),
    "raw_trio_pull": ("sync", "trio"),
    "raw_sync": ("sync", "sync"),
}
DRAIN_TIMEOUT_S = 30.0  # raw phases: no progress for this long means frames were lost
COUNT_POLL_S = 0.02
sequence = itertools.count(1)  # unique names for ipc paths and workers across phases


class SystemCpu:
    """All CPU use on the machine over a window (Linux ``/proc/stat``), in % of one core."""

    def __init__(self) -> None:
        self.before = _cpu_times()

    def busy_pct(self) -> float | None:
        after = _cpu_times()
        if self.before is None or after is None or after[0] == self.before[0]:
            return None
        total, idle = after[0] - self.before[0], after[1] - self.before[1]
        return 100.0 * (total - idle) / total * (os.cpu_count() or 1)


def other_pct(system: float | None, *ours: float | None) -> float | None:
    """CPU use by processes other than this benchmark's over the window (100 = one core)."""
    if system is None or any(v is None for v in ours):
        return None
    return round(max(0.0, system - sum(v for v in ours if v is not None)), 1)

JOIN_GRACE_S = 5.0  # workers connected: the dispatcher must count them within this
JOIN_RETRIES = 3


async def _marks(children: list[Child]) -> list[float]:
    for child in children:
        child.send("mark")
    return [await child.areceive("mark") for child in children]


def check_outcomes(outcomes: list[Any], first: int, n: int, what: str) -> dict[str, int]:
    """Every outcome ok, its result its task, each task id and task (indices first..first+n) once."""
    problems = {"outcomes": len(outcomes), "not_ok": 0, "wrong_result": 0, "duplicate_ids": 0}
    ids = set()
    seen = bytearray(n)
    missing_or_dup = 0
    for o in outcomes:
        if not o.ok:
            problems["not_ok"] += 1
        elif o.result != o.task:
            problems["wrong_result"] += 1
        if o.task_id in ids:
            problems["duplicate_ids"] += 1
        ids.add(o.task_id)
        i = task_index(o.task) - first
        if 0 <= i < n:
            if seen[i]:
                missing_or_dup += 1
            seen[i] = 1
        else:
            missing_or_dup += 1
    problems["tasks_missing"] = n - sum(seen)
    problems["tasks_duplicated_or_foreign"] = missing_or_dup
    if len(outcomes) != n or any(v for k, v in problems.items() if k != "outcomes"):
        raise RuntimeError(f"{what}: outcomes are not exactly once and ok: {problems} (expected {n})")
    return problems


def check_streamed(seen: bytearray, odd: list[Any], first: int, n: int, what: str) -> dict[str, int]:
    """:func:`check_outcomes` for outcomes checked as they came: ``seen`` marks each task that
    came out once, ok, with its own result and an unused id; ``odd`` holds every other one."""
    if not odd and all(seen):
        return {"outcomes": n, "not_ok": 0, "wrong_result": 0, "duplicate_ids": 0, "tasks_missing": 0,
                "tasks_duplicated_or_foreign": 0}  # fmt: skip
    raise RuntimeError(f"{what}: outcomes are not exactly once and ok: {n - seen.count(0)} of {n} tasks came "
                       f"out right, {len(odd)} odd outcomes, e.g. {odd[:3]!r:.300}")  # fmt: skip


async def _join(dispatcher: consensus.Dispatcher, workers: list[Child], names: dict[Child, str], address: str,
                knobs: Knobs) -> int:  # fmt: skip
    """Wait until the dispatcher counts every worker; restart a worker it missed.

    Workers report ready once connected. A worker whose hello the dispatcher dropped
    (it can arrive before the dispatcher's pull socket has registered the connection;
    see the report) is never counted: stop it and start it again under a new name.
    Returns how many restarts that took.
    """
    retries = 0
    while True:
        with trio.move_on_after(JOIN_GRACE_S):
            await dispatcher.wait_for_workers(len(workers))
            return retries
        missing = [child for child in workers if names[child] not in dispatcher.workers]
        if retries >= JOIN_RETRIES or not missing:
            raise RuntimeError(
                f"the dispatcher counts workers {dispatcher.workers} of {sorted(names[c] for c in workers)} "
                f"after {retries} restarts"
            )
        for child in missing:
            retries += 1
            print(f"\n    warning: the dispatcher did not count worker {names[child]!r} within "
                  f"{JOIN_GRACE_S:g} s of its connection (hello dropped); restarting it", end="",
                  file=sys.stderr)  # fmt: skip
            child.send("stop")
            await child.areceive("done")
            names[child] = f"{names[child]}-r{retries}"
            child.start(worker, address, names[child], knobs.concurrency, knobs.prefetch)
            await child.areceive("ready")


def _wire(dispatcher: consensus.Dispatcher) -> dict[str, int]:
    """Messages on the dispatcher's sockets (private attributes: diagnostics only)."""
    push, pull = dispatcher._push.statistics(), dispatcher._pull.statistics()
    return {"task_batches_sent": push.messages_sent, "task_bytes_sent": push.bytes_sent,
            "replies_received": pull.messages_received,
            "reply_bytes_received": pull.bytes_received}  # fmt: skip


def work_address(transport: str, tmpdir: str, seq: int) -> str:
    """A fresh dispatcher address: an ipc path in ``tmpdir``, or tcp on 127.0.0.1 (2 free ports P, P+1;
    across hosts, on the host's address: :mod:`bench._placement`)."""
    if transport == "ipc":
        return f"ipc://{tmpdir}/d{seq}"
    if transport == "tcp":
        return f"tcp://{listen_address()}:{free_port_block(2)}"
    raise ValueError(f"unknown transport {transport!r}")


async def toolkit_phase(pool: Pool, knobs: Knobs, n: int, warmup: int, tmpdir: str, kind: str, lease: float,
                        kill_at: float | None, transport: str = "ipc") -> dict[str, Any]:  # fmt: skip
    """A dispatcher here, ``WORKERS`` worker children; ``kill_at``: SIGKILL one, start the spare."""
    seq = next(sequence)
    address = work_address(transport, tmpdir, seq)
    workers = pool.children[:WORKERS]
    spare = pool.children[WORKERS] if kill_at is not None else None
    names = {child: f"w{seq}-{i}" for i, child in enumerate(pool.children)}
    first = 10**9  # task indices of the timed run (the warm-up uses 0..warmup-1)
    tasks = [make_task(first + i) for i in range(n)]
    serving: list[Child] = []
    killed_at_s: float | None = None
    killed_after = victim_held = 0
    times: list[float] = []
    # max_capacity: the workers' own capacity counts (the default cap, 256, would hold them to less)
    async with consensus.Dispatcher(address, name="bench", max_batch=knobs.max_batch,
                                    max_capacity=max(256, knobs.capacity)) as dispatcher:  # fmt: skip
        try:
            for child in workers:
                child.start(worker, address, names[child], knobs.concurrency, knobs.prefetch)
                serving.append(child)
            capacities = [await child.areceive("ready") for child in workers]
            join_retries = await _join(dispatcher, workers, names, address, knobs)

            if warmup:
                warm: list[Any] = []
                async with dispatcher.distribute([make_task(i) for i in range(warmup)],
                                                 lease=lease) as outcomes:  # fmt: skip
                    async for outcome in outcomes:
                        warm.append(outcome)
                check_outcomes(warm, 0, warmup, f"{kind} warm-up")

            cpu_children0 = await _marks(workers)
            d0 = dispatcher.statistics()
            wire0 = _wire(dispatcher)
            got: list[Any] = []
            append = got.append
            kill_after = -1 if kill_at is None else max(1, int(n * kill_at))
            clock = time.perf_counter
            system = SystemCpu()
            cpu0 = time.process_time()
            t0 = clock()
            async with dispatcher.distribute(tasks, lease=lease) as outcomes:
                if kill_at is None:
                    # Checked as they come, as the peers' harnesses check theirs, and not kept:
                    # a list of every outcome made the cyclic GC's full pass in this window
                    # cost about 1.5 us a task, which no consumer that drops them pays.
                    seen, ids = bytearray(n), bytearray(n)
                    async for outcome in outcomes:
                        i, tid = int(outcome.task[5:17]) - first, outcome.task_id  # (task_index, inline)
                        if (outcome.error is None and outcome.result == outcome.task and 0 <= i < n
                                and not seen[i] and 0 <= tid < n and not ids[tid]):  # fmt: skip
                            seen[i] = ids[tid] = 1
                        else:
                            append(outcome)  # the odd ones, for the report
                    t1 = clock()
                else:
                    assert spare is not None
                    victim = names[workers[0]]
                    async for outcome in outcomes:
                        append(outcome)
                        times.append(clock())
                        if killed_at_s is None and len(got) >= kill_after:
                            # the first moment from there on at which the victim holds claimed work
                            held = outcomes.statistics().per_worker.get(victim)
                            if (held is not None and held.in_flight > 0) or len(got) == n:
                                victim_held = 0 if held is None else held.in_flight
                                workers[0].kill()
                                spare.start(worker, address, names[spare], knobs.concurrency, knobs.prefetch)
                                serving.append(spare)
                                killed_at_s = clock()
                                killed_after = len(got)
                    t1 = clock()
                stats = outcomes.statistics()
            cpu_parent = time.process_time() - cpu0
            system_pct = system.busy_pct()
            survivors = workers[1:] if kill_at is not None else workers
            cpu_children = await _marks(survivors)
            if kill_at is None:
                cpu_workers = sum(cpu_children) - sum(cpu_children0)
            else:  # the killed one's CPU time is lost; the spare counts from process start-up
                cpu_workers = None
            d1 = dispatcher.statistics()
            wire = {k: v - wire0[k] for k, v in _wire(dispatcher).items()}
        finally:
            worker_stats = []
            for child in serving:
                if child.killed:
                    continue
                if child is spare:
                    await child.areceive("ready")
                child.send("stop")
            for child in serving:
                if not child.killed:
                    worker_stats.append(await child.areceive("done"))
    if kill_at is None:
        checks = check_streamed(seen, got, first, n, kind)
    else:
        checks = check_outcomes(got, first, n, kind)
    elapsed = t1 - t0
    parent_pct = round(100 * cpu_parent / elapsed, 1)
    children_pct = None if cpu_workers is None else round(100 * cpu_workers / elapsed, 1)
    row: dict[str, Any] = {
        "kind": kind, "transport": transport, "knobs": knobs.as_dict(), "n": n, "warmup": warmup,
        "elapsed_s": round(elapsed, 4), "rate": round(n / elapsed, 1), "parent_cpu_pct": parent_pct,
        "children_cpu_pct": children_pct, "other_cpu_pct": other_pct(system_pct, parent_pct, children_pct),
        "capacities": capacities, "join_retries": join_retries, "checks": checks,
        "distribution": {
            **{k: getattr(stats, k, None) for k in ("submitted", "done", "yielded", "ok", "failed", "redelivered",
                                                    "returned", "retried", "stale", "late_accepted", "cancelled",
                                                    "malformed")},  # "returned": newer library versions only
            "per_worker": {name: {"ok": w.ok, "lost": w.lost, "stale": w.stale, "failed": w.failed}
                           for name, w in stats.per_worker.items()},
        },
        "dispatcher": {k: getattr(d1, k) - getattr(d0, k) for k in ("workers_joined", "workers_lost", "stale_replies",
                                                                     "malformed")},
        "wire": {**wire, "tasks_per_batch": round(n / max(1, wire["task_batches_sent"]), 2),
                 "replies_per_task": round(wire["replies_received"] / n, 3)},
        "workers": worker_stats,
    }  # fmt: skip
    if kill_at is not None and killed_at_s is not None:
        after = [t for t in times if t >= killed_at_s]
        gaps = [b - a for a, b in zip([killed_at_s, *after], after)]
        spare_name = names[spare] if spare is not None else None
        first_spare = next((t for o, t in zip(got, times) if o.worker == spare_name and t >= killed_at_s),
                           None)  # fmt: skip
        victim = names[workers[0]]
        claimed_lost = stats.per_worker[victim].lost if victim in stats.per_worker else 0
        row["kill"] = {
            "lease_s": lease, "kill_from_outcome": kill_after, "killed_after_outcomes": killed_after,
            "victim_claimed_at_kill": victim_held,
            # attempts the killed worker had claimed: requeued when its connection dropped
            "redelivered_claimed": claimed_lost,
            # pushed to it but never claimed (no worker known): requeued at the claim timeout (or lease)
            "redelivered_unclaimed": stats.redelivered - claimed_lost, "killed_at_s": round(killed_at_s - t0, 4),
            "longest_pause_after_kill_ms": round(max(gaps, default=0.0) * 1e3, 2),
            "spare_first_outcome_after_kill_ms": None if first_spare is None else round((first_spare - killed_at_s) * 1e3, 1),
            "rate_before_kill": round(killed_after / (killed_at_s - t0), 1),
            "rate_after_kill": round((n - killed_after) / (t1 - killed_at_s), 1) if n > killed_after else None,
        }  # fmt: skip
    return row


# ===================================================================== the raw references
def _wait_pipes(sock: Any, count: int, children: list[Child]) -> None:
    deadline = time.monotonic() + 60.0
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
        total: int = sum(child.receive("count") for child in children)
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
    address = f"ipc://{tmpdir}/raw{next(sequence)}"
    pullers = pool.children[:WORKERS]
    started: list[Child] = []
    stats: list[dict[str, Any]] = []
    sock = pynng.Push0()
    try:
        sock.listen(address)
        for child in pullers:
            child.start(pull, puller, address)
            started.append(child)
        for child in pullers:
            child.receive("ready")
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
        cpu_children0 = [child.receive("mark") for child in pullers]
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
        cpu_children = [child.receive("mark") for child in pullers]
    finally:
        sock.close()
        for child in started:
            child.send("stop")
        for child in started:
            stats.append(child.receive("done"))
    last_ns = max(s["last_ns"] for s in stats)
    elapsed = (last_ns - t0_ns) / 1e9
    if received != n or any(s["wrong_size"] for s in stats):
        raise RuntimeError(f"{kind}: {received} of {n} frames arrived, "
                           f"{sum(s['wrong_size'] for s in stats)} of the wrong size")  # fmt: skip
    parent_pct = round(100 * cpu_parent / elapsed, 1)
    children_pct = round(100 * (sum(cpu_children) - sum(cpu_children0)) / elapsed, 1)
    return {"kind": kind, "n": n, "warmup": warmup, "elapsed_s": round(elapsed, 4), "rate": round(n / elapsed, 1),
            "send_rate": round(n / ((sent_ns - t0_ns) / 1e9), 1), "parent_cpu_pct": parent_pct,
            "children_cpu_pct": children_pct, "other_cpu_pct": other_pct(system_pct, parent_pct, children_pct),
            "per_puller": [s["count"] for s in stats]}  # warm-up included; fmt: skip
