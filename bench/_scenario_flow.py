"""The suite's one-way throughput scenario: ``patterns.Push`` to ``patterns.Pull`` beside raw pynng.

The pusher listens in this process; one spawned child dials with a puller and counts
what arrives. After a warm-up (the child reports when it has it all), the clock runs
from the first timed send to the child's last receive (``time.monotonic_ns``: one
clock for every process on Linux); msgs/s and MB/s (10^6 bytes) follow from the count
and the payload size. Rows:

* ``Push/Pull``: ``await push.send(payload)`` / ``await pull.receive()`` (the CBOR
  envelope; 1 MiB payloads go through shared memory by default on ipc and same-host tcp);
* ``Push0/Pull0 sync`` (pynng): blocking ``send`` / ``recv`` of bare frames, the NNG reference;
* ``Push0/Pull0 trio floor`` (pynng): the floor of any trio + NNG program, bare frames with
  ``send(block=False)`` / ``recv(block=False)`` and, on ``TryAgain``, ``trio.lowlevel.wait_readable``
  on the socket's send / receive descriptor (NNG makes both readable when it is ready), nothing else.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import pynng
import trio

import patterns

from ._children import Child, Conn
from ._rtt_ends import resolve_pynng
from ._schema import TOOLKIT, Metric, Skip

__all__ = ["FLOOR_VARIANT", "SIZES", "TRANSPORTS", "measure_transport"]

TRANSPORTS = ("ipc", "tcp")
SIZES = (64, 4096, 1 << 20)
STEP_TIMEOUT_S = 60.0  # child start-up, connect, one phase's messages
IO_TIMEOUT_MS = 60_000
FLOOR_VARIANT = "Push0/Pull0 trio floor"
STYLES = {"toolkit": (TOOLKIT, "Push/Pull"), "pynng": ("pynng", "Push0/Pull0 sync"), "floor": ("pynng", FLOOR_VARIANT)}


def counts(size: int, quick: bool) -> tuple[int, int]:
    """(warm-up, timed) messages at ``size``."""
    if size >= 1 << 20:
        return (20, 200) if quick else (50, 500)
    return (1000, 10000) if quick else (2000, 30000)


# ===================================================================== the puller (child)
async def _pull_toolkit(conn: Conn, address: str, warmup: int, n: int, size: int) -> dict[str, Any]:
    wrong = 0
    async with patterns.Pull(dial=address, name="puller") as pull:
        with trio.fail_after(STEP_TIMEOUT_S):
            await pull.wait_for_peers(1)
        conn.send(("ready", None))
        with trio.fail_after(STEP_TIMEOUT_S):
            for _ in range(warmup):
                body = await pull.receive()
                wrong += len(body) != size
            conn.send(("warm", None))
            for _ in range(n):
                body = await pull.receive()
                if len(body) != size:
                    wrong += 1
                if isinstance(body, memoryview):
                    body.release()  # a shared-memory view: its segment goes now
            last = time.monotonic_ns()
    return {"last_ns": last, "wrong_size": wrong}


async def _pull_floor(conn: Conn, address: str, warmup: int, n: int, size: int) -> dict[str, Any]:
    wrong = 0
    with pynng.Pull0() as sock, trio.fail_after(STEP_TIMEOUT_S):
        sock.dial(address, block=True)
        fd, wait, again = sock.recv_fd, trio.lowlevel.wait_readable, pynng.TryAgain
        conn.send(("ready", None))
        for count in (warmup, n):
            for _ in range(count):
                while True:
                    try:
                        body = sock.recv(block=False)
                        break
                    except again:
                        await wait(fd)
                if len(body) != size:
                    wrong += 1
            if count is warmup:
                conn.send(("warm", None))
        last = time.monotonic_ns()
    return {"last_ns": last, "wrong_size": wrong}


def pull(conn: Conn, style: str, address: str, warmup: int, n: int, size: int) -> dict[str, Any]:
    """The puller's job: receive ``warmup`` then ``n`` messages; when the last one arrived."""
    if style == "toolkit":
        return trio.run(_pull_toolkit, conn, address, warmup, n, size)
    if style == "floor":
        return trio.run(_pull_floor, conn, address, warmup, n, size)
    wrong = 0
    with pynng.Pull0(recv_timeout=IO_TIMEOUT_MS) as sock:
        sock.dial(address, block=True)
        conn.send(("ready", None))
        for _ in range(warmup):
            wrong += len(sock.recv()) != size
        conn.send(("warm", None))
        for _ in range(n):
            if len(sock.recv()) != size:
                wrong += 1
        last = time.monotonic_ns()
    return {"last_ns": last, "wrong_size": wrong}


