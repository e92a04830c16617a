"""Work sharing throughput: 64-byte tasks, trivial work, 2 worker processes over ipc, acknowledged.

The issue's goal: *64-byte tasks with trivial work, 2 worker processes over ipc,
acknowledged: tasks per second end to end. At least 20,000 tasks/s on this machine (raw
pynng push/pull under trio moves ~8,000-15,000 bare messages/s here).*

One run measures, side by side:

* ``toolkit``: ``consensus.Dispatcher`` in this process, two ``consensus.Worker``
  processes dialing it over ipc, handler ``async def echo(task): return task``; N unique
  64-byte ``bytes`` tasks (pre-built, handed over as a list) consumed with
  ``async for outcome in outcomes``. Tasks/s from entering ``distribute()`` (the first
  submit) to the N-th outcome. Every outcome must be ok and carry its own task as
  result, and every task id and task must come out exactly once, or the run aborts.
  Knobs: ``Worker(concurrency=1, prefetch=4095)``, ``Dispatcher(max_batch=256)``
  (``--concurrency``, ``--prefetch``, ``--max-batch``; ``--explore`` shows why).
* ``defaults`` (not with ``--quick``): the same with the library's default knobs
  (``concurrency=1``, ``prefetch`` = concurrency, ``max_batch=64``), on N/20 tasks.
* The references, bare 64-byte frames without acknowledgement: a raw ``pynng.Push0``
  listening in this process, a raw ``pynng.Pull0`` dialing from each of two processes;
  messages/s from the first send to the last receive in any puller
  (``time.monotonic_ns``: one clock for every process on Linux), over ``--raw-n`` frames
  (default N/2):

  - ``raw_trio``: ``await sock.asend()`` here, ``await sock.arecv()`` loops under trio;
  - ``raw_trio_pull``: blocking ``send`` here, ``arecv`` loops under trio in the pullers
    (the sender is no longer the bottleneck: what trio pullers can take);
  - ``raw_sync``: blocking ``send`` and ``recv`` (a thread in each puller).

* ``kill``: the toolkit again, but once 40% of the outcomes are in, at the first outcome
  at which it holds claimed tasks, one of the two worker processes gets SIGKILL, and an
  idle third process (started beforehand, with everything imported) starts a worker at
  that moment. Tasks/s, tasks redelivered, the longest pause between outcomes, and the
  same exactly-once checks. Attempts pushed to the killed worker that it never claimed
  come back only after ``claim_timeout`` (or, in library versions without it, the
  lease), so this phase runs with ``lease=2`` (``--kill-lease``).

Every phase gets a fresh ipc path and warms up first (``--warmup`` untimed tasks or
frames). The child processes (multiprocessing spawn: NNG is not fork-safe) are started
once and reused; the killed one is replaced. ``--repeats`` rounds run the phases in
turn, and the table shows the median round. Where the time goes: CPU time of this
process and of the children over each timed window, the rest of the machine's CPU use
in that window (this machine is shared: a busy neighbour deflates every rate), and for
the toolkit the messages on the dispatcher's sockets (tasks per batch, replies per task).
A worker the dispatcher does not count within 5 s of connecting is restarted (a
lost hello; logged and counted in the JSON).

``--explore`` also sweeps the knobs that matter for throughput,
``Worker(concurrency=, prefetch=)`` and ``Dispatcher(max_batch=)``, over
``--explore-repeats`` rounds of ``--explore-n`` tasks each.

    python -m bench.distribute                 # N=200,000, 3 rounds
    python -m bench.distribute --quick         # N=50,000, 1 round, no defaults row
    python -m bench.distribute --phase toolkit --repeats 1 --n 30000 --explore
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynng
import trio

import consensus

from ._common import (
    RESULTS_DIR,
    _cpu_times,
    cpu_busy_fraction,
    describe_machine,
    format_table,
    machine_info,
    median,
    write_json,
)
from ._distribute_workers import (
    PAYLOAD_SIZE,
    RAW_PAYLOAD,
    SETUP_TIMEOUT_S,
    Child,
    make_task,
    task_index,
)

GOAL_TASKS_PER_S = 20_000.0
WORKERS = 2
PHASES = ("toolkit", "defaults", "raw_trio", "raw_trio_pull", "raw_sync", "kill")
RAW_STYLES = {  # phase: (how this process sends, how the pullers receive)
    "raw_trio": ("trio", "trio"),
    "raw_trio_pull": ("sync", "trio"),
    "raw_sync": ("sync", "sync"),
}
KILL_AT = 0.4  # SIGKILL one worker once this share of the outcomes is in (and it holds claimed tasks)
KILL_LEASE_S = 2.0  # attempts pushed to the killed worker but never claimed come back only at their lease
JOIN_GRACE_S = 5.0  # workers connected: the dispatcher must count them within this
JOIN_RETRIES = 3
DRAIN_TIMEOUT_S = 30.0  # raw phases: no progress for this long means frames were lost
COUNT_POLL_S = 0.02
BUSY_WARNING = 0.15


@dataclass(frozen=True)
class Knobs:
    concurrency: int
    prefetch: int | None  # None: the library's default (= concurrency)
    max_batch: int

    @property
    def capacity(self) -> int:
        return self.concurrency + (self.concurrency if self.prefetch is None else self.prefetch)

    def label(self) -> str:
        prefetch = "default" if self.prefetch is None else str(self.prefetch)
        return f"concurrency={self.concurrency} prefetch={prefetch} max_batch={self.max_batch}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "prefetch": self.prefetch,
            "max_batch": self.max_batch,
            "capacity_per_worker": self.capacity,
        }


LIBRARY_DEFAULTS = Knobs(concurrency=1, prefetch=None, max_batch=64)
# The benchmark's knobs: a worker's capacity 16 x max_batch keeps batches full (see --explore).
DEFAULT_KNOBS = Knobs(concurrency=1, prefetch=4095, max_batch=256)
# The sweep of --explore. The ratio of a worker's capacity (concurrency + prefetch) to
# max_batch decides whether the pump stays batch-sized or fragments (see the report).
EXPLORE = (
    LIBRARY_DEFAULTS,
    Knobs(1, 63, 64),
    Knobs(1, 255, 64),
    Knobs(1, 1023, 64),
    Knobs(1, 4095, 64),
    Knobs(1, 4095, 16),
    Knobs(1, 1023, 256),
    Knobs(1, 2047, 256),
    Knobs(1, 4095, 256),
    Knobs(1, 8191, 256),
    Knobs(1, 8191, 1024),
    Knobs(16, 4080, 256),
    Knobs(256, 3840, 256),
)


class _Sequence:
    """Unique names for ipc paths and workers across phases."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


