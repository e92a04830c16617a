"""The host's cost of a deliberation, against the same thing done by hand (issue 14).

The issue's goal: *host overhead of a 3-round deliberation among 8 members answering
at once, against 3 sequential polls plus a vote done by hand through the same room: not
more than 1.1x.*

Layout of one run:

* The room host (``consensus.host``) lives in this process; the 8 members
  (``consensus.join``, async handlers answering at once) live in one spawned process
  (``--per-process``). Each member answers ``on_deliberate`` with a ``Position``
  (its stance and a reason), ``on_poll`` with its stance, ``on_vote`` with its stance
  when it is an option.
* **deliberate**: ``await room.deliberate(question, rounds=3, timeout=5)`` (no ``until``:
  all 3 rounds run; the decision is broadcast at the end).
* **by hand**: what a user writes without it: ``room.poll`` three times, rounds 2 and 3
  carrying the previous round's answers in the question, then ``room.vote`` on the
  stances of round 3 under ``Majority`` (the decision is broadcast too).
* The two alternate (which goes first alternates too), ``--warmup`` untimed pairs, then
  ``--pairs`` timed ones, in the same room with the same members, so drift on a busy
  machine hits both alike. Each records the host's CPU time (``time.process_time``
  around the call: this process only, NNG's threads included), the CPU time of the
  host's trio thread alone (``time.thread_time``: the toolkit's own Python work, which
  moves less with the machine's load) and the wall time.

The goal is on the host's CPU time (its *overhead*: the members' work is the same in
both); the wall time is reported beside it.

    python -m bench.deliberate            # 8 members, 150 timed pairs, ipc and tcp
    python -m bench.deliberate --quick    # 60 timed pairs, ipc
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from typing import Any

import trio

import consensus

from . import _cli
from ._children import Child, Conn, aserve
from ._common import format_table, median, summarize
from ._poll_members import JOIN_TIMEOUT_S, SETTLE_S, room_address, split_members
from ._schema import TOOLKIT, Metric, Skip

GOAL_RATIO = 1.1
ROUNDS = 3
TIMEOUT_S = 5.0
STANCES = ("NATS", "Redis", "Kafka")
QUESTION = "What is the most effective tool for agents on a local network?"
DELIBERATE = "room.deliberate, 3 rounds"
BY_HAND = "3 room.poll + room.vote by hand"


# ===================================================================== member processes (child side)
async def _members(conn: Conn, address: str, names: list[str]) -> dict[str, Any]:
    joined: list[consensus.Member] = []
    stop, all_joined = trio.Event(), trio.Event()

    async def one(index: int, name: str) -> None:
        stance = STANCES[index % len(STANCES)]

        async def on_deliberate(question: Any, number: int, others: Any, options: Any) -> Any:
            return consensus.Position(stance, reason=f"{stance} fits agents", confidence=0.8)

        async def on_poll(question: Any) -> Any:
            return stance

        async def on_vote(motion: Any, options: list[Any]) -> Any:
            return stance if stance in options else options[0]

        async with consensus.join(address, name=name, on_poll=on_poll, on_vote=on_vote, on_deliberate=on_deliberate,
                                  join_timeout=JOIN_TIMEOUT_S) as member:  # fmt: skip
            joined.append(member)
            if len(joined) == len(names):
                all_joined.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, member)  # the broadcast decisions: nobody else reads them
                await stop.wait()
                nursery.cancel_scope.cancel()

    async def drain(member: consensus.Member) -> None:
        async for _ in member.decisions():
            pass

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, int(name[1:]), name)
        await all_joined.wait()
        conn.send(("ready", len(joined)))
        await aserve(conn)
        stats = [m.statistics() for m in joined]
        stop.set()
    return {"positions_sent": sum(s.positions_sent for s in stats), "polls_answered": sum(s.polls_answered for s in stats),
            "votes_cast": sum(s.votes_cast for s in stats), "handler_errors": sum(s.handler_errors for s in stats)}  # fmt: skip


def members(conn: Conn, address: str, names: list[str]) -> dict[str, Any]:
    """Join the room as ``names`` (concurrently), report ready, answer until told to stop."""
    return trio.run(_members, conn, address, names)


# ===================================================================== the two ways (here)
async def deliberate(room: Any) -> int:
    """One deliberation; returns how many members were missing or failed over its rounds."""
    result = await room.deliberate(QUESTION, rounds=ROUNDS, timeout=TIMEOUT_S)
    assert len(result.rounds) == ROUNDS and result.decision is not None
    return sum(len(r.missing) + len(r.errors) for r in result.rounds)


async def by_hand(room: Any) -> int:
    """The same by hand: 3 polls (the previous answers in the question), then a vote."""
    bad = 0
    answers: dict[str, Any] = {}
    for number in range(1, ROUNDS + 1):
        question = {"question": QUESTION, "round": number, "previous": answers}
        poll = await room.poll(question, timeout=TIMEOUT_S)
        answers = dict(poll.answers)
        bad += len(poll.missing) + len(poll.errors)
    options = sorted({str(answer) for answer in answers.values()})
    decision = await room.vote(QUESTION, options=options, rule=consensus.Majority(), timeout=TIMEOUT_S)
    return bad + len(decision.missing)


async def phase(worker_pool: list[Child], n: int, pairs: int, warmup: int, per_process: int, tmpdir: str,
                transport: str) -> dict[str, Any]:  # fmt: skip
    """One room of ``n`` members: ``warmup`` + ``pairs`` alternating runs of both ways."""
    address = room_address(transport, tmpdir, f"delib-{n}")
    sizes = split_members(n, per_process)
    used = worker_pool[: len(sizes)]
    names = iter(f"m{i:03d}" for i in range(n))
    ways = {DELIBERATE: deliberate, BY_HAND: by_hand}
    cpu: dict[str, list[float]] = {way: [] for way in ways}
    thread: dict[str, list[float]] = {way: [] for way in ways}
    wall: dict[str, list[float]] = {way: [] for way in ways}
    bad = dict.fromkeys(ways, 0)
    started: list[Child] = []
    async with consensus.host(address) as room:
        try:
            for worker, size in zip(used, sizes, strict=True):
                worker.start(members, address, [next(names) for _ in range(size)])
                started.append(worker)
            with trio.fail_after(JOIN_TIMEOUT_S * 2):
                await room.wait_for_members(n)
            for worker in used:
                await worker.areceive("ready")
            await trio.sleep(SETTLE_S)
            for i in range(warmup + pairs):
                order = list(ways) if i % 2 == 0 else list(reversed(ways))
                for way in order:
                    c0, h0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
                    missing = await ways[way](room)
                    t1, h1, c1 = time.perf_counter(), time.thread_time(), time.process_time()
                    if i >= warmup:
                        cpu[way].append((c1 - c0) * 1e3)
                        thread[way].append((h1 - h0) * 1e3)
                        wall[way].append((t1 - t0) * 1e3)
                        bad[way] += missing
        finally:
            for worker in started:
                worker.send("stop")
            member_stats = [await worker.areceive("done") for worker in started]
    rows = {way: {"host_cpu": summarize(cpu[way], unit="ms"), "host_thread_cpu": summarize(thread[way], unit="ms"),
                  "wall": summarize(wall[way], unit="ms"), "missing_or_failed": bad[way]} for way in ways}  # fmt: skip
    # Each pair ran back to back: the median of the pairs' ratios cancels the drift of a busy
    # machine better than the ratio of the two medians (both are reported).
    cpu_ratio = median([d / h for d, h in zip(cpu[DELIBERATE], cpu[BY_HAND], strict=True) if h > 0])
    thread_ratio = median([d / h for d, h in zip(thread[DELIBERATE], thread[BY_HAND], strict=True) if h > 0])
    wall_ratio = median([d / h for d, h in zip(wall[DELIBERATE], wall[BY_HAND], strict=True) if h > 0])
    medians_ratio = median(cpu[DELIBERATE]) / median(cpu[BY_HAND])
    return {"transport": transport, "n": n, "pairs": pairs, "warmup": warmup, "ways": rows,
            "host_cpu_ratio": round(cpu_ratio, 3), "host_thread_cpu_ratio": round(thread_ratio, 3),
            "wall_ratio": round(wall_ratio, 3),
            "host_cpu_ratio_of_medians": round(medians_ratio, 3),
            "members": {k: sum(s[k] for s in member_stats) for k in member_stats[0]}}  # fmt: skip


def measure(args: argparse.Namespace, tmpdir: str) -> list[dict[str, Any]]:
    procs = len(split_members(args.n, args.per_process))
    pool = [Child(f"deliberate-worker-{i}", i) for i in range(procs)]
    try:
        out = []
        for transport in args.transports:
            print(f"  N={args.n} {transport} ...", end="", flush=True, file=sys.stderr)
            t = time.perf_counter()
            out.append(
                trio.run(phase, pool, args.n, args.pairs, args.warmup, args.per_process, tmpdir, transport)
            )
            print(f" host CPU ratio {out[-1]['host_cpu_ratio']:.2f} ({time.perf_counter() - t:.1f} s)",
                  file=sys.stderr)  # fmt: skip
        return out
    finally:
        for worker in pool:
            worker.stop()


def compute_goals(results: list[dict[str, Any]]) -> dict[str, Any]:
    goals: dict[str, Any] = {
        "basis": f"host CPU per run, {DELIBERATE} / {BY_HAND}, each pair back to back in the same room "
        "with the same members: the median of the pairs' ratios"
    }
    for r in results:
        goals[f"host_overhead_{r['transport']}"] = {"value": r["host_cpu_ratio"], "op": "<=", "target": GOAL_RATIO,
                                                    "met": r["host_cpu_ratio"] <= GOAL_RATIO,
                                                    "wall_ratio": r["wall_ratio"],
                                                    "ratio_of_medians": r["host_cpu_ratio_of_medians"]}  # fmt: skip
    return goals


def render(report: dict[str, Any]) -> str:
    rows = []
    for r in report["results"]:
        for way, row in r["ways"].items():
            rows.append((way, r["transport"], r["n"], r["pairs"], f"{row['host_cpu']['median_ms']:.2f}",
                         f"{row['host_cpu']['p99_ms']:.2f}", f"{row['host_thread_cpu']['median_ms']:.2f}",
                         f"{row['wall']['median_ms']:.2f}", f"{row['wall']['p99_ms']:.2f}",
                         row["missing_or_failed"]))  # fmt: skip
    lines = [format_table(("what", "transport", "N", "runs", "host CPU median ms", "host CPU p99 ms",
                           "trio thread CPU median ms", "wall median ms", "wall p99 ms", "missing"), rows),
             ""]  # fmt: skip
    for r in report["results"]:
        met = r["host_cpu_ratio"] <= GOAL_RATIO
        lines.append(f"{r['transport']}: host CPU deliberate / by hand = {r['host_cpu_ratio']:.2f}, median of the "
                     f"pairs' ratios (goal <= {GOAL_RATIO:g}: {'met' if met else 'NOT met'}); ratio of the medians "
                     f"{r['host_cpu_ratio_of_medians']:.2f}; the host's trio thread alone "
                     f"{r['host_thread_cpu_ratio']:.2f}; wall {r['wall_ratio']:.2f}")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser("deliberate", "Host overhead of a 3-round deliberation vs 3 polls and a vote by hand.",
                    "60 timed pairs, ipc only")  # fmt: skip
    p.add_argument("--n", type=int, default=8, help="members (default 8)")
    p.add_argument("--pairs", type=int, default=None, help="timed runs of each way (default 150, --quick 60)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs of each way first (default 5)")
    p.add_argument("--transport", dest="transports", action="append", choices=("ipc", "tcp"),
                   help="room transport (repeatable; default ipc and tcp, --quick ipc)")  # fmt: skip
    p.add_argument("--per-process", type=int, default=8, help="members per member process (default 8)")
    args = p.parse_args(argv)
    args.pairs = args.pairs or (60 if args.quick else 150)
    args.transports = args.transports or (["ipc"] if args.quick else ["ipc", "tcp"])
    if args.n < 1 or args.pairs < 1 or args.warmup < 0 or args.per_process < 1:
        p.error("--n, --pairs and --per-process must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        tmpdir = tempfile.mkdtemp(prefix="nngc-bench-delib-")
        try:
            results = measure(args, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        params = {"n": args.n, "pairs": args.pairs, "warmup": args.warmup, "rounds": ROUNDS, "timeout_s": TIMEOUT_S,
                  "members_per_process": args.per_process, "transports": args.transports,
                  "deliberate": f"room.deliberate(question, rounds={ROUNDS}), no until",
                  "by_hand": "3 x room.poll (rounds 2, 3 carry the previous answers) + room.vote(Majority)",
                  "clock": "time.process_time (host process), time.thread_time (its trio thread) and "
                           "time.perf_counter around each run"}  # fmt: skip
        return {"params": params, "results": results, "goals": compute_goals(results)}

    title = f"deliberate: host overhead of a {ROUNDS}-round deliberation vs polls and a vote by hand"
    return _cli.run(args, "deliberate", title, run, render)


# ===================================================================== the suite's step
def suite_step(quick: bool) -> list[Metric | Skip]:
    """The suite's ``deliberate`` step: both ways over ipc and tcp, as Metric rows."""
    args = parse_args(["--pairs", "60" if quick else "150", "--transport", "ipc", "--transport", "tcp"])
    tmpdir = tempfile.mkdtemp(prefix="nngc-bench-delib-")
    try:
        results = measure(args, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    out: list[Metric | Skip] = []
    for r in results:
        for way, row in r["ways"].items():
            for name, stats in (("host_cpu_median_ms", row["host_cpu"]), ("wall_median_ms", row["wall"])):
                out.append(
                    Metric(
                        "deliberate", TOOLKIT, way, r["transport"], 0, r["n"], name, stats["median_ms"], "ms"
                    )
                )
        out.append(Metric("deliberate", TOOLKIT, DELIBERATE, r["transport"], 0, r["n"], "host_cpu_paired_ratio",
                          r["host_cpu_ratio"], "x"))  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
