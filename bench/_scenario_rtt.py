"""The suite's round-trip scenario: ``patterns.Pair`` and hotline ask beside pynng's sync Pair1.

Per transport (inproc, ipc, tcp, ws, tls+tcp) every variant is connected at once and
timed in interleaved blocks, as ``bench.pair_rtt`` and ``bench.hotline_rtt`` do, at each
payload size (64 B, 4 KiB, 1 MiB). The clients and echo ends are theirs
(:mod:`bench._pair_peers`, :mod:`bench._hotline_peers`): the measuring side listens, the
echo side dials from a spawned process, except on inproc, which only works inside one
process: there the echo side is a thread (pynng sync) or a task in the same trio loop.
tls+tcp uses a throw-away self-signed certificate (:mod:`bench._tls`).

Payloads of 1 MiB or more travel through shared memory by default on inproc, ipc and
same-host tcp (``patterns.Pair`` with CBOR values, hotlines); pynng and the raw paths
copy them through the socket.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from ._common import median, percentile
from ._hotline_peers import HotlineClient, HotlineEchoChild, echo_hotline
from ._pair_peers import ASYNC_ECHOES, CLIENTS, CONNECT_TIMEOUT_S, EchoChild, _echo_pynng_sync
from ._schema import TOOLKIT, Metric, Skip
from ._tls import make_self_signed

__all__ = ["SIZES", "TRANSPORTS", "VARIANTS", "measure_transport"]

TRANSPORTS = ("inproc", "ipc", "tcp", "ws", "tls+tcp")
SIZES = (64, 4096, 1 << 20)
# key -> (system, variant as reported); the quick run measures the first three
VARIANTS: dict[str, tuple[str, str]] = {
    "pynng_sync": ("pynng", "Pair1 sync"),
    "patterns_cbor": (TOOLKIT, "Pair"),
    "hotline_ask": (TOOLKIT, "hotline ask"),
    "pynng_trio": ("pynng", "Pair1 trio"),
    "patterns_bytes": (TOOLKIT, "Pair bytes"),
}
QUICK_VARIANTS = ("pynng_sync", "patterns_cbor", "hotline_ask")
TRANSPORT_TIMEOUT_S = (
    240.0  # one transport, every variant and size: a hang fails the transport, not the suite
)
_inproc_names = itertools.count()


def counts(size: int, quick: bool) -> tuple[int, int, int]:
    """(warm-up, timed round trips, block) per variant at ``size``."""
    if size >= 1 << 20:
        return (10, 100, 20) if quick else (20, 300, 50)
    return (100, 1000, 100) if quick else (200, 3000, 100)


def make_payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def _address(transport: str, key: str, folder: str) -> str:
    if transport == "inproc":
        return f"inproc://nngc-bench-rtt-{os.getpid()}-{key}-{next(_inproc_names)}"
    if transport == "ipc":
        return f"ipc://{folder}/{key}.ipc"
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    if transport == "ws":
        return f"ws://127.0.0.1:0/{key}"
    if transport == "tls+tcp":
        return "tls+tcp://127.0.0.1:0"
    raise ValueError(f"unknown transport {transport!r}")


class _LocalEcho:
    """An inproc echo end in this process: a thread (pynng sync) or a task in the trio loop."""

    def __init__(self, key: str, address: str, nursery: trio.Nursery) -> None:
        self.key = key
        self.stop_sent = False
        self.thread: threading.Thread | None = None
        if key == "pynng_sync":
            self.thread = threading.Thread(target=_echo_pynng_sync, args=(address,), daemon=True)
            self.thread.start()
        elif key == "hotline_ask":
            nursery.start_soon(echo_hotline, address)
        else:
            nursery.start_soon(ASYNC_ECHOES[key], address)

    def check_alive(self) -> None:
        if self.thread is not None and not self.thread.is_alive():
            raise RuntimeError(f"inproc echo thread for {self.key} ended early")

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.join(5.0 if self.stop_sent else 0.1)


async def _measure(
    transport: str, keys: list[str], sizes: list[int], quick: bool, folder: str, tls: dict[str, str] | None
) -> dict[tuple[str, int], list[int]]:
    samples: dict[tuple[str, int], list[int]] = {(key, size): [] for key in keys for size in sizes}
    clients: list[Any] = []
    echoes: list[Any] = []
    async with trio.open_nursery() as nursery:
        async with AsyncExitStack() as stack:
            try:
                for key in keys:
                    address = _address(transport, key, folder)
                    if key == "hotline_ask":
                        client: Any = HotlineClient()
                        bound = await client.open(stack, address, tls)
                    else:
                        client = CLIENTS[key]()
                        bound = client.open(address, tls)
                    clients.append(client)
                    if transport == "inproc":
                        echoes.append(_LocalEcho(key, bound, nursery))
                    elif key == "hotline_ask":
                        echoes.append(HotlineEchoChild(bound, tls))
                    else:
                        echoes.append(EchoChild(key, bound, tls))
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    for client, echo in zip(clients, echoes):
                        while not client.connected():
                            echo.check_alive()
                            await trio.sleep(0.01)
                for size in sizes:
                    payload = make_payload(size)
                    warmup, n, block = counts(size, quick)
                    for client in clients:
                        client.payload = payload
                        await client.roundtrips(warmup, None)
                    rounds = -(-n // block)
                    for r in range(rounds):
                        count = min(block, n - r * block)
                        shift = r % len(clients)  # rotate: drift of a shared machine hits every variant alike
                        for client in clients[shift:] + clients[:shift]:
                            await client.roundtrips(max(2, warmup // 10), None)
                            await client.roundtrips(count, samples[(client.key, size)])
                for client, echo in zip(clients, echoes):
                    await client.send_stop()
                    echo.stop_sent = True
            finally:
                for echo in echoes:
                    echo.stop()
                for client in clients:
                    if not isinstance(client, HotlineClient):
                        client.close()
        nursery.cancel_scope.cancel()
    return samples


def measure_transport(
    transport: str, quick: bool, sizes: tuple[int, ...] | None = None
) -> list[Metric | Skip]:
    """Round trips over one transport for every variant and size; Metric rows (or a Skip)."""
    keys = list(QUICK_VARIANTS if quick else VARIANTS)
    sizes = sizes or SIZES
    with tempfile.TemporaryDirectory(prefix="nngc-bench-rtt-") as folder:
        tls = None
        if transport == "tls+tcp":
            tls = make_self_signed(Path(folder))
            if tls is None:
                return [
                    Skip("rtt", TOOLKIT, "tls+tcp", "cryptography not installed: pip install cryptography")
                ]

        async def run() -> dict[tuple[str, int], list[int]]:
            with trio.fail_after(TRANSPORT_TIMEOUT_S):
                return await _measure(transport, keys, list(sizes), quick, folder, tls)

        samples = trio.run(run)
    out: list[Metric | Skip] = []
    for key in keys:
        system, variant = VARIANTS[key]
        for size in sizes:
            us = [s / 1000.0 for s in samples[(key, size)]]
            for name, value in (("rtt_median_us", median(us)), ("rtt_p99_us", percentile(us, 99.0))):
                out.append(Metric("rtt", system, variant, transport, size, 1, name, round(value, 2), "us"))
    return out