_seq = _Sequence()


class _SystemCpu:
    """All CPU use on the machine over a window (Linux ``/proc/stat``), in % of one core."""

    def __init__(self) -> None:
        self.before = _cpu_times()

    def busy_pct(self) -> float | None:
        after = _cpu_times()
        if self.before is None or after is None or after[0] == self.before[0]:
            return None
        total, idle = after[0] - self.before[0], after[1] - self.before[1]
        return 100.0 * (total - idle) / total * (os.cpu_count() or 1)


def _other_pct(system: float | None, *ours: float | None) -> float | None:
    """CPU use by processes other than this benchmark's over the window (100 = one core)."""
    if system is None or any(v is None for v in ours):
        return None
    return round(max(0.0, system - sum(v for v in ours if v is not None)), 1)


# ===================================================================== children
class Pool:
    """The spawned children: ``WORKERS`` for workers or pullers, plus a spare for the kill phase."""

    def __init__(self, size: int) -> None:
        self.children: list[Child] = []
        self.size = size
        self.spawned = 0

    def start(self) -> None:
        for _ in range(self.size):
            self.children.append(self._spawn())
        for child in self.children:
            child.wait_started()

    def _spawn(self) -> Child:
        self.spawned += 1
        return Child(self.spawned - 1)

    def replace(self, child: Child) -> None:
        """Reap ``child`` (killed) and put a fresh process in its place."""
        i = self.children.index(child)
        child.stop()
        self.children[i] = fresh = self._spawn()
        fresh.wait_started()

    def stop(self) -> None:
        for child in self.children:
            child.stop()


