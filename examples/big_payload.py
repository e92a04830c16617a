"""Two agents exchange a large numpy array: inline, through shared memory, then zero-copy.

    python examples/big_payload.py [--mib 256]

"lidar" (a separate OS process, started with "spawn": NNG is not fork-safe) produces
a point cloud of float32 values and sends it to "planner" (this process) over
``patterns.Pair`` on ipc, three times:

1. inline: ``shared_memory=False``: the bytes travel through the socket, copied on
   the way (encoded, queued, received, decoded);
2. shared memory: the default for peers on this host: ``send({"cloud": array})``
   copies the array into a shared-memory segment once and sends a small reference; the
   planner receives a read-only memoryview over that memory;
3. zero-copy producer: lidar allocates ``patterns.shared_buffer(size)``, numpy writes the
   cloud straight into it, and sending it copies nothing.

Each delivery is timed from just before lidar's ``send`` (its CLOCK_MONOTONIC reading
travels in the message; on Linux both processes share that clock) until the planner
holds the array. The planner then checks the CRC-32 of what arrived against the one
lidar computed. The same seed makes the same cloud in every mode.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import trio

import patterns

MiB = 1024 * 1024
MODES = {
    "inline": "inline (shared_memory=False)",
    "shared": "shared memory (default)",
    "zero_copy": "zero-copy producer (shared_buffer)",
}
SEED = 2026
CONNECT_TIMEOUT_S = 30.0


def lidar_main(addresses: dict[str, str], size: int) -> None:
    """The producing agent: for each mode, dial, wait to be asked, send the cloud, wait for the ack."""

    async def run() -> None:
        cloud = np.random.default_rng(SEED).random(size // 4, dtype=np.float32)
        crc = zlib.crc32(cloud)
        for mode, address in addresses.items():
            async with patterns.Pair(dial=address, name="lidar", max_message_size=size + MiB,
                                     shared_memory=mode != "inline") as line:  # fmt: skip
                request = await line.receive()
                assert request == {"send": mode}, request
                payload: Any = cloud
                if mode == "zero_copy":
                    buf = patterns.shared_buffer(size)  # the space is reserved here
                    points = np.frombuffer(buf.view, dtype=np.float32)
                    np.random.default_rng(SEED).random(out=points, dtype=np.float32)  # filled in place
                    crc = zlib.crc32(points)
                    del points  # nothing may borrow the view once the buffer is handed over
                    payload = buf
                await line.send({"cloud": payload, "crc": crc, "sent_at": time.monotonic_ns()})
                await line.receive()  # the planner has it: hang up

    trio.run(run)


async def planner(addresses: dict[str, str], size: int, proc: Any) -> list[dict[str, Any]]:
    results = []
    async with contextlib.AsyncExitStack() as stack:
        lines = {}
        for mode, address in addresses.items():
            line = patterns.Pair(listen=address, name="planner", max_message_size=size + MiB,
                                 shared_memory=mode != "inline")  # fmt: skip
            lines[mode] = await stack.enter_async_context(line)
        proc.start()
        for mode, line in lines.items():
            with trio.fail_after(CONNECT_TIMEOUT_S):
                await line.wait_for_peers(1)
            await line.send({"send": mode})
            body = await line.receive()
            arrived = time.monotonic_ns()
            cloud = body["cloud"]
            points = np.frombuffer(cloud, dtype=np.float32)  # no copy: a view of what arrived
            results.append({
                "mode": mode,
                "delivered_ms": (arrived - body["sent_at"]) / 1e6,
                "received_as": "read-only memoryview" if isinstance(cloud, memoryview) else type(cloud).__name__,
                "values": len(points),
                "mean": float(points.mean(dtype=np.float64)),
                "crc_sent": body["crc"],
                "crc_received": zlib.crc32(cloud),
            })  # fmt: skip
            del points, cloud, body  # a shared-memory view: the segment goes with it
            await line.send({"thanks": True})
    return results


def report(results: list[dict[str, Any]], size: int) -> None:
    print(f"{'mode':<36} {'delivered':>12}  {'received as':<24} {'CRC-32 sent / received':<26} mean")
    for r in results:
        crcs = f"{r['crc_sent']:08x} / {r['crc_received']:08x}"
        print(f"{MODES[r['mode']]:<36} {r['delivered_ms']:9.1f} ms  {r['received_as']:<24} {crcs:<26} "
              f"{r['mean']:.4f}")  # fmt: skip
    by_mode = {r["mode"]: r for r in results}
    inline = by_mode["inline"]["delivered_ms"]
    print()
    for mode in ("shared", "zero_copy"):
        took = by_mode[mode]["delivered_ms"]
        speed = size / (took / 1e3) / 1e9
        print(f"speed-up over inline: {MODES[mode]}: {inline / took:.1f}x ({speed:.1f} GB/s effective)")
    equal = all(r["crc_sent"] == r["crc_received"] for r in results)
    same = len({r["crc_received"] for r in results}) == 1
    print(f"checksums equal in all three modes: {'yes' if equal else 'NO'}"
          f"{' (the same cloud each time)' if same else ''}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the array in MiB (default 256)")
    args = parser.parse_args()
    if args.mib < 1:
        parser.error("--mib must be at least 1")
    size = args.mib * MiB
    folder = tempfile.mkdtemp(prefix="nngc-big-")
    addresses = {mode: f"ipc://{folder}/{mode}" for mode in MODES}
    print(f"lidar sends planner a point cloud of {size // 4:,} float32 values ({args.mib} MiB) over ipc")
    proc = multiprocessing.get_context("spawn").Process(
        target=lidar_main, args=(addresses, size), daemon=True
    )
    try:
        results = trio.run(planner, addresses, size, proc)
        proc.join(timeout=10)
        print()
        report(results, size)
    finally:
        if proc.pid is not None:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)
    if proc.exitcode != 0:
        sys.exit(f"lidar exited with {proc.exitcode}")


if __name__ == "__main__":
    main()
