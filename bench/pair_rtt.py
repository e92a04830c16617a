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
import multiprocessing
import multiprocessing.process
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynng
import trio

import patterns

from ._common import (
    RESULTS_DIR,
    cpu_busy_fraction,
    describe_machine,
    format_table,
    machine_info,
    summarize_ns,
    write_json,
)

PAYLOAD = bytes(range(64))
STOP = b"stop"  # raw variants: a frame that is not 64 bytes long ends the echo loop
TRANSPORTS = ("ipc", "tcp")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    description: str


VARIANTS = (
    Variant("pynng_sync", "a", "pynng.Pair1 send/recv (blocking)"),
    Variant("pynng_trio", "b", "pynng.Pair1 await asend/arecv (trio)"),
    Variant("patterns_bytes", "c", "patterns.Pair send_bytes/receive_bytes (trio)"),
    Variant("patterns_cbor", "c2", "patterns.Pair send/receive, CBOR envelope (trio)"),
)
VARIANT_BY_KEY = {v.key: v for v in VARIANTS}

CONNECT_TIMEOUT_S = 20.0  # child start-up (a fresh interpreter importing trio and pynng) + connect
IO_TIMEOUT_MS = 10_000  # sync sockets: no single send/recv may hang longer than this
CHILD_LIFETIME_S = 120.0  # an orphaned echo child gives up after this long
JOIN_TIMEOUT_S = 5.0
BUSY_WARNING = 0.15  # warn when other work kept the CPUs busier than this around the run
BLOCK_WARMUP = 10  # untimed round trips at the start of every block (the echo child was idle)


# ===================================================================== echo side (child)
def _echo_pynng_sync(address: str) -> None:
    with pynng.Pair1(recv_timeout=int(CHILD_LIFETIME_S * 1000), send_timeout=IO_TIMEOUT_MS) as sock:
        sock.dial(address, block=True)
        while True:
            data = sock.recv()
            if len(data) != len(PAYLOAD):
                return
            sock.send(data)


async def _echo_pynng_trio(address: str) -> None:
    with pynng.Pair1() as sock:
        sock.dial(address, block=True)
        with trio.move_on_after(CHILD_LIFETIME_S):
            while True:
                data = await sock.arecv()
                if len(data) != len(PAYLOAD):
                    return
                await sock.asend(data)


async def _echo_patterns_bytes(address: str) -> None:
    async with patterns.Pair(dial=address) as line:
        with trio.move_on_after(CHILD_LIFETIME_S):
            while True:
                data = await line.receive_bytes()
                if len(data) != len(PAYLOAD):
                    return
                await line.send_bytes(data)


async def _echo_patterns_cbor(address: str) -> None:
    async with patterns.Pair(dial=address) as line:
        with trio.move_on_after(CHILD_LIFETIME_S):
            while True:
                value = await line.receive()
                if value is None:
                    return
                await line.send(value)


def _echo_main(variant: str, address: str) -> None:
    """Entry point of the spawned echo process."""
    if variant == "pynng_sync":
        _echo_pynng_sync(address)
    elif variant == "pynng_trio":
        trio.run(_echo_pynng_trio, address)
    elif variant == "patterns_bytes":
        trio.run(_echo_patterns_bytes, address)
    elif variant == "patterns_cbor":
        trio.run(_echo_patterns_cbor, address)
    else:
        raise SystemExit(f"unknown variant {variant!r}")


# ===================================================================== child management
class EchoChild:
    """A spawned echo process that is always reaped: join, then terminate, then kill."""

    def __init__(self, variant: str, address: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.process: multiprocessing.process.BaseProcess = ctx.Process(
            target=_echo_main, args=(variant, address), name=f"echo-{variant}", daemon=True
        )
        self.variant = variant
        self.stop_sent = False  # set once the stop frame went out: the child is expected to exit
        self.process.start()

    def check_alive(self) -> None:
        if not self.process.is_alive():
            raise RuntimeError(
                f"echo child for {self.variant} exited early (exit code {self.process.exitcode})"
            )

    def stop(self) -> None:
        proc = self.process
        proc.join(JOIN_TIMEOUT_S if self.stop_sent else 0.1)
        if proc.is_alive():
            proc.terminate()
            proc.join(JOIN_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(JOIN_TIMEOUT_S)
        if proc.exitcode not in (0, None) and self.stop_sent:
            print(f"warning: echo child for {self.variant} exited with {proc.exitcode}", file=sys.stderr)
        proc.close()


def _resolve_pynng(address: str, listener: Any) -> str:
    """The bound address of a pynng listener, with a tcp port 0 resolved."""
    if not address.startswith("tcp://") or not address.endswith(":0"):
        return address
    port = listener.local_address.port
    port = ((port & 0xFF) << 8) | (port >> 8)  # SockAddr.port is in network byte order
    return f"{address[:-2]}:{port}"


def _check_echo(reply: Any, variant: str) -> None:
    if reply != PAYLOAD:
        raise RuntimeError(f"{variant}: echo returned {reply!r:.80}, expected the 64-byte payload")


# ===================================================================== client side (parent)
# Each client owns one listening socket and times ``count`` round trips per call. The
# timed loops are written out per variant so that nothing but the I/O calls and the
# clock sits inside the measured window. All four live in one trio run so that their
# blocks can be interleaved; the sync client never touches trio (its blocking calls just
# run while the trio loop has nothing else to do).
class _PynngClient:
    key = ""

    def open(self, address: str) -> str:
        self.sock = pynng.Pair1(recv_timeout=IO_TIMEOUT_MS, send_timeout=IO_TIMEOUT_MS)
        self._connected = threading.Event()
        self.sock.add_post_pipe_connect_cb(lambda _pipe: self._connected.set())
        return _resolve_pynng(address, self.sock.listen(address))

    def connected(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        self.sock.close()


class PynngSyncClient(_PynngClient):
    key = "pynng_sync"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        sock, clock = self.sock, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            sock.send(PAYLOAD)
            reply = sock.recv()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != PAYLOAD:
                _check_echo(reply, self.key)

    async def send_stop(self) -> None:
        self.sock.send(STOP)


class PynngTrioClient(_PynngClient):
    key = "pynng_trio"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        sock, clock = self.sock, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await sock.asend(PAYLOAD)
            reply = await sock.arecv()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != PAYLOAD:
                _check_echo(reply, self.key)

    async def send_stop(self) -> None:
        await self.sock.asend(STOP)


class _PatternsClient:
    key = ""

    def open(self, address: str) -> str:
        self.line = patterns.Pair(listen=address)
        self.line.open()
        return self.line.addresses[0]

    def connected(self) -> bool:
        return bool(self.line.peers)

    def close(self) -> None:
        self.line.close()


class PatternsBytesClient(_PatternsClient):
    key = "patterns_bytes"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        line, clock = self.line, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await line.send_bytes(PAYLOAD)
            reply = await line.receive_bytes()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != PAYLOAD:
                _check_echo(reply, self.key)

    async def send_stop(self) -> None:
        await self.line.send_bytes(STOP)


class PatternsCborClient(_PatternsClient):
    key = "patterns_cbor"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        line, clock = self.line, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await line.send(PAYLOAD)
            reply = await line.receive()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != PAYLOAD:
                _check_echo(reply, self.key)

    async def send_stop(self) -> None:
        await self.line.send(None)


CLIENTS: dict[str, type[Any]] = {
    cls.key: cls for cls in (PynngSyncClient, PynngTrioClient, PatternsBytesClient, PatternsCborClient)
}


# ===================================================================== driver
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
