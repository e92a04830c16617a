"""PAIR round-trip latency between two processes: raw pynng vs. the patterns layer.

One run measures a 64-byte round trip over ipc and over tcp (127.0.0.1) for:

* ``a``  ``pynng_sync``      -- ``pynng.Pair1`` blocking ``send``/``recv``
* ``b``  ``pynng_trio``      -- ``pynng.Pair1`` ``await asend``/``arecv`` under trio
* ``c``  ``patterns_bytes``  -- ``patterns.Pair`` ``send_bytes``/``receive_bytes`` under trio
* ``c2`` ``patterns_cbor``   -- ``patterns.Pair`` ``send``/``receive`` (CBOR envelope, 64-byte body)

The measuring side listens; the echo side is a separate process (``spawn``: NNG is
not fork-safe) that dials and echoes in the same style as the client. After a warm-up
each round trip is timed individually with ``time.perf_counter_ns``. The ratios
``c/a`` (goal <= 1.5) and ``b/c`` (goal >= 2.0) compare medians.

Measurements are interleaved: per transport all four client/echo pairs are connected at
once and timed in rotating blocks of ``--block`` round trips, so slow drift of a noisy
(virtual) machine hits every variant alike. Other load still matters, and not evenly:
on a busy machine blocked threads wake faster (no idle exit), which speeds up the
thread-handoff-bound sync client while the CPU-bound trio variants slow down. The run
therefore samples other CPU use before and after, records it and warns when it is high.

    python -m bench.pair_rtt            # N=3000 per variant and transport
    python -m bench.pair_rtt --quick    # N=1000
    python -m bench.pair_rtt --n 10000 --json /tmp/rtt.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
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
from ._pair_peers import CLIENTS, CONNECT_TIMEOUT_S, PAYLOAD, VARIANT_BY_KEY, VARIANTS, EchoChild

TRANSPORTS = ("ipc", "tcp")
BUSY_WARNING = 0.15  # warn when other work kept the CPUs busier than this around the run
BLOCK_WARMUP = 10  # untimed round trips at the start of every block (the echo child was idle)


def _address(transport: str, variant: str, tmpdir: str) -> str:
    if transport == "ipc":
        return f"ipc://{tmpdir}/{variant}.ipc"
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    raise ValueError(f"unknown transport {transport!r}")


async def _measure_transport(
    transport: str, variants: list[str], n: int, warmup: int, block: int, tmpdir: str
) -> dict[str, list[int]]:
    """All variants of one transport: open, connect, warm up, then interleaved timed blocks."""
    clients: list[Any] = []
    children: list[EchoChild] = []
    try:
        for key in variants:
            client = CLIENTS[key]()
            bound = client.open(_address(transport, key, tmpdir))
            clients.append(client)
            children.append(EchoChild(key, bound))
        with trio.fail_after(CONNECT_TIMEOUT_S):
            for client, child in zip(clients, children):
                while not client.connected():
                    child.check_alive()
                    await trio.sleep(0.02)
        for client in clients:
            await client.roundtrips(warmup, None)
        samples: dict[str, list[int]] = {key: [] for key in variants}
        rounds = -(-n // block)
        for r in range(rounds):
            count = min(block, n - r * block)
            shift = r % len(clients)  # rotate the order so no variant always follows the same one
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
        for client in clients:
            client.close()


def measure(
    transports: list[str], variants: list[str], n: int, warmup: int, block: int
) -> list[dict[str, Any]]:
    results = []
    tmpdir = tempfile.mkdtemp(prefix="nng-bench-")
    try:
        for transport in transports:
            print(f"  {transport}: {', '.join(variants)} ...", end="", flush=True, file=sys.stderr)
            started = time.perf_counter()
            samples = trio.run(_measure_transport, transport, variants, n, warmup, block, tmpdir)
            print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr)
            for key in variants:
                label = VARIANT_BY_KEY[key].label
                results.append(
                    {"transport": transport, "variant": key, "label": label, **summarize_ns(samples[key])}
                )
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return results


GOALS = {"c_over_a": ("<=", 1.5), "b_over_c": (">=", 2.0)}


def compute_ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    ratios: dict[str, Any] = {
        "basis": "median_us",
        "goals": {name: {"op": op, "target": target} for name, (op, target) in GOALS.items()},
    }
    for transport in dict.fromkeys(r["transport"] for r in results):
        med = {r["label"]: r["median_us"] for r in results if r["transport"] == transport}
        entry: dict[str, Any] = {}
        for name, num, den in (
            ("c_over_a", "c", "a"),
            ("b_over_c", "b", "c"),
            ("c2_over_a", "c2", "a"),
            ("c2_over_c", "c2", "c"),
            ("b_over_a", "b", "a"),
        ):
            if num in med and den in med and med[den] > 0:
                entry[name] = round(med[num] / med[den], 3)
        for name, (op, target) in GOALS.items():
            if name in entry:
                entry[f"{name}_met"] = entry[name] <= target if op == "<=" else entry[name] >= target
        ratios[transport] = entry
    return ratios


def render(results: list[dict[str, Any]], ratios: dict[str, Any]) -> str:
    rows = [
        (
            r["transport"],
            r["label"],
            r["variant"],
            VARIANT_BY_KEY[r["variant"]].description,
            f"{r['median_us']:.1f}",
            f"{r['p99_us']:.1f}",
            f"{r['mean_us']:.1f}",
            r["n"],
        )
        for r in results
    ]
    table = format_table(
        ("transport", "", "variant", "client / echo style", "median µs", "p99 µs", "mean µs", "n"),
        rows,
        left=4,
    )
    lines = [table, "", "ratios of medians:"]
    for transport in TRANSPORTS:
        entry = ratios.get(transport)
        if not entry:
            continue
        parts = []
        for name in ("c_over_a", "b_over_c", "c2_over_a", "c2_over_c", "b_over_a"):
            if name not in entry:
                continue
            text = f"{name.replace('_over_', '/')} = {entry[name]:.2f}"
            if name in GOALS:
                op, target = GOALS[name]
                text += f" (goal {op} {target}: {'met' if entry[f'{name}_met'] else 'NOT met'})"
            parts.append(text)
        lines.append(f"  {transport}: " + ", ".join(parts))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pair_rtt",
        description="64-byte PAIR round trip between two processes: pynng sync/async vs. patterns.Pair.",
    )
    parser.add_argument("--n", type=int, default=None, help="timed round trips per variant (default 3000)")
    parser.add_argument("--quick", action="store_true", help="N=1000 (unless --n is given)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed round trips first (default 200)")
    parser.add_argument(
        "--block",
        type=int,
        default=100,
        help="timed round trips per variant before switching to the next one (default 100)",
    )
    parser.add_argument(
        "--transport",
        dest="transports",
        action="append",
        choices=TRANSPORTS,
        help="measure only this transport (repeatable; default: ipc and tcp)",
    )
    parser.add_argument(
        "--variant",
        dest="variants",
        action="append",
        choices=[v.key for v in VARIANTS],
        help="measure only this variant (repeatable; default: all four)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / "pair_rtt.json",
        help="where to write the JSON report (default bench/results/pair_rtt.json)",
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a ratio goal is not met")
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
    variants = args.variants or [v.key for v in VARIANTS]
    print(f"pair_rtt: {len(PAYLOAD)}-byte round trips, n={args.n}, warmup={args.warmup}", file=sys.stderr)
    machine = machine_info()
    # Other work on the machine skews this benchmark a lot (see the module docstring), so
    # sample how busy the CPUs are just before and just after measuring.
    machine["cpu_busy_before"] = cpu_busy_fraction()
    started = time.perf_counter()
    results = measure(transports, variants, args.n, args.warmup, args.block)
    ratios = compute_ratios(results)
    machine["cpu_busy_after"] = cpu_busy_fraction()
    busy = [b for b in (machine["cpu_busy_before"], machine["cpu_busy_after"]) if b is not None]
    if busy and max(busy) > BUSY_WARNING:
        print(
            f"warning: other processes kept the CPUs {max(busy):.0%} busy around this run; the numbers "
            "are skewed (a busy machine wakes blocked threads faster, so (a) gets faster while the "
            "Python-heavy trio variants get slower). Rerun on an idle machine to compare ratios.",
            file=sys.stderr,
        )
    report = {
        "benchmark": "pair_rtt",
        "machine": machine,
        "params": {
            "n": args.n,
            "warmup": args.warmup,
            "block": args.block,
            "block_warmup": BLOCK_WARMUP,
            "schedule": "per transport, all variants connected at once; timed blocks of `block` round trips "
            "interleaved across variants in rotating order, each block preceded by `block_warmup` untimed ones",
            "payload_bytes": len(PAYLOAD),
            "transports": transports,
            "variants": {key: VARIANT_BY_KEY[key].description for key in variants},
            "tcp_host": "127.0.0.1",
            "echo_process": "multiprocessing spawn; echo side uses the same style as the client",
            "roles": "client listens, echo child (one per variant) dials",
            "clock": "time.perf_counter_ns per round trip (send + receive)",
            "gc": "enabled",
            "elapsed_s": round(time.perf_counter() - started, 2),
        },
        "results": results,
        "ratios": ratios,
    }
    path = write_json(args.json, report)
    print()
    print(f"pair_rtt: {len(PAYLOAD)}-byte PAIR round trip, two processes, n={args.n} per row")
    print(f"machine: {describe_machine(machine)}")
    print()
    print(render(results, ratios))
    print(f"\nJSON written to {path}")
    if args.check:
        unmet = [
            f"{t}:{name}"
            for t in transports
            for name in GOALS
            if ratios.get(t, {}).get(f"{name}_met") is False
        ]
        if unmet:
            print(f"goals not met: {', '.join(unmet)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
