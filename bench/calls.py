"""Python calls per message, by layer: what noise on a shared machine does not move.

Each scenario runs its two ends in two processes (the far end spawned), warms up, then
counts every function call in each process with ``sys.setprofile`` over ``--n`` messages:
Python calls by the file of the function called, C calls (builtins, cffi, methods of
built-in types) by the file of the Python code that made them. The layers are
``patterns``, ``consensus``, ``trio``, ``pynng`` (pynng and cffi's Python) and ``other``
(the standard library, the bench). Timing under the profiler means nothing; the counts do.

Scenarios (``--scenario``, repeatable; default: all):

* ``pair``: ``patterns.Pair`` 64-byte CBOR round trip (``send`` then ``receive``; the echo
  ``receive`` then ``send``); ``floor``: the same with bare pynng ``Pair1`` under trio
  (non-blocking ``recv``, ``wait_readable`` on its descriptor, ``send`` inline).
* ``hotline``: ``Hotline.ask`` of 64 bytes answered by an ``async def`` echo;
  ``hotline_secret``: the same on a line with a secret (every frame sealed and checked).
* ``hotline_aio``, ``hotline_blocking``: the same through ``consensus.aio`` (an asyncio
  loop asks, and the far one answers with an ``async def`` echo) and ``consensus.blocking``
  (a plain thread asks, and a plain ``def`` echo answers in the thread that read the ask):
  their figures are those of the asking thread and of the answering one (the loop's or the
  handler's), not of trio's thread, which a lent line leaves idle.
* ``survey``: ``patterns.Surveyor`` against 8 ``patterns.Respondent`` (one process, a task each),
  reading until the 8th reply; ``survey_floor``: the same with bare pynng ``Surveyor0`` and
  ``Respondent0`` under trio; ``poll``: ``room.poll`` of 8 members that answer at once;
  ``poll_secret``: the same in a room with a secret; ``poll_aio``, ``poll_blocking``: the
  same through ``consensus.aio`` (the host awaits on an asyncio loop, 8 ``aio.join`` members
  with ``async def`` handlers on one loop) and ``consensus.blocking`` (a plain thread polls,
  8 ``blocking.join`` members with plain handlers): the near end's figures are the
  caller's thread (``near``) and the front's trio thread (``near_trio``), the far end's
  those of the thread that reads the members' surveys (the loop, the survey reader).
  The far end's figures are per survey, for its 8 respondents together.

    python -m bench.calls                    # every scenario, ipc, n=200
    python -m bench.calls --scenario hotline --transport tcp --top 15

``--mode cpu`` measures instead what each end's trio thread spends per message (CPU, user
and system time, sleeps: :mod:`bench._calls_cpu`), ``--mode syscalls`` adds its system
calls by name (under ``strace``)::

    python -m bench.calls --mode cpu --scenario floor --scenario pair --scenario hotline
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import trio

from ._calls_cpu import CpuMeter, count_syscalls, render_cpu
from ._calls_far import FAR
from ._calls_near import NEAR

SCENARIOS = ("floor", "pair", "hotline", "hotline_secret", "hotline_aio", "hotline_blocking", "survey_floor", "survey",
             "poll", "poll_secret", "poll_aio", "poll_blocking")  # fmt: skip
SYNC = ("hotline_aio", "hotline_blocking", "poll_aio", "poll_blocking")  # ends that run their own loop (asyncio) or none (plain threads)
TWO_THREADS = ("poll_aio", "poll_blocking")  # near ends counted on the caller's thread and the front's trio thread
POLLS = ("survey_floor", "survey", "poll", "poll_secret", "poll_aio", "poll_blocking")  # far ends that never stop
MODES = {"calls": 200, "cpu": 5000, "syscalls": 1000}  # and the default --n of each
LAYERS = (("/patterns/", "patterns"), ("/consensus/", "consensus"), ("/trio/", "trio"), ("/pynng/", "pynng"),
          ("/cffi/", "pynng"))  # fmt: skip


def _layer(filename: str) -> str:
    for part, name in LAYERS:
        if part in filename:
            return name
    return "other"


class Counter:
    """Counts calls in this thread while on (``sys.setprofile``)."""

    def __init__(self) -> None:
        self.python: collections.Counter[str] = collections.Counter()
        self.c: collections.Counter[str] = collections.Counter()
        self.functions: collections.Counter[str] = collections.Counter()
        self._layers: dict[str, str] = {}
        self.active = False
        self.save: Callable[[], None] | None = None  # called once counting ends (a far end writes its report)

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            layer = self._layers.get(code.co_filename)
            if layer is None:
                layer = self._layers[code.co_filename] = _layer(code.co_filename)
            self.python[layer] += 1
            self.functions[f"{layer} {os.path.basename(code.co_filename)}:{code.co_name}"] += 1
        elif event == "c_call":
            code = frame.f_code
            layer = self._layers.get(code.co_filename)
            if layer is None:
                layer = self._layers[code.co_filename] = _layer(code.co_filename)
            self.c[layer] += 1
            self.functions[f"{layer} C {getattr(arg, '__qualname__', arg)}"] += 1

    def on(self) -> None:
        self.active = True
        sys.setprofile(self._hook)

    def off(self) -> None:
        sys.setprofile(None)
        if self.active and self.save is not None:
            self.save()
        self.active = False

    def report(self, messages: int, top: int) -> dict[str, Any]:
        return {"python": {k: round(v / messages, 1) for k, v in sorted(self.python.items())},
                "c": {k: round(v / messages, 1) for k, v in sorted(self.c.items())},
                "python_total": round(sum(self.python.values()) / messages, 1),
                "c_total": round(sum(self.c.values()) / messages, 1),
                "top": [(name, round(n / messages, 2)) for name, n in self.functions.most_common(top)]}  # fmt: skip


def far_main(scenario: str, address: str, warmup: int, n: int, top: int, out: str, mode: str = "calls") -> None:
    counter: Counter | CpuMeter = Counter() if mode == "calls" else CpuMeter("far")

    def save() -> None:
        with open(out, "w") as f:
            json.dump(counter.report(n, top), f)

    counter.save = save

    async def run() -> None:
        with trio.move_on_after(120):
            await FAR[scenario](address, warmup, n, counter)

    try:
        if scenario in SYNC:  # (its own loop, or plain threads)
            FAR[scenario](address, warmup, n, counter)
        else:
            trio.run(run)
    except BaseException:  # the near end closing the room ends the members: expected
        if not os.path.exists(out):
            raise


def run_scenario(scenario: str, transport: str, warmup: int, n: int, top: int, mode: str = "calls") -> dict[str, Any]:
    if mode == "syscalls":
        return _under_strace(scenario, transport, warmup, n)
    with tempfile.TemporaryDirectory(prefix="calls-") as tmp:
        if transport == "ipc":
            address = f"ipc://{tmp}/s"
        else:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            address = f"tcp://127.0.0.1:{port}"
        out = os.path.join(tmp, "far.json")
        near_counter: Counter | CpuMeter = Counter() if mode == "calls" else CpuMeter("near")
        trio_counter: Counter | CpuMeter = Counter() if mode == "calls" else CpuMeter("near-trio")

        async def near() -> None:
            await NEAR[scenario](address, warmup, n, near_counter)

        child = subprocess.Popen([sys.executable, "-m", "bench.calls", "--far", scenario, address, str(warmup),
                                  str(n), str(top), out, mode])  # fmt: skip
        try:
            if scenario in TWO_THREADS:
                NEAR[scenario](address, warmup, n, near_counter, trio_counter)
            elif scenario in SYNC:
                NEAR[scenario](address, warmup, n, near_counter)
            else:
                trio.run(near)
            if scenario in POLLS:
                time.sleep(0.5)
                child.terminate()
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        with open(out) as f:
            far = json.load(f)
        result = {"scenario": scenario, "transport": transport, "n": n, "near": near_counter.report(n, top),
                  "far": far}  # fmt: skip
        if scenario in TWO_THREADS:
            result["near_trio"] = trio_counter.report(n, top)
        return result


def _under_strace(scenario: str, transport: str, warmup: int, n: int) -> dict[str, Any]:
    """``--mode cpu`` in a process traced by ``strace -f -ff``, and each trio thread's system calls."""
    if shutil.which("strace") is None:
        raise SystemExit("--mode syscalls needs strace")
    with tempfile.TemporaryDirectory(prefix="calls-strace-") as tmp:
        out = os.path.join(tmp, "cpu.json")
        subprocess.run(["strace", "-f", "-ff", "-qq", "-o", os.path.join(tmp, "t"), sys.executable, "-m",
                        "bench.calls", "--mode", "cpu", "--scenario", scenario, "--transport", transport,
                        "--warmup", str(warmup), "--n", str(n), "--json", out],
                       check=True, stdout=subprocess.DEVNULL, timeout=600)  # fmt: skip
        with open(out) as f:
            result: dict[str, Any] = json.load(f)[0]
        result["syscalls"] = count_syscalls(os.path.join(tmp, "t"), n)
        result["mode"] = "syscalls (under strace: its CPU figures are strace's, not the run's)"
        return result


