"""consensus.aio and consensus.blocking next to the trio API: poll of 8 and hotline ask.

Both fronts run trio in a thread (docs/asyncio.md); this measures what that costs an
agent written for asyncio or as a plain script. Each *front* is used on both ends (the goal's figures):

* ``trio``: ``consensus.host`` / ``join`` / ``hotline`` under ``trio.run``, async handlers.
* ``aio``: ``consensus.aio`` under ``asyncio.run``, async handlers on the asyncio loop.
* ``blocking``: ``consensus.blocking`` from plain code, plain handlers (in threads).

Each bridge front is also measured against trio children (the caller's side alone), and
trio against children with plain handlers (threads, as blocking handlers are).

``poll``: the host (this process) polls 8 members answering at once (one child process,
``bench._bridge_peer``), over ipc, ``timeout=5``; wall time around ``room.poll``.
``ask``: 64-byte ``line.ask`` round trips to a hotline echo in a child process, over ipc.
Phases alternate between fronts for ``--rounds`` rounds (fresh room, line and child each
time) so drift hits all alike; medians are over every round. Goal (issue 16): each front
within 1.3x of trio's median.

    python -m bench.bridge            # 5 rounds of 100 polls and 1000 asks per front
    python -m bench.bridge --quick    # 3 rounds of 40 polls and 300 asks
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import trio

import consensus
from consensus import aio, blocking

from . import _cli
from ._common import format_table, median, percentile
from ._schema import TOOLKIT, Metric, Skip

FRONTS = ("trio", "aio", "blocking")
# (this process's front, the children's front): each front on both ends, then each bridge
# front against trio children (what the caller's side costs alone), and trio with plain
# handlers (the fair reference for blocking, whose handlers run in threads too)
VARIANTS = (("trio", "trio"), ("trio", "trio-plain"), ("aio", "aio"), ("aio", "trio"),
            ("blocking", "blocking"), ("blocking", "trio"))  # fmt: skip
N_MEMBERS = 8
GOAL_RATIO = 1.3
PAYLOAD = b"x" * 64


class Peer:
    """A ``bench._bridge_peer`` child; ``stop()`` ends it (end of stdin) and reaps it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._bridge_peer", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"bridge peer {args} did not start (said {line!r}, exit {self.proc.poll()})")

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


# ---------------------------------------------------------------------- one phase per front
def poll_phase(front: str, peer_front: str, address: str, polls: int, warmup: int) -> list[float]:
    samples: list[float] = []

    async def trio_host() -> None:
        async with consensus.host(address) as room:
            peer = await trio.to_thread.run_sync(Peer, "members", peer_front, address, str(N_MEMBERS))
            try:
                await room.wait_for_members(N_MEMBERS)
                for i in range(warmup + polls):
                    t = time.perf_counter()
                    result = await room.poll(i, timeout=5)
                    _keep(samples, i, warmup, t, len(result.answers))
            finally:
                await trio.to_thread.run_sync(peer.stop)

    async def aio_host() -> None:
        async with aio.host(address) as room:
            peer = await asyncio.to_thread(Peer, "members", peer_front, address, str(N_MEMBERS))
            try:
                await room.wait_for_members(N_MEMBERS)
                for i in range(warmup + polls):
                    t = time.perf_counter()
                    result = await room.poll(i, timeout=5)
                    _keep(samples, i, warmup, t, len(result.answers))
            finally:
                await asyncio.to_thread(peer.stop)

    def blocking_host() -> None:
        with blocking.host(address) as room:
            peer = Peer("members", peer_front, address, str(N_MEMBERS))
            try:
                room.wait_for_members(N_MEMBERS)
                for i in range(warmup + polls):
                    t = time.perf_counter()
                    result = room.poll(i, timeout=5)
                    _keep(samples, i, warmup, t, len(result.answers))
            finally:
                peer.stop()

    _run(front, trio_host, aio_host, blocking_host)
    return samples


def ask_phase(front: str, peer_front: str, address: str, asks: int, warmup: int) -> list[float]:
    samples: list[float] = []
    peer = Peer("echo", peer_front, address)

    async def trio_ask() -> None:
        async with consensus.hotline(dial=address) as line:
            await line.wait_connected()
            for i in range(warmup + asks):
                t = time.perf_counter()
                await line.ask(PAYLOAD, timeout=5)
                _keep(samples, i, warmup, t)

    async def aio_ask() -> None:
        async with aio.hotline(dial=address) as line:
            await line.wait_connected()
            for i in range(warmup + asks):
                t = time.perf_counter()
                await line.ask(PAYLOAD, timeout=5)
                _keep(samples, i, warmup, t)

    def blocking_ask() -> None:
        with blocking.hotline(dial=address) as line:
            line.wait_connected()
            for i in range(warmup + asks):
                t = time.perf_counter()
                line.ask(PAYLOAD, timeout=5)
                _keep(samples, i, warmup, t)

    try:
        _run(front, trio_ask, aio_ask, blocking_ask)
    finally:
        peer.stop()
    return samples


def _keep(samples: list[float], i: int, warmup: int, started: float, answers: int = N_MEMBERS) -> None:
    if answers != N_MEMBERS:
        raise RuntimeError(f"a poll had {answers} answers of {N_MEMBERS}")
    if i >= warmup:
        samples.append(time.perf_counter() - started)


