"""How to reach trio from asyncio and from plain code: one empty call per mechanism.

The measurement behind the choice in docs/asyncio.md. Each row is the median time of a
call into trio of ``async def target(x): await trio.lowlevel.checkpoint(); return x``
and back, from:

* ``thread+token asyncio``: trio in a thread, ``TrioToken.run_sync_soon`` in,
  ``loop.call_soon_threadsafe`` out (what ``consensus.aio`` does);
* ``thread from_thread blocking``: trio in a thread, ``trio.from_thread.run`` (the same
  crossing as ``consensus.blocking``, which waits on a ``threading.Event``);
* ``anyio portal blocking`` / ``anyio portal asyncio``: anyio's ``BlockingPortal`` on the
  trio backend (``portal.call``; ``asyncio.wrap_future(portal.start_task_soon(...))``),
  skipped when anyio is not installed;
* ``guest mode asyncio``: ``trio.lowlevel.start_guest_run`` on the asyncio loop.

    python -m bench.bridge_crossing           # 3 rounds of 3000 calls
    python -m bench.bridge_crossing --quick   # 3 rounds of 1000
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from . import _cli
from ._common import format_table, median


async def target(x: int) -> int:
    await trio.lowlevel.checkpoint()
    return x


class TrioInThread:
    def __init__(self) -> None:
        ready = threading.Event()
        self.stop_event: trio.Event | None = None

        async def serve() -> None:
            self.token = trio.lowlevel.current_trio_token()
            self.stop_event = trio.Event()
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                ready.set()
                await self.stop_event.wait()

        self.thread = threading.Thread(target=trio.run, args=(serve,))
        self.thread.start()
        ready.wait()

    def close(self) -> None:
        assert self.stop_event is not None
        self.token.run_sync_soon(self.stop_event.set)
        self.thread.join()


def thread_token_asyncio(n: int) -> float:
    side = TrioInThread()

    async def calls() -> float:
        loop = asyncio.get_running_loop()

        async def call(x: int) -> int:
            future: asyncio.Future[int] = loop.create_future()

            async def run() -> None:
                value = await target(x)
                loop.call_soon_threadsafe(future.set_result, value)

            side.token.run_sync_soon(side.nursery.start_soon, run)
            return await future

        started = time.perf_counter()
        for i in range(n):
            await call(i)
        return (time.perf_counter() - started) / n

    try:
        return asyncio.run(calls())
    finally:
        side.close()


def thread_from_thread_blocking(n: int) -> float:
    side = TrioInThread()
    try:
        started = time.perf_counter()
        for i in range(n):
            trio.from_thread.run(target, i, trio_token=side.token)
        return (time.perf_counter() - started) / n
    finally:
        side.close()


def anyio_portal(n: int) -> tuple[float, float]:
    # imported by name: anyio is no dependency of the toolkit, only measured when present
    start_blocking_portal = importlib.import_module("anyio.from_thread").start_blocking_portal

    with start_blocking_portal(backend="trio") as portal:
        started = time.perf_counter()
        for i in range(n):
            portal.call(target, i)
        blocking = (time.perf_counter() - started) / n

        async def calls() -> float:
            started = time.perf_counter()
            for i in range(n):
                await asyncio.wrap_future(portal.start_task_soon(target, i))
            return (time.perf_counter() - started) / n

        return blocking, asyncio.run(calls())


def guest_mode_asyncio(n: int) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        started_trio: asyncio.Future[None] = loop.create_future()
        done: asyncio.Future[Any] = loop.create_future()
        box: dict[str, Any] = {}

        async def trio_main() -> None:
            box["token"] = trio.lowlevel.current_trio_token()
            box["stop"] = trio.Event()
            async with trio.open_nursery() as nursery:
                box["nursery"] = nursery
                started_trio.set_result(None)
                await box["stop"].wait()

        trio.lowlevel.start_guest_run(trio_main, run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                                      run_sync_soon_not_threadsafe=loop.call_soon,
                                      done_callback=done.set_result, host_uses_signal_set_wakeup_fd=True)  # fmt: skip
        await started_trio

        async def call(x: int) -> int:
            future: asyncio.Future[int] = loop.create_future()

            async def runner() -> None:
                future.set_result(await target(x))

            box["token"].run_sync_soon(box["nursery"].start_soon, runner)
            return await future

        t = time.perf_counter()
        for i in range(n):
            await call(i)
        elapsed = (time.perf_counter() - t) / n
        box["token"].run_sync_soon(box["stop"].set)
        await done
        return elapsed

    return asyncio.run(run())


def measure(rounds: int, n: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}
    skips: list[str] = []
    runs: list[tuple[str, Callable[[int], float]]] = [
        ("thread+token asyncio", thread_token_asyncio),
        ("thread from_thread blocking", thread_from_thread_blocking),
        ("guest mode asyncio", guest_mode_asyncio),
    ]
    for _ in range(rounds):
        for name, fn in runs:
            samples.setdefault(name, []).append(fn(n))
        try:
            blocking, on_asyncio = anyio_portal(n)
        except ImportError:
            skips = ["anyio portal: anyio is not installed (pip install anyio)"]
            continue
        samples.setdefault("anyio portal blocking", []).append(blocking)
        samples.setdefault("anyio portal asyncio", []).append(on_asyncio)
    return {"results": [{"mechanism": k, "median_us": median(v) * 1e6} for k, v in samples.items()],
            "skips": skips}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("bridge_crossing", "An empty call into trio and back, per crossing mechanism.",
                    "3 rounds of 1000 calls")  # fmt: skip
    args = p.parse_args(argv)
    n = 1000 if args.quick else 3000

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        body = measure(3, n)
        body["params"] = {"rounds": 3, "calls_per_round": n, "target": "await checkpoint(); return x"}
        return body

    def render(report: dict[str, Any]) -> str:
        rows = [(r["mechanism"], f"{r['median_us']:.1f}") for r in report["results"]]
        return "\n".join([format_table(("mechanism", "median µs per call"), rows), *report["skips"]])

    return _cli.run(args, "bridge_crossing", "bridge_crossing: one call into trio and back", run, render)


if __name__ == "__main__":
    sys.exit(main())
