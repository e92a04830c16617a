"""Share a stream of tasks among worker processes, kill some of them on purpose, and lose no task.

    python examples/pipeline.py [--workers 4] [--kill 2] [--fresh 1] [--tasks 200] [--lease 2.0]
                                [--claim-timeout 1.0] [--attempts 3] [--transport ipc|tcp] [--port P] [--seed 11]

The host opens a room and hands out a stream of "summarise this document" tasks with
``room.distribute``; each worker is a separate OS process (started with "spawn": NNG is
not fork-safe) that joins the room with ``consensus.join(..., on_task=...)`` and works
for a simulated, deterministic time. While 30% to 50% of the outcomes come in, the host
kills ``--kill`` workers one by one with SIGKILL; after the first kill it starts
``--fresh`` new ones, which get work as soon as they are ready. What a killed worker had
claimed goes to other workers as soon as its connection drops; an attempt that was on
its way to it, never claimed, comes back after ``--claim-timeout``. One task is poison:
its handler raises on every attempt, so it ends as a failed outcome after ``--attempts``
attempts (the dead letter). The summary checks, from the outcomes actually received,
that every task came out exactly once; the exit status is 1 if not.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import sys
import tempfile
from collections import Counter, deque
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

import consensus
from consensus.free_ports import free_room_address

SECONDS_PER_WORD = 1 / 50_000  # simulated work: 200..2000 words take 4..40 ms


def worker_main(address: str, name: str) -> None:
    """One worker process: summarise documents until the host ends it."""

    async def on_task(task: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(task["words"] * SECONDS_PER_WORD)  # "reading"
        if task.get("corrupt"):
            raise ValueError(f"doc-{task['doc']}: the text is not valid UTF-8 (byte 0xff at offset 17)")
        return {"doc": task["doc"], "summary_words": task["words"] // 10, "by": name}

    async def run() -> None:
        async with consensus.join(address, name=name, on_task=on_task):
            await trio.sleep_forever()

    try:
        trio.run(run)
    except (KeyboardInterrupt, consensus.RoomClosed):  # the host closing the room ends the worker
        pass


def make_tasks(count: int, poison: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:tasks")
    tasks: list[dict[str, Any]] = [{"doc": i, "words": rng.randint(200, 2000)} for i in range(count)]
    tasks[poison]["corrupt"] = True
    return tasks


def number(name: str) -> int:
    """Sort key: worker-2 before worker-10."""
    return int(name.rpartition("-")[2])


class Host:
    """The host's side: runs the stream, kills and starts workers, prints what happens."""

    def __init__(self, args: argparse.Namespace, address: str, procs: dict[str, SpawnProcess]) -> None:
        self.args = args
        self.address = address
        self.procs = procs
        self.ctx = multiprocessing.get_context("spawn")
        self.start = 0.0
        self.killed: dict[str, float] = {}
        self.fresh: dict[str, float] = {}

    def stamp(self) -> str:
        return f"{trio.current_time() - self.start:7.2f} s"

    def start_worker(self, name: str) -> None:
        proc = self.ctx.Process(target=worker_main, args=(self.address, name), daemon=True)
        proc.start()
        self.procs[name] = proc

    async def watch_fresh(self, room: consensus.Room, name: str) -> None:
        while name not in room.workers:
            await trio.sleep(0.005)
        started = self.fresh[name]
        print(
            f"{self.stamp()}  {name} ready for tasks, {trio.current_time() - started:.2f} s after its start"
        )

    async def kill(self, outcomes: consensus.Distribution, name: str, received: int) -> None:
        """SIGKILL one worker, in the middle of some work (so that work must come back)."""

        def holding() -> int:  # attempts it has claimed and not finished
            return outcomes.statistics().per_worker.get(name, consensus.WorkerShare()).in_flight

        with trio.move_on_after(1):
            while not holding():
                await trio.sleep(0.001)
        held = holding()
        self.procs[name].kill()
        self.killed[name] = trio.current_time()
        print(
            f"{self.stamp()}  {received}/{self.args.tasks} outcomes in: SIGKILL to {name} "
            f"(pid {self.procs[name].pid}), which held {held} claimed attempt(s)"
        )

    def start_fresh(self, room: consensus.Room, nursery: trio.Nursery) -> None:
        first = len(self.procs) + 1
        for name in (f"worker-{i}" for i in range(first, first + self.args.fresh)):
            self.fresh[name] = trio.current_time()
            self.start_worker(name)
            print(f"{self.stamp()}  started {name}")
            nursery.start_soon(self.watch_fresh, room, name)

    async def run(self) -> bool:
        args = self.args
        rng = random.Random(args.seed)
        poison = rng.randrange(args.tasks * 7 // 10, args.tasks * 19 // 20)  # well after the kills
        tasks = make_tasks(args.tasks, poison, args.seed)
        async with consensus.host(self.address) as room:
            for i in range(1, args.workers + 1):
                self.start_worker(f"worker-{i}")
            with trio.move_on_after(15) as waiting:
                await room.wait_for_workers(args.workers)
            if waiting.cancelled_caught:
                raise SystemExit(
                    f"only {len(room.workers)} of {args.workers} workers ready for tasks after 15 s (ready: "
                    f"{', '.join(room.workers) or 'none'}; room members: {', '.join(room.members) or 'none'})"
                )
            print(
                f"{len(self.procs)} workers joined over {self.address.split('://')[0]}; distributing "
                f"{args.tasks} tasks (lease {args.lease:g} s, claim timeout {args.claim_timeout:g} s, "
                f"at most {args.attempts} attempts each)"
            )
            print(f"task {poison} (doc-{poison}) is poison: its handler raises on every attempt\n")
            # The victims die one by one while 30% to 50% of the outcomes are in.
            victims = sorted(rng.sample(list(self.procs), args.kill), key=number)
            kills = deque(
                (round(args.tasks * (0.3 + 0.2 * i / max(1, args.kill - 1))), name)
                for i, name in enumerate(victims)
            )
            fresh_at = kills[0][0] if kills else round(args.tasks * 0.3)
            received: list[consensus.Outcome] = []
            first_outcome: dict[str, float] = {}
            self.start = trio.current_time()
            distribution = room.distribute(
                tasks, lease=args.lease, claim_timeout=args.claim_timeout, max_attempts=args.attempts
            )
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery, distribution as outcomes:
                    async for outcome in outcomes:
                        received.append(outcome)
                        worker = outcome.worker or "?"
                        if worker in self.fresh and worker not in first_outcome:
                            first_outcome[worker] = trio.current_time()
                            print(f"{self.stamp()}  {worker}'s first outcome (task {outcome.task_id})")
                        while kills and len(received) >= kills[0][0]:
                            await self.kill(outcomes, kills.popleft()[1], len(received))
                        if len(received) == fresh_at:
                            self.start_fresh(room, nursery)
                    print(f"{self.stamp()}  all {len(received)} outcomes in")
                    stats = outcomes.statistics()
                    nursery.cancel_scope.cancel()  # a fresh worker that never got ready
            return self.summary(received, stats, room.work_statistics())

    def summary(self, received: list[consensus.Outcome], stats: consensus.DistributionStatistics,
                room_stats: consensus.DispatcherStatistics) -> bool:  # fmt: skip
        ok = [o for o in received if o.ok]
        failed = [o for o in received if not o.ok]
        print("\nSummary")
        for label, count, note in [
            ("tasks submitted", stats.submitted, ""),
            ("ok outcomes", len(ok), ""),
            ("failed outcomes", len(failed), "dead letters"),
            ("redelivered", stats.redelivered, "lost attempts sent again: worker gone, unclaimed, lease out"),
            ("retried", stats.retried, "handler errors sent again"),
            ("returned", stats.returned, "handed back unstarted by a full worker; not an attempt"),
            ("stale replies", stats.stale, "replies to attempts already superseded or finished"),
            ("late accepted", stats.late_accepted, "an earlier attempt's success that still counted"),
        ]:
            print(f"  {label:<17}{count:5}" + (f"  ({note})" if note else ""))
            if label == "failed outcomes":
                for o in sorted(failed, key=lambda o: o.task_id):
                    print(
                        f"    task {o.task_id} (doc-{o.task['doc']}) failed after {o.attempts} attempts: {o.error}"
                    )
        print(f"  workers          {room_stats.workers_joined:5} joined, {room_stats.workers_lost} lost")
        print("  per worker            ok  failed  lost  stale")
        by_worker = Counter(o.worker for o in ok)
        for name in sorted(set(self.procs) | set(stats.per_worker), key=number):
            s = stats.per_worker.get(name, consensus.WorkerShare())
            note = ""
            if name in self.killed:
                note = f"  killed at {self.killed[name] - self.start:.2f} s"
            elif name in self.fresh:
                note = f"  started at {self.fresh[name] - self.start:.2f} s"
            print(f"    {name:<16} {by_worker[name]:5} {s.failed:7} {s.lost:5} {s.stale:6}{note}")
        counts = Counter(o.task_id for o in received)
        expected = set(range(self.args.tasks))
        missing = sorted(expected - counts.keys())
        twice = sorted(task_id for task_id, n in counts.items() if n > 1)
        unknown = sorted(counts.keys() - expected)
        if stats.submitted == self.args.tasks and not (missing or twice or unknown):
            print(
                f"\nevery task accounted for: {stats.submitted} submitted = {len(ok)} ok + {len(failed)} failed,"
                " each exactly once"
            )
            return True
        print(
            f"\nNOT every task accounted for: {stats.submitted} submitted, {len(received)} outcomes; "
            f"missing {missing}, more than once {twice}, never submitted {unknown}"
        )
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4, help="worker processes at the start")
    parser.add_argument("--kill", type=int, default=2, help="workers killed (SIGKILL) mid-stream")
    parser.add_argument("--fresh", type=int, default=1, help="workers started mid-stream, after the kills")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--lease", type=float, default=2.0, help="seconds a claimed attempt may go unrenewed")
    parser.add_argument(
        "--claim-timeout", type=float, default=1.0, help="seconds a sent attempt may go unclaimed"
    )
    parser.add_argument("--attempts", type=int, default=3, help="attempts per task (max_attempts)")
    parser.add_argument("--transport", choices=["ipc", "tcp"], default="ipc")
    parser.add_argument("--port", type=int, default=0,
                        help="tcp: the room's first port (it uses P to P+4); 0: a run of five free ones")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.workers < 1 or not 0 <= args.kill < args.workers or args.fresh < 0:
        parser.error("need --workers >= 1, 0 <= --kill < --workers (one must survive) and --fresh >= 0")
    if args.tasks < 10 or args.attempts < 1 or not (args.lease > 0 and args.claim_timeout > 0):
        parser.error("need --tasks >= 10, --attempts >= 1, --lease > 0 and --claim-timeout > 0")
    folder = tempfile.mkdtemp(prefix="nngc-pipeline-")
    if args.transport == "ipc":
        address = f"ipc://{folder}/room"
    else:
        address = f"tcp://127.0.0.1:{args.port}" if args.port else free_room_address()
    procs: dict[str, SpawnProcess] = {}  # every worker process started, by name
    status = 1
    try:
        status = 0 if trio.run(Host(args, address, procs).run) else 1
    except* KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