# ===================================================================== the pusher (parent)
def _address(transport: str, folder: str, tag: str) -> str:
    return f"ipc://{folder}/{tag}.ipc" if transport == "ipc" else "tcp://127.0.0.1:0"


async def _push_toolkit(child: Child, address: str, payload: bytes, warmup: int, n: int) -> tuple[int, Any]:
    async with patterns.Push(listen=address, name="pusher") as push:
        child.start(pull, "toolkit", push.addresses[0], warmup, n, len(payload))
        await child.areceive("ready", STEP_TIMEOUT_S)
        with trio.fail_after(STEP_TIMEOUT_S):
            await push.wait_for_peers(1)
            for _ in range(warmup):
                await push.send(payload)
        await child.areceive("warm", STEP_TIMEOUT_S)
        t0 = time.monotonic_ns()
        with trio.fail_after(STEP_TIMEOUT_S):
            for _ in range(n):
                await push.send(payload)
        stats = await child.areceive("done", STEP_TIMEOUT_S)
    return t0, stats


def _push_pynng(child: Child, address: str, payload: bytes, warmup: int, n: int) -> tuple[int, Any]:
    with pynng.Push0(send_timeout=IO_TIMEOUT_MS) as sock:
        bound = resolve_pynng(address, sock.listen(address))
        child.start(pull, "pynng", bound, warmup, n, len(payload))
        child.receive("ready", STEP_TIMEOUT_S)
        for _ in range(warmup):
            sock.send(payload)
        child.receive("warm", STEP_TIMEOUT_S)
        t0 = time.monotonic_ns()
        for _ in range(n):
            sock.send(payload)
        stats = child.receive("done", STEP_TIMEOUT_S)
    return t0, stats


async def _push_floor(child: Child, address: str, payload: bytes, warmup: int, n: int) -> tuple[int, Any]:
    with pynng.Push0() as sock:
        bound = resolve_pynng(address, sock.listen(address))
        child.start(pull, "floor", bound, warmup, n, len(payload))
        await child.areceive("ready", STEP_TIMEOUT_S)
        fd, wait, again = sock.send_fd, trio.lowlevel.wait_readable, pynng.TryAgain  # NNG: readable = can send
        t0 = 0
        for count in (warmup, n):
            with trio.fail_after(STEP_TIMEOUT_S):
                for _ in range(count):
                    while True:
                        try:
                            sock.send(payload, block=False)
                            break
                        except again:
                            await wait(fd)
            if count is warmup:
                await child.areceive("warm", STEP_TIMEOUT_S)
                t0 = time.monotonic_ns()
        stats = await child.areceive("done", STEP_TIMEOUT_S)
    return t0, stats


def measure_transport(
    transport: str, quick: bool, sizes: tuple[int, ...] | None = None
) -> list[Metric | Skip]:
    """msgs/s and MB/s of both styles at every size over ``transport`` (styles interleaved per size)."""
    out: list[Metric | Skip] = []
    with tempfile.TemporaryDirectory(prefix="nngc-bench-flow-") as folder:
        child = Child("flow-puller")
        try:
            for size in sizes or SIZES:
                payload = (bytes(range(256)) * (size // 256 + 1))[:size]
                warmup, n = counts(size, quick)
                for style, (system, variant) in STYLES.items():
                    address = _address(transport, folder, f"{style}-{size}")
                    if style == "toolkit":
                        t0, stats = trio.run(_push_toolkit, child, address, payload, warmup, n)
                    elif style == "floor":
                        t0, stats = trio.run(_push_floor, child, address, payload, warmup, n)
                    else:
                        t0, stats = _push_pynng(child, address, payload, warmup, n)
                    if stats["wrong_size"]:
                        raise RuntimeError(
                            f"{style} {transport} {size} B: {stats['wrong_size']} of the wrong size"
                        )
                    seconds = (stats["last_ns"] - t0) / 1e9
                    out += [
                        Metric("throughput", system, variant, transport, size, 1, "msgs_per_s",
                               round(n / seconds, 1), "msgs/s", higher_is_better=True),
                        Metric("throughput", system, variant, transport, size, 1, "mb_per_s",
                               round(n * size / seconds / 1e6, 2), "MB/s", higher_is_better=True),
                    ]  # fmt: skip
        finally:
            child.stop()
    return out
