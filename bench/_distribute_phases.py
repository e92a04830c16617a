"""The toolkit phases of ``bench.distribute``: a ``consensus.Dispatcher`` here, worker children.

:func:`toolkit_phase` measures tasks/s end to end with ``WORKERS`` worker processes
(the ``toolkit``, ``defaults`` and explore rows); with ``kill_at`` it SIGKILLs one of
them part-way and starts the spare (the ``kill`` row). Every run checks that each task
came out exactly once and ok (:func:`check_outcomes`).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import trio

import consensus

from ._distribute_setup import WORKERS, Knobs, Pool, SystemCpu, other_pct, sequence
from ._distribute_workers import SETUP_TIMEOUT_S, Child, make_task, task_index
from ._ports import free_port_block

JOIN_GRACE_S = 5.0  # workers connected: the dispatcher must count them within this
JOIN_RETRIES = 3


async def _marks(children: list[Child]) -> list[float]:
    for child in children:
        child.send("mark")
    return [await child.areceive("mark", SETUP_TIMEOUT_S) for child in children]


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


async def _join(
    dispatcher: consensus.Dispatcher,
    workers: list[Child],
    names: dict[Child, str],
    address: str,
    knobs: Knobs,
) -> int:
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
            print(
                f"\n    warning: the dispatcher did not count worker {names[child]!r} within {JOIN_GRACE_S:g} s "
                "of its connection (hello dropped); restarting it",
                end="",
                file=sys.stderr,
            )
            child.send("stop")
            await child.areceive("done", SETUP_TIMEOUT_S)
            names[child] = f"{names[child]}-r{retries}"
            child.send("worker", address, names[child], knobs.concurrency, knobs.prefetch)
            await child.areceive("ready", SETUP_TIMEOUT_S)


def _wire(dispatcher: consensus.Dispatcher) -> dict[str, int]:
    """Messages on the dispatcher's sockets (private attributes: diagnostics only)."""
    push = dispatcher._push.statistics()
    pull = dispatcher._pull.statistics()
    return {
        "task_batches_sent": push.messages_sent,
        "task_bytes_sent": push.bytes_sent,
        "replies_received": pull.messages_received,
        "reply_bytes_received": pull.bytes_received,
    }


def work_address(transport: str, tmpdir: str, seq: int) -> str:
    """A fresh dispatcher address: an ipc path in ``tmpdir``, or tcp on 127.0.0.1 (2 free ports P, P+1)."""
    if transport == "ipc":
        return f"ipc://{tmpdir}/d{seq}"
    if transport == "tcp":
        return f"tcp://127.0.0.1:{free_port_block(2)}"
    raise ValueError(f"unknown transport {transport!r}")


async def toolkit_phase(
    pool: Pool,
    knobs: Knobs,
    n: int,
    warmup: int,
    tmpdir: str,
    kind: str,
    lease: float,
    kill_at: float | None,
    transport: str = "ipc",
) -> dict[str, Any]:
    """A dispatcher here, ``WORKERS`` worker children; ``kill_at``: SIGKILL one, start the spare."""
    seq = sequence.next()
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
    async with consensus.Dispatcher(address, name="bench", max_batch=knobs.max_batch) as dispatcher:
        try:
            for child in workers:
                child.send("worker", address, names[child], knobs.concurrency, knobs.prefetch)
                serving.append(child)
            capacities = [await child.areceive("ready", SETUP_TIMEOUT_S) for child in workers]
            join_retries = await _join(dispatcher, workers, names, address, knobs)

            if warmup:
                warm: list[Any] = []
                async with dispatcher.distribute(
                    [make_task(i) for i in range(warmup)], lease=lease
                ) as outcomes:
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
                    async for outcome in outcomes:
                        append(outcome)
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
                                spare.send("worker", address, names[spare], knobs.concurrency, knobs.prefetch)
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
                    await child.areceive("ready", SETUP_TIMEOUT_S)
                child.send("stop")
            for child in serving:
                if not child.killed:
                    worker_stats.append(await child.areceive("done", SETUP_TIMEOUT_S))
    checks = check_outcomes(got, first, n, kind)
    elapsed = t1 - t0
    parent_pct = round(100 * cpu_parent / elapsed, 1)
    children_pct = None if cpu_workers is None else round(100 * cpu_workers / elapsed, 1)
    row: dict[str, Any] = {
        "kind": kind,
        "transport": transport,
        "knobs": knobs.as_dict(),
        "n": n,
        "warmup": warmup,
        "elapsed_s": round(elapsed, 4),
        "rate": round(n / elapsed, 1),
        "parent_cpu_pct": parent_pct,
        "children_cpu_pct": children_pct,
        "other_cpu_pct": other_pct(system_pct, parent_pct, children_pct),
        "capacities": capacities,
        "join_retries": join_retries,
        "checks": checks,
        "distribution": {
            "submitted": stats.submitted,
            "done": stats.done,
            "yielded": stats.yielded,
            "ok": stats.ok,
            "failed": stats.failed,
            "redelivered": stats.redelivered,
            "returned": getattr(stats, "returned", None),  # newer library versions only
            "retried": stats.retried,
            "stale": stats.stale,
            "late_accepted": stats.late_accepted,
            "cancelled": stats.cancelled,
            "malformed": stats.malformed,
            "per_worker": {
                name: {"ok": w.ok, "lost": w.lost, "stale": w.stale, "failed": w.failed}
                for name, w in stats.per_worker.items()
            },
        },
        "dispatcher": {
            "workers_joined": d1.workers_joined - d0.workers_joined,
            "workers_lost": d1.workers_lost - d0.workers_lost,
            "stale_replies": d1.stale_replies - d0.stale_replies,
            "malformed": d1.malformed - d0.malformed,
        },
        "wire": {
            **wire,
            "tasks_per_batch": round(n / max(1, wire["task_batches_sent"]), 2),
            "replies_per_task": round(wire["replies_received"] / n, 3),
        },
        "workers": worker_stats,
    }
    if kill_at is not None and killed_at_s is not None:
        after = [t for t in times if t >= killed_at_s]
        gaps = [b - a for a, b in zip([killed_at_s, *after], after)]
        spare_name = names[spare] if spare is not None else None
        first_spare = next(
            (t for o, t in zip(got, times) if o.worker == spare_name and t >= killed_at_s), None
        )
        victim = names[workers[0]]
        claimed_lost = stats.per_worker[victim].lost if victim in stats.per_worker else 0
        row["kill"] = {
            "lease_s": lease,
            "kill_from_outcome": kill_after,
            "killed_after_outcomes": killed_after,
            "victim_claimed_at_kill": victim_held,
            # attempts the killed worker had claimed: requeued when its connection dropped
            "redelivered_claimed": claimed_lost,
            # pushed to it but never claimed (no worker known): requeued at the claim timeout (or lease)
            "redelivered_unclaimed": stats.redelivered - claimed_lost,
            "killed_at_s": round(killed_at_s - t0, 4),
            "longest_pause_after_kill_ms": round(max(gaps, default=0.0) * 1e3, 2),
            "spare_first_outcome_after_kill_ms": None
            if first_spare is None
            else round((first_spare - killed_at_s) * 1e3, 1),
            "rate_before_kill": round(killed_after / (killed_at_s - t0), 1),
            "rate_after_kill": round((n - killed_after) / (t1 - killed_at_s), 1)
            if n > killed_after
            else None,
        }
    return row
