"""``python -m bench.calls --mode cpu`` and ``--mode syscalls``: what each end's trio thread spends per message.

The same scenarios and switches as the call counts (:mod:`bench._calls_far`,
:mod:`bench._calls_near`), with a :class:`CpuMeter` in place of the profiler: over the
counted messages it reads the thread's CPU time (``time.thread_time_ns``), its user and
system time (``/proc/thread-self/stat``, in clock ticks: run a few thousand messages) and
its context switches (``/proc/thread-self/status``): a *voluntary* switch is the thread
going to sleep, in ``epoll_wait`` or on a lock, so that another thread (NNG's, the peer's)
must wake it: the hand-offs per message. Nothing is profiled: these are the costs of the
real run, steadier than wall times on a shared machine (another process's load still
inflates them a little, through the caches).

``--mode syscalls`` runs the same under ``strace -f -ff`` (much slower) and counts each
trio thread's system calls by name between the meter's marks (a ``stat`` of a path that
does not exist, at ``on()`` and ``off()``).
"""

from __future__ import annotations

import collections
import glob
import os
import re
import time
from typing import Any

__all__ = ["CpuMeter", "count_syscalls", "render_cpu"]

MARK = "/nonexistent-bench-calls/{side}-{what}"  # stat'ed at on() and off(): strace's marks
_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
_SWITCHES = re.compile(rb"^(voluntary|nonvoluntary)_ctxt_switches:\s+(\d+)", re.MULTILINE)


def _sample() -> tuple[int, ...]:
    """This thread now: CPU ns, user and system ticks, voluntary and involuntary switches, wall ns."""
    with open("/proc/thread-self/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    with open("/proc/thread-self/status", "rb") as f:
        switches = dict(_SWITCHES.findall(f.read()))
    return (time.thread_time_ns(), int(fields[11]), int(fields[12]), int(switches[b"voluntary"]),
            int(switches[b"nonvoluntary"]), time.perf_counter_ns())  # fmt: skip


class CpuMeter:
    """A switch (:class:`bench._calls_ends.Switch`) that measures this thread between ``on()`` and ``off()``."""

    def __init__(self, side: str) -> None:
        self.side = side
        self.active = False
        self.save: Any = None  # called once measuring ends (a far end writes its report)
        self._start: tuple[int, ...] = ()
        self._delta: tuple[int, ...] = ()

    def on(self) -> None:
        self.active = True
        _mark(self.side, "on")
        self._start = _sample()

    def off(self) -> None:
        if not self.active:
            return
        end = _sample()
        _mark(self.side, "off")
        self._delta = tuple(b - a for a, b in zip(self._start, end, strict=True))
        self.active = False
        if self.save is not None:
            self.save()

    def report(self, messages: int, top: int = 0) -> dict[str, Any]:
        cpu, user, system, voluntary, involuntary, wall = self._delta
        return {"cpu_us": round(cpu / 1e3 / messages, 1), "user_us": round(user * _TICK_US / messages, 1),
                "sys_us": round(system * _TICK_US / messages, 1), "wall_us": round(wall / 1e3 / messages, 1),
                "sleeps": round(voluntary / messages, 2), "preempted": round(involuntary / messages, 3)}  # fmt: skip


def _mark(side: str, what: str) -> None:
    try:
        os.stat(MARK.format(side=side, what=what))
    except OSError:
        pass


def count_syscalls(prefix: str, messages: int) -> dict[str, dict[str, float]]:
    """Per side, the system calls per message of the thread that marked its window in the
    ``strace -ff -o prefix`` files (by name, most first, and ``total``)."""
    out: dict[str, dict[str, float]] = {}
    for path in glob.glob(prefix + ".*"):
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        for side in ("near", "near-trio", "far"):  # (near-trio: a front's trio thread, poll_aio and poll_blocking)
            on, off = MARK.format(side=side, what="on"), MARK.format(side=side, what="off")
            starts = [i for i, line in enumerate(lines) if on in line]
            ends = [i for i, line in enumerate(lines) if off in line]
            if not starts or not ends:
                continue
            names = collections.Counter(line.partition("(")[0] for line in lines[starts[0] + 1 : ends[-1]]
                                        if "(" in line and not line.startswith(("+++", "---")))  # fmt: skip
            counts = {name: round(n / messages, 2) for name, n in names.most_common() if n / messages >= 0.01}
            out[side.replace("-", "_")] = {"total": round(sum(names.values()) / messages, 2), **counts}
    return out


def render_cpu(result: dict[str, Any]) -> str:
    head = f"{result['scenario']} over {result['transport']}, per message (n={result['n']}), each end's trio thread:"
    lines = [head]
    for side in ("near", "near_trio", "far"):
        if side not in result:
            continue
        r = result[side]
        lines.append(f"  {side}: CPU {r['cpu_us']} µs (user {r['user_us']}, sys {r['sys_us']}), "
                     f"wall {r['wall_us']} µs, sleeps {r['sleeps']}, preempted {r['preempted']}")  # fmt: skip
        calls = result.get("syscalls", {}).get(side)
        if calls:
            lines.append("        system calls: " + ", ".join(f"{k} {v}" for k, v in calls.items()))
    return "\n".join(lines)
