"""Hotline ask/reply latency between two processes vs. pynng's synchronous Pair round trip.

One run measures a 64-byte round trip over ipc and over tcp (127.0.0.1) for:

* ``pynng_sync``   -- ``pynng.Pair1`` blocking ``send``/``recv`` (reused from ``bench._pair_peers``)
* ``hotline_ask``  -- ``consensus.hotline`` ``await line.ask(value)``, the peer answering
  with an async ``on_ask`` handler that returns the value

The measuring side listens; each echo side is a separate spawned process that dials.
After a warm-up, round trips are timed one by one with ``time.perf_counter_ns`` in
interleaved blocks (rotating order), so drift of a noisy machine hits both alike.
The goal compares medians: hotline ask within 1.5x of the pynng sync round trip.

    python -m bench.hotline_rtt            # N=3000 per variant and transport
    python -m bench.hotline_rtt --quick    # N=1000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from ._common import (
    RESULTS_DIR,
    cpu_busy_fraction,
    describe_machine,
    format_table,
    machine_info,
    summarize_ns,
    write_json,
)
from ._hotline_peers import HotlineClient, HotlineEchoChild
from ._pair_peers import CONNECT_TIMEOUT_S, PAYLOAD, EchoChild, PynngSyncClient

TRANSPORTS = ("ipc", "tcp")
VARIANTS = {
    "pynng_sync": "pynng.Pair1 send/recv (blocking)",
    "hotline_ask": "consensus.hotline ask, async on_ask echo (trio)",
}
GOAL = 1.5  # hotline ask median / pynng sync median
BLOCK_WARMUP = 10  # untimed round trips at the start of every block
BUSY_WARNING = 0.15


def _address(transport: str, variant: str, tmpdir: str) -> str:
    if transport == "ipc":
        return f"ipc://{tmpdir}/{variant}.ipc"
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    raise ValueError(f"unknown transport {transport!r}")


async def _measure_transport(
    transport: str, n: int, warmup: int, block: int, tmpdir: str
) -> dict[str, list[int]]:
    children: list[Any] = []
    sync = PynngSyncClient()
    async with AsyncExitStack() as stack:
        try:
            children.append(EchoChild("pynng_sync", sync.open(_address(transport, "pynng_sync", tmpdir))))
            hot = HotlineClient()
            children.append(HotlineEchoChild(await hot.open(stack, _address(transport, "hotline", tmpdir))))
            clients: list[Any] = [sync, hot]
            with trio.fail_after(CONNECT_TIMEOUT_S):
                for client, child in zip(clients, children):
                    while not client.connected():
                        child.check_alive()
                        await trio.sleep(0.02)
            for client in clients:
                await client.roundtrips(warmup, None)
            samples: dict[str, list[int]] = {client.key: [] for client in clients}
            rounds = -(-n // block)
            for r in range(rounds):
                count = min(block, n - r * block)
                shift = r % len(clients)
                for client in clients[shift:] + clients[:shift]:
                    await client.roundtrips(BLOCK_WARMUP, None)
                    await client.roundtrips(count, samples[client.key])
            for client, child in zip(clients, children):
                await client.send_stop()
                child.stop_sent = True
            return samples
        finally:
            for child in children:
                child.stop()
            sync.close()


def measure(transports: list[str], n: int, warmup: int, block: int) -> list[dict[str, Any]]:
    results = []
    tmpdir = tempfile.mkdtemp(prefix="nng-bench-")
    try:
        for transport in transports:
            print(f"  {transport}: {', '.join(VARIANTS)} ...", end="", flush=True, file=sys.stderr)
            started = time.perf_counter()
            samples = trio.run(_measure_transport, transport, n, warmup, block, tmpdir)
            print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr)
            for key in VARIANTS:
                results.append({"transport": transport, "variant": key, **summarize_ns(samples[key])})
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return results


def compute_ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    ratios: dict[str, Any] = {
        "basis": "median_us",
        "goal": {"name": "hotline_over_sync", "op": "<=", "target": GOAL},
    }
    for transport in dict.fromkeys(r["transport"] for r in results):
        by = {r["variant"]: r for r in results if r["transport"] == transport}
        ratio = by["hotline_ask"]["median_us"] / by["pynng_sync"]["median_us"]
        p99_ratio = by["hotline_ask"]["p99_us"] / by["pynng_sync"]["p99_us"]
        ratios[transport] = {
            "hotline_over_sync": round(ratio, 3),
            "hotline_over_sync_p99": round(p99_ratio, 3),
            "met": ratio <= GOAL,
        }
    return ratios


def render(results: list[dict[str, Any]], ratios: dict[str, Any]) -> str:
    rows = []
    for transport in dict.fromkeys(r["transport"] for r in results):
        by = {r["variant"]: r for r in results if r["transport"] == transport}
        s, h = by["pynng_sync"], by["hotline_ask"]
        rows.append(
            (
                transport,
                f"{s['median_us']:.1f}",
                f"{s['p99_us']:.1f}",
                f"{h['median_us']:.1f}",
                f"{h['p99_us']:.1f}",
                f"{ratios[transport]['hotline_over_sync']:.2f}",
                f"{ratios[transport]['hotline_over_sync_p99']:.2f}",
                s["n"],
            )
        )
    table = format_table(
        (
            "transport",
            "pynng sync median µs",
            "sync p99 µs",
            "hotline ask median µs",
            "ask p99 µs",
            "ratio hotline/sync",
            "p99 ratio",
            "n",
        ),
        rows,
        left=1,
    )
    lines = [table, ""]
    for transport in dict.fromkeys(r["transport"] for r in results):
        entry = ratios[transport]
        lines.append(
            f"{transport}: goal: hotline ask within {GOAL}x of pynng sync Pair round trip: "
            f"{entry['hotline_over_sync']:.2f} -> {'met' if entry['met'] else 'not met'} "
            f"(p99: {entry['hotline_over_sync_p99']:.2f})"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hotline_rtt",
        description="64-byte hotline ask/reply between two processes vs. pynng sync Pair1 round trip.",
    )
    parser.add_argument("--n", type=int, default=None, help="timed round trips per variant (default 3000)")
    parser.add_argument("--quick", action="store_true", help="N=1000 (unless --n is given)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed round trips first (default 200)")
    parser.add_argument("--block", type=int, default=100, help="timed round trips per block (default 100)")
    parser.add_argument(
        "--transport",
        dest="transports",
        action="append",
        choices=TRANSPORTS,
        help="measure only this transport (repeatable; default: ipc and tcp)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "hotline_rtt.json",
        help="where to write the JSON report (default bench/results/hotline_rtt.json)",
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if the goal is not met")
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 1000 if args.quick else 3000
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.block < 1:
        parser.error("--block must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transports = args.transports or list(TRANSPORTS)
    print(f"hotline_rtt: {len(PAYLOAD)}-byte round trips, n={args.n}, warmup={args.warmup}", file=sys.stderr)
    machine = machine_info()
    machine["cpu_busy_before"] = cpu_busy_fraction()
    started = time.perf_counter()
    results = measure(transports, args.n, args.warmup, args.block)
    ratios = compute_ratios(results)
    machine["cpu_busy_after"] = cpu_busy_fraction()
    busy = [b for b in (machine["cpu_busy_before"], machine["cpu_busy_after"]) if b is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(
            f"warning: other processes kept the CPUs {max(busy):.0%} busy around this run; the numbers "
            "are skewed. Rerun on an idle machine to compare ratios.",
            file=sys.stderr,
        )
    report = {
        "benchmark": "hotline_rtt",
        "machine": machine,
        "params": {
            "n": args.n,
            "warmup": args.warmup,
            "block": args.block,
            "block_warmup": BLOCK_WARMUP,
            "schedule": "per transport, both variants connected at once; timed blocks of `block` round trips "
            "interleaved in rotating order, each block preceded by `block_warmup` untimed ones",
            "payload_bytes": len(PAYLOAD),
            "transports": transports,
            "variants": VARIANTS,
            "tcp_host": "127.0.0.1",
            "echo_process": "multiprocessing spawn; pynng sync echo from bench._pair_peers, "
            "hotline echo dials with an async on_ask returning the value",
            "roles": "measuring side listens, echo child (one per variant) dials",
            "clock": "time.perf_counter_ns per round trip (send + receive / ask)",
            "gc": "enabled",
            "elapsed_s": round(time.perf_counter() - started, 2),
        },
        "results": results,
        "ratios": ratios,
    }
    path = write_json(args.json, report)
    print()
    print(f"hotline_rtt: {len(PAYLOAD)}-byte round trip, two processes, n={args.n} per row")
    print(f"machine: {describe_machine(machine)}")
    print()
    print(render(results, ratios))
    print(f"\nJSON written to {path}")
    if args.check and not all(ratios[t]["met"] for t in transports):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
