"""Memory while streaming a long run of tasks: the dispatcher's resident size must stay flat.

    python -m bench.stream_memory [--tasks 1000000] [--every 100000] [--quick]

A ``consensus.Dispatcher`` in this process hands ``--tasks`` tiny tasks, taken lazily
from a generator, to 2 ``consensus.Worker`` processes over ipc; the consumer drops each
outcome after checking it. The resident set size of this process (``/proc/self/statm``)
is sampled every ``--every`` outcomes; the table shows it beside the outcomes and the
tasks the distribution held at that moment (submitted, not yet yielded). The reference
is the same process's size before the first task: growth proportional to the stream
would show as a steady climb across rows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from ._common import RESULTS_DIR, format_table, machine_info, write_json

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def worker_main(address: str, name: str) -> None:
    import consensus

    async def echo(task: int) -> int:
        return task

    async def run() -> None:
        async with consensus.Worker(address, name=name, handler=echo, prefetch=2047):
            await trio.sleep_forever()

    trio.run(run)


async def stream(address: str, tasks: int, every: int) -> list[dict[str, Any]]:
    import consensus

    rows: list[dict[str, Any]] = []
    async with consensus.Dispatcher(address, max_batch=256) as dispatcher:
        await dispatcher.wait_for_workers(2)
        rows.append({"outcomes": 0, "held": 0, "rss_mib": rss_mib(), "seconds": 0.0})
        started = time.perf_counter()
        done = 0
        async with dispatcher.distribute(iter(range(tasks))) as outcomes:
            async for outcome in outcomes:
                if not outcome.ok or outcome.result != outcome.task_id:
                    raise SystemExit(f"bad outcome {outcome!r}")
                done += 1
                if done % every == 0:
                    stats = outcomes.statistics()
                    rows.append({"outcomes": done, "held": stats.submitted - stats.yielded, "rss_mib": rss_mib(),
                                 "seconds": time.perf_counter() - started})  # fmt: skip
            if outcomes.statistics().ok != tasks:
                raise SystemExit(f"expected {tasks} ok outcomes, got {outcomes.statistics()}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="200,000 tasks, a row every 40,000")
    parser.add_argument("--json", default=str(RESULTS_DIR / "stream_memory.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.every = 200_000, 40_000
    folder = tempfile.mkdtemp(prefix="nngc-mem-")
    address = f"ipc://{folder}/work"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(address, f"w{i}"), daemon=True) for i in range(2)]
    try:
        for proc in procs:
            proc.start()
        rows = trio.run(stream, address, args.tasks, args.every)
    finally:
        for proc in procs:
            proc.kill()
            proc.join()
        shutil.rmtree(folder, ignore_errors=True)
    base = rows[0]["rss_mib"]
    print(f"stream_memory: {args.tasks:,} tasks through Dispatcher + 2 Worker processes over ipc")
    print(format_table(["outcomes", "tasks held", "RSS MiB", "vs start MiB", "seconds"],
                       [[f"{r['outcomes']:,}", f"{r['held']:,}", f"{r['rss_mib']:.1f}",
                         f"{r['rss_mib'] - base:+.1f}", f"{r['seconds']:.1f}"] for r in rows]))  # fmt: skip
    later = [r["rss_mib"] for r in rows[len(rows) // 2 :]]
    print(f"growth over the second half of the stream: {max(later) - min(later):+.1f} MiB "
          f"(peak {max(r['rss_mib'] for r in rows):.1f} MiB)")  # fmt: skip
    path = write_json(args.json, {"benchmark": "stream_memory", "machine": machine_info(), "tasks": args.tasks,
                                  "rows": rows})  # fmt: skip
    print(f"JSON written to {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