def render(result: dict[str, Any]) -> str:
    if "cpu_us" in result["near"]:
        return render_cpu(result)
    lines = [f"{result['scenario']} over {result['transport']}, per message (n={result['n']}):"]
    for side in ("near", "near_trio", "far"):
        if side not in result:
            continue
        r = result[side]
        lines.append(f"  {side}: python {r['python_total']} {r['python']}  C {r['c_total']} {r['c']}")
        for name, count in r["top"]:
            lines.append(f"      {count:7.2f}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--far"]:
        far_main(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6], argv[7])
        return 0
    p = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", action="append", choices=SCENARIOS)
    p.add_argument("--transport", default="ipc", choices=("ipc", "tcp"))
    p.add_argument("--mode", choices=MODES, default="calls",
                   help="calls: Python and C calls per message (profiled); cpu: each end's trio thread's CPU, "
                   "user, system time and sleeps per message (not profiled); syscalls: cpu and its system "
                   "calls, under strace")  # fmt: skip
    p.add_argument("--n", type=int, default=None, help="messages counted (default: calls 200, cpu 5000, syscalls 1000)")
    p.add_argument("--warmup", type=int, default=None, help="messages before (default 50; cpu and syscalls 500)")
    p.add_argument("--top", type=int, default=0, help="also list the N most called functions per side")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    n = args.n or MODES[args.mode]
    warmup = args.warmup if args.warmup is not None else (50 if args.mode == "calls" else 500)
    results = []
    for scenario in args.scenario or SCENARIOS:
        result = run_scenario(scenario, args.transport, warmup, n, args.top, args.mode)
        print(render(result), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
