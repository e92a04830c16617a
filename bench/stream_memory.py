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

import os
import shutil
import sys
import tempfile
import time
from typing import Any

import trio

from . import _cli
from ._children import Conn, children
from ._common import format_table

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def worker(conn: Conn, address: str, name: str) -> None:
    """A worker process's job: a ``consensus.Worker`` until the process is ended."""
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
    # max_capacity: the workers' prefetch=2047 counts in full (the default cap is 256)
    async with consensus.Dispatcher(address, max_batch=256, max_capacity=2048) as dispatcher:
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
                    rows.append({"outcomes": done, "held": stats.submitted - stats.yielded,
                                 "rss_mib": rss_mib(), "seconds": time.perf_counter() - started})  # fmt: skip
            if outcomes.statistics().ok != tasks:
                raise SystemExit(f"expected {tasks} ok outcomes, got {outcomes.statistics()}")
    return rows


def render(report: dict[str, Any]) -> str:
    rows = report["rows"]
    base = rows[0]["rss_mib"]
    later = [r["rss_mib"] for r in rows[len(rows) // 2 :]]
    table = format_table(["outcomes", "tasks held", "RSS MiB", "vs start MiB", "seconds"],
                         [[f"{r['outcomes']:,}", f"{r['held']:,}", f"{r['rss_mib']:.1f}", f"{r['rss_mib'] - base:+.1f}",
                           f"{r['seconds']:.1f}"] for r in rows])  # fmt: skip
    return (f"{table}\ngrowth over the second half of the stream: {max(later) - min(later):+.1f} MiB "
            f"(peak {max(r['rss_mib'] for r in rows):.1f} MiB)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("stream_memory", __doc__.splitlines()[0], "200,000 tasks, a row every 40,000")
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--every", type=int, default=100_000)
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.every = 200_000, 40_000

    def measure(machine: dict[str, Any]) -> dict[str, Any]:
        folder = tempfile.mkdtemp(prefix="nngc-mem-")
        address = f"ipc://{folder}/work"
        try:
            with children(2, "stream-worker") as workers:
                for i, child in enumerate(workers):
                    child.start(worker, address, f"w{i}")
                rows = trio.run(stream, address, args.tasks, args.every)
                for child in workers:
                    child.kill()  # its worker runs until the end: no goodbye needed
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {"params": {"tasks": args.tasks, "every": args.every}, "tasks": args.tasks, "rows": rows}

    title = f"stream_memory: {args.tasks:,} tasks through Dispatcher + 2 Worker processes over ipc"
    return _cli.run(args, "stream_memory", title, measure, render)


if __name__ == "__main__":
    sys.exit(main())