async def _marks(children: list[Child]) -> list[float]:
    for child in children:
        child.send("mark")
    return [await child.areceive("mark", SETUP_TIMEOUT_S) for child in children]


def _check_outcomes(outcomes: list[Any], first: int, n: int, what: str) -> dict[str, int]:
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


# ===================================================================== toolkit phases
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


async def _toolkit_phase(
    pool: Pool, knobs: Knobs, n: int, warmup: int, tmpdir: str, kind: str, lease: float, kill_at: float | None
) -> dict[str, Any]:
    """A dispatcher here, ``WORKERS`` worker children; ``kill_at``: SIGKILL one, start the spare."""
    seq = _seq.next()
    address = f"ipc://{tmpdir}/d{seq}"
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
                _check_outcomes(warm, 0, warmup, f"{kind} warm-up")

            cpu_children0 = await _marks(workers)
            d0 = dispatcher.statistics()
            wire0 = _wire(dispatcher)
            got: list[Any] = []
            append = got.append
            kill_after = -1 if kill_at is None else max(1, int(n * kill_at))
            clock = time.perf_counter
            system = _SystemCpu()
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
    checks = _check_outcomes(got, first, n, kind)
    elapsed = t1 - t0
    parent_pct = round(100 * cpu_parent / elapsed, 1)
    children_pct = None if cpu_workers is None else round(100 * cpu_workers / elapsed, 1)
    row: dict[str, Any] = {
        "kind": kind,
        "knobs": knobs.as_dict(),
        "n": n,
        "warmup": warmup,
        "elapsed_s": round(elapsed, 4),
        "rate": round(n / elapsed, 1),
        "parent_cpu_pct": parent_pct,
        "children_cpu_pct": children_pct,
        "other_cpu_pct": _other_pct(system_pct, parent_pct, children_pct),
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


# ===================================================================== raw references
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


def _raw_phase(pool: Pool, n: int, warmup: int, tmpdir: str, kind: str) -> dict[str, Any]:
    """Push0 here (trio: ``await asend``; sync: ``send``) -> Pull0 in ``WORKERS`` children (likewise)."""
    sender, puller = RAW_STYLES[kind]
    address = f"ipc://{tmpdir}/raw{_seq.next()}"
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
        system = _SystemCpu()
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
        "other_cpu_pct": _other_pct(system_pct, parent_pct, children_pct),
        "per_puller": [s["count"] for s in stats],  # warm-up included
    }


