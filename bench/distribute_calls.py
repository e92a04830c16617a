"""Work sharing per task: each side's CPU, by thread, and its Python calls (or a cProfile).

``bench.distribute_peers`` says how fast work sharing is; this says where a task's CPU goes.
A ``consensus.Dispatcher`` here hands ``--n`` 64-byte tasks to two ``consensus.Worker``
processes (started with ``subprocess``, trivial ``async`` echo handler, the knobs of
``bench.distribute``), after an untimed warm-up round. Over the timed round each process
reports its CPU per task (user and system, and per thread from ``/proc``: NNG's own
threads use almost none) and, with ``--mode calls``, its Python and C calls per task by
layer and the most called functions (``sys.setprofile``, as ``bench.calls`` counts), or
with ``--mode cprofile`` cProfile's table by own time. A worker's figures are per task
*it* ran (about half). Under a profiler the times mean little; the counts do. Without
one (``--mode cpu``, the default) the CPU per task is the figure to compare, side by side
with another commit's in the same minutes (the machine is shared).

    python -m bench.distribute_calls                      # CPU per task, 50,000 tasks
    python -m bench.distribute_calls --mode calls --n 20000 --top 25
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from types import FrameType
from typing import Any

import trio

from ._distribute_jobs import DEFAULT_KNOBS, WORKERS, make_task
from ._ports import free_port_block

LAYERS = (("/patterns/", "patterns"), ("/consensus/", "consensus"), ("/trio/", "trio"), ("/pynng/", "pynng"),
          ("/cffi/", "pynng"))  # fmt: skip
WARMUP = 3000


def _layer(filename: str) -> str:
    return next((name for part, name in LAYERS if part in filename), "other")


def _threads() -> dict[tuple[str, str], int]:
    """CPU ticks (user + system) of each thread of this process, by (id, name)."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[(tid, stat[stat.index("(") + 1 : stat.rindex(")")])] = int(fields[11]) + int(fields[12])
    return ticks


class Meter:
    """One process's window: CPU (process, user/system, per thread) and, by mode, calls or cProfile."""

    def __init__(self, mode: str, top: int) -> None:
        self.mode, self.top = mode, top
        self.python: collections.Counter[str] = collections.Counter()
        self.c: collections.Counter[str] = collections.Counter()
        self.functions: collections.Counter[str] = collections.Counter()
        self._layers: dict[str, str] = {}
        self._profile = cProfile.Profile()
        self._start: tuple[float, float, float, float, dict[tuple[str, str], int]] = (0, 0, 0, 0, {})
        self.result: dict[str, Any] = {}

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" or event == "c_call":
            filename = frame.f_code.co_filename
            layer = self._layers.get(filename) or self._layers.setdefault(filename, _layer(filename))
            if event == "call":
                self.python[layer] += 1
                self.functions[f"{layer} {os.path.basename(filename)}:{frame.f_code.co_name}"] += 1
            else:
                self.c[layer] += 1
                self.functions[f"{layer} C {getattr(arg, '__qualname__', arg)}"] += 1

    def on(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._start = (time.process_time(), time.perf_counter(), usage.ru_utime, usage.ru_stime, _threads())
        if self.mode == "calls":
            sys.setprofile(self._hook)
        elif self.mode == "cprofile":
            self._profile.enable()

    def off(self, tasks: int) -> dict[str, Any]:
        if self.mode == "calls":
            sys.setprofile(None)
        elif self.mode == "cprofile":
            self._profile.disable()
        cpu0, wall0, user0, system0, threads0 = self._start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        per_task = 1e6 / tasks
        tick = os.sysconf("SC_CLK_TCK")
        by_thread: collections.Counter[str] = collections.Counter()
        for key, ticks in _threads().items():
            by_thread[key[1]] += ticks - threads0.get(key, 0)
        out: dict[str, Any] = {
            "tasks": tasks, "wall_s": round(time.perf_counter() - wall0, 3),
            "cpu_us": round((time.process_time() - cpu0) * per_task, 2),
            "user_us": round((usage.ru_utime - user0) * per_task, 2),
            "system_us": round((usage.ru_stime - system0) * per_task, 2),
            "threads_us": {name: round(ticks / tick * per_task, 2) for name, ticks in sorted(by_thread.items()) if ticks},
        }  # fmt: skip
        if self.mode == "calls":
            out["python_calls"] = round(sum(self.python.values()) / tasks, 2)
            out["c_calls"] = round(sum(self.c.values()) / tasks, 2)
            out["python_by_layer"] = {k: round(v / tasks, 2) for k, v in sorted(self.python.items())}
            out["c_by_layer"] = {k: round(v / tasks, 2) for k, v in sorted(self.c.items())}
            out["top"] = [(name, round(n / tasks, 3)) for name, n in self.functions.most_common(self.top)]
        elif self.mode == "cprofile":
            text = io.StringIO()
            pstats.Stats(self._profile, stream=text).sort_stats("tottime").print_stats(self.top)
            out["cprofile"] = text.getvalue()
        return out


# ===================================================================== a worker process
def worker_main(address: str, name: str, mode: str, top: int) -> None:
    """A worker driven by lines on stdin: ``on``, ``off N`` (reply: its figures as JSON), ``quit``."""
    import consensus

    meter = Meter(mode, top)

    async def echo(task: Any) -> Any:
        return task

    async def main() -> None:
        async with consensus.Worker(address, handler=echo, name=name, concurrency=DEFAULT_KNOBS.concurrency,
                                    prefetch=DEFAULT_KNOBS.prefetch):  # fmt: skip
            print("ready", flush=True)
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline)
                if line.startswith("on"):
                    meter.on()
                elif line.startswith("off"):
                    print(json.dumps(meter.off(int(line.split()[1]))), flush=True)
                else:
                    return

    trio.run(main)