def _run(front: str, on_trio: Callable[[], Any], on_aio: Callable[[], Any], on_blocking: Callable[[], None]) -> None:
    if front == "trio":
        trio.run(on_trio)
    elif front == "aio":
        asyncio.run(on_aio())
    else:
        on_blocking()


# ---------------------------------------------------------------------- the run
def measure(rounds: int, polls: int, asks: int, folder: str) -> dict[str, Any]:
    samples: dict[tuple[str, str, str], list[float]] = {(s, *v): [] for s in ("poll", "ask") for v in VARIANTS}
    for n in range(rounds):
        for i, (front, peer_front) in enumerate(VARIANTS if n % 2 == 0 else VARIANTS[::-1]):
            print(f"  round {n + 1}/{rounds} {front} -> {peer_front} ...", end="", flush=True, file=sys.stderr)
            where = f"ipc://{folder}/{n}-{i}"
            samples["poll", front, peer_front] += poll_phase(front, peer_front, where + "-room", polls, 5)
            samples["ask", front, peer_front] += ask_phase(front, peer_front, where + "-line", asks, 50)
            print(" done", file=sys.stderr)
    results: list[dict[str, Any]] = [{"scenario": scenario, "front": front, "peers": peer_front, "count": len(values),
                "median_ms": median(values) * 1e3, "p99_ms": percentile(values, 99) * 1e3}
               for (scenario, front, peer_front), values in samples.items()]  # fmt: skip
    reference = {r["scenario"]: r["median_ms"] for r in results if r["front"] == r["peers"] == "trio"}
    ratios: dict[str, Any] = {}
    for r in results:
        if r["front"] == r["peers"] and r["front"] != "trio":  # the goal: a front on both ends vs trio
            ratio = r["median_ms"] / reference[r["scenario"]]
            ratios[f"{r['scenario']}_{r['front']}_over_trio"] = {
                "value": round(ratio, 3), "op": "<=", "target": GOAL_RATIO, "met": ratio <= GOAL_RATIO}
    return {"results": results, "ratios": ratios}


def render(report: dict[str, Any]) -> str:
    reference = {r["scenario"]: r["median_ms"] for r in report["results"] if r["front"] == r["peers"] == "trio"}
    rows = []
    for r in report["results"]:
        ratio = r["median_ms"] / reference[r["scenario"]]
        goal = report["ratios"].get(f"{r['scenario']}_{r['front']}_over_trio") if r["front"] == r["peers"] else None
        rows.append((r["scenario"], r["front"], r["peers"], r["count"], f"{r['median_ms']:.3f}", f"{r['p99_ms']:.3f}",
                     f"{ratio:.2f}" + ("" if goal is None else "  goal met" if goal["met"] else "  goal NOT met")))
    return format_table(("scenario", "this process", "children", "samples", "median ms", "p99 ms",
                         f"ratio to trio -> trio (goal <= {GOAL_RATIO})"), rows)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("bridge", "consensus.aio and consensus.blocking vs the trio API: poll of 8, hotline ask.",
                    "3 rounds of 40 polls and 300 asks per front")  # fmt: skip
    p.add_argument("--rounds", type=int, default=None, help="rounds over the fronts (default 5, --quick 3)")
    args = p.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    polls, asks = (40, 300) if args.quick else (100, 1000)

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        folder = tempfile.mkdtemp(prefix="nngc-bench-bridge-")
        try:
            body = measure(rounds, polls, asks, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        body["params"] = {"rounds": rounds, "polls_per_round": polls, "asks_per_round": asks,
                          "members": N_MEMBERS, "transport": "ipc", "payload_bytes": len(PAYLOAD),
                          "fronts": {"trio": "consensus under trio.run, async handlers",
                                     "aio": "consensus.aio under asyncio.run, async handlers on its loop",
                                     "blocking": "consensus.blocking, plain handlers"}}  # fmt: skip
        return body

    return _cli.run(args, "bridge", "bridge: the asyncio and blocking fronts vs trio", run, render)


def suite_step(quick: bool) -> list[Metric | Skip]:
    """The suite's ``bridge`` step: poll of 8 and ask round trip per front, as Metric rows."""
    folder = tempfile.mkdtemp(prefix="nngc-bench-bridge-")
    try:
        body = measure(3 if quick else 5, 40 if quick else 100, 300 if quick else 1000, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out: list[Metric | Skip] = []
    for r in body["results"]:
        variant = f"{r['scenario']} via {r['front']}, children {r['peers']}"
        if r["scenario"] == "poll":
            for name, key in (("gather_median_ms", "median_ms"), ("gather_p99_ms", "p99_ms")):
                out.append(Metric("bridge", TOOLKIT, variant, "ipc", 0, N_MEMBERS, name, r[key], "ms"))
        else:
            for name, key in (("rtt_median_us", "median_ms"), ("rtt_p99_us", "p99_ms")):
                out.append(Metric("bridge", TOOLKIT, variant, "ipc", len(PAYLOAD), 1, name, r[key] * 1e3, "us"))
    return out

if __name__ == "__main__":
    sys.exit(main())