# ===================================================================== driver
def _run_phase(pool: Pool, phase: str, args: argparse.Namespace, tmpdir: str, knobs: Knobs | None = None,
               n: int | None = None) -> dict[str, Any]:  # fmt: skip
    if phase == "toolkit":
        assert knobs is not None
        warmup = args.warmup if n is None else min(args.warmup, n // 10)
        return trio.run(_toolkit_phase, pool, knobs, n or args.n, warmup, tmpdir, phase, args.lease, None)
    if phase == "defaults":
        return trio.run(
            _toolkit_phase,
            pool,
            LIBRARY_DEFAULTS,
            max(1000, args.n // 20),
            args.warmup // 10,
            tmpdir,
            phase,
            args.lease,
            None,
        )
    if phase == "kill":
        assert knobs is not None
        try:
            return trio.run(
                _toolkit_phase, pool, knobs, args.n, args.warmup, tmpdir, phase, args.kill_lease, args.kill_at
            )
        finally:
            for child in list(pool.children):
                if child.killed:
                    pool.replace(child)
    if phase in RAW_STYLES:
        return _raw_phase(pool, args.raw_n, args.warmup, tmpdir, phase)
    raise ValueError(f"unknown phase {phase!r}")


def _progress(label: str) -> float:
    print(f"  {label:<58} ...", end="", flush=True, file=sys.stderr)
    return time.perf_counter()


def _done(row: dict[str, Any], started: float) -> None:
    unit = "msgs/s" if row["kind"].startswith("raw") else "tasks/s"
    print(
        f" {row['rate']:>9,.0f} {unit} ({time.perf_counter() - started:.1f} s; "
        f"CPU % parent {_f(row['parent_cpu_pct'])}, children {_f(row['children_cpu_pct'])}, "
        f"other {_f(row['other_cpu_pct'])})",
        file=sys.stderr,
    )


def measure(
    args: argparse.Namespace, knobs: Knobs, tmpdir: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pool = Pool(WORKERS + (1 if "kill" in args.phases else 0))
    rounds: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    try:
        pool.start()
        for r in range(args.repeats):
            for phase in args.phases:
                started = _progress(f"round {r + 1}/{args.repeats} {phase}")
                row = _run_phase(pool, phase, args, tmpdir, knobs)
                row["round"] = r + 1
                rounds.append(row)
                _done(row, started)
        if args.explore:
            for r in range(args.explore_repeats):  # rounds over the sweep: drift hits every point
                for candidate in EXPLORE:
                    started = _progress(f"explore {r + 1}/{args.explore_repeats} {candidate.label()}")
                    row = _run_phase(pool, "toolkit", args, tmpdir, candidate, n=args.explore_n)
                    row["kind"] = "explore"
                    row["round"] = r + 1
                    sweep.append(row)
                    _done(row, started)
    finally:
        pool.stop()
    return rounds, sweep


def summarize_rounds(rounds: list[dict[str, Any]], phases: list[str]) -> list[dict[str, Any]]:
    """Per phase: the round with the median rate (the lower middle one for an even count)."""
    summary = []
    for phase in phases:
        rows = sorted((r for r in rounds if r["kind"] == phase), key=lambda r: r["rate"])
        if not rows:
            continue
        mid = rows[(len(rows) - 1) // 2]
        summary.append(
            {
                **mid,
                "rates": [r["rate"] for r in rounds if r["kind"] == phase],
                "rate_median": round(median([r["rate"] for r in rows]), 1),
            }
        )
    return summary


def summarize_sweep(sweep: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per knob setting: median, min and max rate over the sweep's rounds, median tasks per batch."""
    out = []
    for knobs in EXPLORE:
        rows = [r for r in sweep if r["knobs"] == knobs.as_dict()]
        if not rows:
            continue
        rates = [r["rate"] for r in rows]
        out.append(
            {
                "knobs": knobs.as_dict(),
                "n": rows[0]["n"],
                "rates": rates,
                "rate_median": round(median(rates), 1),
                "tasks_per_batch_median": round(median([r["wire"]["tasks_per_batch"] for r in rows]), 1),
                "replies_per_task_median": round(median([r["wire"]["replies_per_task"] for r in rows]), 3),
                "parent_cpu_pct_median": round(median([r["parent_cpu_pct"] for r in rows]), 1),
                "children_cpu_pct_median": round(median([r["children_cpu_pct"] for r in rows]), 1),
                "other_cpu_pct_max": max((r["other_cpu_pct"] or 0.0) for r in rows),
            }
        )
    return out


def compute_goals(summary: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind = {row["kind"]: row for row in summary}
    goals: dict[str, Any] = {"basis": "median over rounds of tasks/s (toolkit) and msgs/s (raw)"}
    toolkit = by_kind.get("toolkit")
    if toolkit:
        rate = toolkit["rate_median"]
        goals["toolkit_tasks_per_s"] = {
            "value": rate,
            "op": ">=",
            "target": GOAL_TASKS_PER_S,
            "ratio": round(rate / GOAL_TASKS_PER_S, 3),
            "met": rate >= GOAL_TASKS_PER_S,
        }
        for ref in RAW_STYLES:
            if ref in by_kind:
                goals[f"toolkit_over_{ref}"] = round(rate / by_kind[ref]["rate_median"], 3)
    kill = by_kind.get("kill")
    if kill:
        goals["kill_exactly_once"] = {"met": True, "redelivered": kill["distribution"]["redelivered"]}
    redelivered = {
        row["kind"]: row["distribution"]["redelivered"] for row in summary if "distribution" in row
    }
    clean = {k: v for k, v in redelivered.items() if k != "kill"}
    goals["no_redelivery_without_failures"] = {"redelivered": clean, "met": not any(clean.values())}
    return goals


DESCRIPTIONS = {
    "toolkit": "toolkit: Dispatcher + 2 Worker procs, acked",
    "defaults": "toolkit, library default knobs",
    "raw_trio": "raw Push0 asend -> 2 x Pull0 arecv (trio)",
    "raw_trio_pull": "raw Push0 send (blocking) -> 2 x Pull0 arecv (trio)",
    "raw_sync": "raw Push0 send -> 2 x Pull0 recv (blocking)",
    "kill": "toolkit, 1 of 2 workers SIGKILLed, spare joins",
}


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(summary: list[dict[str, Any]], sweep: list[dict[str, Any]], goals: dict[str, Any],
           knobs: Knobs) -> str:  # fmt: skip
    rows = []
    for r in summary:
        dist = r.get("distribution")
        rows.append(
            (
                DESCRIPTIONS[r["kind"]],
                f"{r['n']:,}",
                _f(r["rate_median"]),
                " ".join(_f(v) for v in r["rates"]) if len(r["rates"]) > 1 else "",
                "tasks/s" if dist else "msgs/s",
                _f(r["parent_cpu_pct"]),
                _f(r["children_cpu_pct"]),
                _f(r["other_cpu_pct"]),
                "-" if "wire" not in r else _f(r["wire"]["tasks_per_batch"], 1),
                "-" if "wire" not in r else _f(r["wire"]["replies_per_task"], 2),
                "-" if not dist else dist["redelivered"],
                "-" if not dist else dist["stale"],
                "-" if "kill" not in r else _f(r["kill"]["longest_pause_after_kill_ms"], 1),
            )
        )
    table = format_table(
        (
            "what",
            "N",
            "rate",
            "rounds",
            "unit",
            "parent CPU %",
            "children CPU %",
            "other CPU %",
            "tasks/batch",
            "replies/task",
            "redelivered",
            "stale",
            "pause ms",
        ),
        rows,
        left=1,
    )
    lines = [
        table,
        "",
        f"toolkit knobs: Worker(concurrency={knobs.concurrency}, prefetch={knobs.prefetch}), Dispatcher("
        + f"max_batch={knobs.max_batch}); rate = median of rounds;",
        "CPU % = CPU time / elapsed over the timed window (100 = one core);",
        "children CPU is both workers (or pullers) together; other CPU = the rest of the machine's use in the",
        "same window (other processes); tasks/batch = tasks per 'tasks' message the dispatcher sent;",
        "replies/task = claim and done messages it received per task; pause = longest gap between",
        "outcomes after the kill.",
    ]
    by_kind = {row["kind"]: row for row in summary}
    kill = by_kind.get("kill")
    if kill:
        k = kill["kill"]
        dist = kill["distribution"]
        lines.append(
            f"kill (lease {k['lease_s']:g} s): SIGKILL after {k['killed_after_outcomes']:,} outcomes "
            f"({k['killed_at_s']:.2f} s; it had claimed {k['victim_claimed_at_kill']} tasks); {dist['redelivered']} redelivered ({k['redelivered_claimed']} claimed "
            f"by the killed worker, at once; {k['redelivered_unclaimed']} pushed to it, never claimed: at the claim "
            "timeout or lease), "
            f"{dist['stale']} stale, {dist['late_accepted']} late accepted; "
            f"spare's first outcome {_f(k['spare_first_outcome_after_kill_ms'], 1)} ms after the kill; "
            f"{_f(k['rate_before_kill'])} tasks/s before, {_f(k['rate_after_kill'])} after; "
            "every task exactly once: yes"
        )
    if sweep:
        lines += [
            "",
            f"knob sweep ({len(sweep[0]['rates'])} rounds each; tasks/s = median, then each round):",
        ]
        sweep_rows = [
            (
                r["knobs"]["concurrency"],
                "default" if r["knobs"]["prefetch"] is None else r["knobs"]["prefetch"],
                r["knobs"]["max_batch"],
                r["knobs"]["capacity_per_worker"],
                f"{r['n']:,}",
                _f(r["rate_median"]),
                " ".join(_f(v) for v in r["rates"]),
                _f(r["tasks_per_batch_median"], 1),
                _f(r["replies_per_task_median"], 2),
                _f(r["parent_cpu_pct_median"]),
                _f(r["children_cpu_pct_median"]),
                _f(r["other_cpu_pct_max"]),
            )
            for r in sweep
        ]
        lines.append(
            format_table(
                (
                    "concurrency",
                    "prefetch",
                    "max_batch",
                    "capacity/worker",
                    "N",
                    "tasks/s",
                    "rounds",
                    "tasks/batch",
                    "replies/task",
                    "parent CPU %",
                    "children CPU %",
                    "other CPU % (max)",
                ),
                sweep_rows,
                left=0,
            )
        )
    lines.append("")
    goal = goals.get("toolkit_tasks_per_s")
    if goal:
        text = (
            f"goal >= {GOAL_TASKS_PER_S:,.0f} tasks/s: {goal['value']:,.0f} tasks/s = {goal['ratio']:.2f} x goal "
            f"-> {'met' if goal['met'] else 'NOT met'}"
        )
        for ref in RAW_STYLES:
            if f"toolkit_over_{ref}" in goals:
                text += f"; {goals[f'toolkit_over_{ref}']:.2f} x {ref} msgs/s"
        lines.append(text)
    clean = goals["no_redelivery_without_failures"]
    lines.append(
        f"no redelivery without failures: {'yes' if clean['met'] else 'NO'} ({clean['redelivered']})"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.distribute",
        description="Tasks/s of Dispatcher + 2 Worker processes over ipc (64-byte tasks, trivial work), "
        "against raw pynng push/pull.",
    )
    parser.add_argument(
        "--n", type=int, default=None, help="tasks (frames) per phase (default 200000, --quick 50000)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed tasks first (default 5000, --quick 2000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="rounds of all phases (default 3, --quick 1)"
    )
    parser.add_argument("--quick", action="store_true", help="N=50000, 1 round, no library-defaults row")
    parser.add_argument(
        "--phase",
        dest="phases",
        action="append",
        choices=PHASES,
        help="run only this phase (repeatable; default all, --quick all but 'defaults')",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="Worker(concurrency=) (default 1)")
    parser.add_argument(
        "--prefetch",
        type=int,
        default=DEFAULT_KNOBS.prefetch,
        help=f"Worker(prefetch=) (default {DEFAULT_KNOBS.prefetch}; -1: the library's default)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_KNOBS.max_batch,
        help=f"Dispatcher(max_batch=) (default {DEFAULT_KNOBS.max_batch})",
    )
    parser.add_argument("--raw-n", type=int, default=None, help="frames per raw phase (default N/2)")
    parser.add_argument(
        "--lease", type=float, default=60.0, help="distribute(lease=) of the toolkit phases (default 60)"
    )
    parser.add_argument(
        "--kill-lease",
        type=float,
        default=KILL_LEASE_S,
        help=f"distribute(lease=) of the kill phase (default {KILL_LEASE_S:g}; see the module docstring)",
    )
    parser.add_argument(
        "--kill-at", type=float, default=KILL_AT, help="kill phase: share of outcomes before the SIGKILL"
    )
    parser.add_argument(
        "--explore", action="store_true", help="also sweep concurrency, prefetch and max_batch"
    )
    parser.add_argument("--explore-n", type=int, default=30_000, help="tasks per sweep point (default 30000)")
    parser.add_argument("--explore-repeats", type=int, default=2, help="rounds over the sweep (default 2)")
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "distribute.json",
        help="where to write the JSON report (default bench/results/distribute.json)",
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if the goal is not met")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 50_000 if args.quick else 200_000
    if args.raw_n is None:
        args.raw_n = max(10, args.n // 2)
    if args.warmup is None:
        args.warmup = 2000 if args.quick else 5000
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.phases is None:
        args.phases = [p for p in PHASES if not (args.quick and p == "defaults")]
    else:
        args.phases = [p for p in PHASES if p in args.phases]
    if (
        args.n < 10
        or args.raw_n < 10
        or args.repeats < 1
        or args.warmup < 0
        or args.explore_n < 10
        or args.explore_repeats < 1
    ):
        parser.error(
            "--n, --raw-n and --explore-n must be >= 10, --repeats and --explore-repeats >= 1, --warmup >= 0"
        )
    if args.concurrency < 1 or args.prefetch < -1 or not 1 <= args.max_batch <= 65536:
        parser.error("--concurrency must be >= 1, --prefetch >= 0 (or -1), --max-batch in 1..65536")
    if args.lease <= 0 or args.kill_lease <= 0:
        parser.error("--lease and --kill-lease must be > 0")
    if not 0.0 < args.kill_at < 1.0:
        parser.error("--kill-at must be within (0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    knobs = Knobs(args.concurrency, None if args.prefetch < 0 else args.prefetch, args.max_batch)
    print(
        f"distribute: {PAYLOAD_SIZE}-byte tasks, N={args.n:,} (raw {args.raw_n:,}; +{args.warmup:,} warm-up), "
        f"{args.repeats} round(s) of {', '.join(args.phases)}; {knobs.label()}"
        + (f"; knob sweep at N={args.explore_n:,}" if args.explore else ""),
        file=sys.stderr,
    )
    machine = machine_info()
    machine["cpu_busy_before"] = cpu_busy_fraction()
    started = time.perf_counter()
    tmpdir = tempfile.mkdtemp(prefix="nng-bench-distribute-")
    try:
        rounds, sweep = measure(args, knobs, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    machine["cpu_busy_after"] = cpu_busy_fraction()
    busy = [b for b in (machine["cpu_busy_before"], machine["cpu_busy_after"]) if b is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(
            f"warning: other processes kept the CPUs {max(busy):.0%} busy around this run; "
            "the rates are deflated. Rerun on an idle machine.",
            file=sys.stderr,
        )
    summary = summarize_rounds(rounds, args.phases)
    sweep_summary = summarize_sweep(sweep)
    goals = compute_goals(summary)
    join_retries = sum(r.get("join_retries", 0) for r in rounds + sweep)
    report = {
        "benchmark": "distribute",
        "machine": machine,
        "params": {
            "n": args.n,
            "raw_n": args.raw_n,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "phases": args.phases,
            "payload_bytes": PAYLOAD_SIZE,
            "tasks": "unique 64-byte bytes values, pre-built, given to distribute() as a list",
            "handler": "async def echo(task): return task (runs in the worker's trio loop)",
            "knobs": knobs.as_dict(),
            "library_defaults": LIBRARY_DEFAULTS.as_dict(),
            "distribute": "lease=--lease (kill phase: --kill-lease), max_attempts=3, ordered=False, buffer=None",
            "transport": "ipc",
            "workers": WORKERS,
            "children": "multiprocessing spawn, started once and reused; a fresh ipc path per phase; "
            "the killed child is replaced",
            "clock": "toolkit: time.perf_counter from entering distribute() to the N-th outcome; "
            "raw: time.monotonic_ns from the first send to the last receive in any puller",
            "lease_s": args.lease,
            "kill_at": args.kill_at if "kill" in args.phases else None,
            "kill_lease_s": args.kill_lease if "kill" in args.phases else None,
            "raw_reference": "pynng.Push0 listening here, pynng.Pull0 dialing from each child; "
            "bare 64-byte frames, no ack; default buffers",
            "explore_n": args.explore_n if args.explore else None,
            "explore_repeats": args.explore_repeats if args.explore else None,
            "gc": "enabled",
            "elapsed_s": round(elapsed, 2),
        },
        "summary": summary,
        "rounds": rounds,
        "sweep": sweep_summary,
        "sweep_rounds": sweep,
        "goals": goals,
        "join_retries": join_retries,
    }
    path = write_json(args.json, report)
    print()
    print(
        f"distribute: {PAYLOAD_SIZE}-byte tasks, trivial async handler, {WORKERS} worker processes over ipc"
    )
    print(f"machine: {describe_machine(machine)}")
    print()
    print(render(summary, sweep_summary, goals, knobs))
    if join_retries:
        print(
            f"workers restarted because the dispatcher dropped their hello: {join_retries} "
            f"(of {sum(WORKERS for r in rounds + sweep if 'join_retries' in r)} worker joins)"
        )
    print(f"\nrun took {elapsed:.0f} s; JSON written to {path}")
    if args.check:
        unmet = [name for name, goal in goals.items() if isinstance(goal, dict) and goal.get("met") is False]
        if unmet:
            print(f"goals not met: {', '.join(unmet)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