# ===================================================================== the dispatcher
def measure(n: int, mode: str, top: int) -> dict[str, Any]:
    import consensus

    address = f"tcp://127.0.0.1:{free_port_block(2)}"  # tasks at P, results at P+1
    children = [subprocess.Popen([sys.executable, "-m", "bench.distribute_calls", "--worker", address, f"w{i}",
                                  mode, str(top)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for i in range(WORKERS)]  # fmt: skip
    meter = Meter(mode, top)

    def tell(child: subprocess.Popen[str], line: str) -> None:
        assert child.stdin is not None
        child.stdin.write(line + "\n")
        child.stdin.flush()

    def hear(child: subprocess.Popen[str]) -> str:
        assert child.stdout is not None
        return child.stdout.readline()

    async def run() -> tuple[float, list[dict[str, Any]]]:
        async with consensus.Dispatcher(address, name="bench", max_batch=DEFAULT_KNOBS.max_batch,
                                        max_capacity=max(256, DEFAULT_KNOBS.capacity)) as dispatcher:  # fmt: skip
            for child in children:
                if hear(child).strip() != "ready":
                    raise RuntimeError("a worker did not start")
            with trio.fail_after(30):
                await dispatcher.wait_for_workers(WORKERS)
            async with dispatcher.distribute([make_task(i) for i in range(WARMUP)]) as outcomes:
                async for _ in outcomes:
                    pass
            tasks = [make_task(WARMUP + i) for i in range(n)]
            for child in children:
                tell(child, "on")
            await trio.sleep(0.2)  # (the workers read "on" in a thread of their own)
            ok = 0
            started = time.perf_counter()
            meter.on()
            async with dispatcher.distribute(tasks) as outcomes:
                async for outcome in outcomes:
                    ok += outcome.error is None
            figures = meter.off(n)
            elapsed = time.perf_counter() - started
            if ok != n:
                raise RuntimeError(f"{ok} of {n} tasks came out ok")
            workers = []
            for child in children:
                tell(child, f"off {n // WORKERS}")
                workers.append(json.loads(hear(child)))
            return elapsed, [figures, *workers]

    try:
        elapsed, (dispatcher, *workers) = trio.run(run)
    finally:
        for child in children:
            if child.poll() is None:
                tell(child, "quit")
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return {"n": n, "mode": mode, "rate": round(n / elapsed, 1), "dispatcher": dispatcher, "workers": workers}


def render(result: dict[str, Any]) -> str:
    lines = [f"{result['n']:,} tasks, {result['rate']:,.0f} tasks/s ({result['mode']}); per task:"]
    for side, r in (
        ("dispatcher", result["dispatcher"]),
        *((f"worker {i}", w) for i, w in enumerate(result["workers"])),
    ):
        threads = " ".join(f"{name} {us}" for name, us in r["threads_us"].items())
        lines.append(f"  {side}: cpu {r['cpu_us']} us (user {r['user_us']}, system {r['system_us']}; by thread: "
                     f"{threads})")  # fmt: skip
        if "python_calls" in r:
            lines.append(f"    python calls {r['python_calls']} {r['python_by_layer']}  C calls {r['c_calls']} "
                         f"{r['c_by_layer']}")  # fmt: skip
            lines.extend(f"      {count:7.3f}  {name}" for name, count in r["top"])
        if "cprofile" in r:
            lines.append(r["cprofile"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker_main(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.distribute_calls", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("cpu", "calls", "cprofile"), default="cpu")
    p.add_argument("--n", type=int, default=50_000, help="tasks in the timed round")
    p.add_argument("--top", type=int, default=25, help="functions listed per process (calls, cprofile)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args(argv)
    result = measure(args.n, args.mode, args.top)
    print(render(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
