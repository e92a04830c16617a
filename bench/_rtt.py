"""Round trips, one request and its reply at a time: ``patterns.Pair`` and hotline ask beside pynng.

Used by the suite's ``rtt`` scenario (:func:`measure_transport`) and by
``bench.pair_rtt`` and ``bench.hotline_rtt`` (:func:`cli`). Variants:

* ``pynng_sync``: ``pynng.Pair1`` blocking ``send``/``recv``;
* ``pynng_trio``: ``pynng.Pair1`` ``await asend``/``arecv`` under trio;
* ``pynng_floor``: the floor of any trio + NNG program: ``pynng.Pair1`` ``recv(block=False)``,
  on ``TryAgain`` ``trio.lowlevel.wait_readable`` on its receive descriptor, ``send`` inline,
  nothing else (both ends); every toolkit row is also reported as a ratio to it;
* ``patterns_bytes``: ``patterns.Pair`` ``send_bytes``/``receive_bytes`` (bare frames);
* ``patterns_cbor``: ``patterns.Pair`` ``send``/``receive`` (the CBOR envelope);
* ``hotline_ask``: ``consensus.hotline`` ``await line.ask(value)``, answered by an async ``on_ask``;
* ``hotline_plain``: the same asks, answered by a plain (``def``) ``on_ask``;
* ``hotline_plain_trio``: the same, the answer handed back to trio to send (the path before
  ``consensus/hotline/threaded.py``: the reference for it).

The measuring side listens; the echo side (:mod:`bench._rtt_ends`) dials from a spawned
child in the same style as the client (on inproc, which only works inside one process, a
thread or a trio task here). Per transport every variant is connected at once and timed in interleaved blocks
in rotating order, each round trip alone (``time.perf_counter_ns``), so drift of a busy
machine hits every variant alike. The timed loops are written out per variant so that
nothing but the I/O calls and the clock sits inside the measured window. Payloads of
1 MiB or more travel through shared memory by default on inproc, ipc and same-host tcp
(``patterns.Pair`` with CBOR values, hotlines); pynng and the bare frames copy them.
tls+tcp uses a throw-away self-signed certificate (:mod:`bench._tls`).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pynng
import trio

import consensus
import patterns

from ._children import Child
from ._rtt_ends import (
    IO_TIMEOUT_MS,
    SECRET,
    STOP,
    LocalEcho,
    Tls,
    echo,
    make_payload,
    pynng_pair,
    resolve_pynng,
    server_tls,
)
from ._schema import TOOLKIT, Metric, Skip, median_p99
from ._tls import make_self_signed

__all__ = ["FLOOR_VARIANT", "SIZES", "TRANSPORTS", "VARIANTS", "make_payload", "measure", "measure_transport"]

FLOOR_VARIANT = "Pair1 trio floor"
PLAIN_HOTLINE = "plain-handler hotline ask"  # not "hotline ask ...": the async rows keep that prefix
SECRET_HOTLINE = "secret hotline ask"  # likewise
TRANSPORTS = ("inproc", "ipc", "tcp", "ws", "tls+tcp")
SIZES = (64, 4096, 1 << 20)
# key -> (system, variant in the suite, label in bench.pair_rtt, description); the quick suite runs three
VARIANTS: dict[str, tuple[str, str, str, str]] = {
    "pynng_sync": ("pynng", "Pair1 sync", "a", "pynng.Pair1 send/recv (blocking)"),
    "patterns_cbor": (TOOLKIT, "Pair", "c2", "patterns.Pair send/receive, CBOR envelope (trio)"),
    "hotline_ask": (TOOLKIT, "hotline ask", "h", "consensus.hotline ask, async on_ask echo (trio)"),
    "pynng_floor": ("pynng", FLOOR_VARIANT, "f",
                    "pynng.Pair1 recv(block=False) + trio wait_readable(recv_fd), send inline: the floor"),
    "hotline_plain": (TOOLKIT, PLAIN_HOTLINE, "hp", "consensus.hotline ask, plain (def) on_ask echo (trio)"),
    "hotline_plain_trio": (TOOLKIT, "old-path plain-handler ask", "ht",
                           "the same, the answer sent by trio after the handler thread woke it (the old path)"),
    "hotline_secret": (TOOLKIT, SECRET_HOTLINE, "hs", "consensus.hotline ask with secret=, async on_ask echo"),
    "pynng_trio": ("pynng", "Pair1 trio", "b", "pynng.Pair1 await asend/arecv (trio)"),
    "patterns_bytes": (TOOLKIT, "Pair bytes", "c", "patterns.Pair send_bytes/receive_bytes (trio)"),
}
QUICK_VARIANTS = ("pynng_sync", "pynng_floor", "patterns_cbor", "hotline_ask", "hotline_plain", "hotline_secret")
BENCH_ONLY = ("hotline_plain_trio",)  # a reference for bench.hotline_rtt, not a row of the suite
CONNECT_TIMEOUT_S = 20.0
ASK_TIMEOUT_S = 10.0
TRANSPORT_TIMEOUT_S = 240.0  # one transport, every variant and size: a hang fails the transport, not the suite
_inproc_names = itertools.count()


def _address(transport: str, key: str, folder: str) -> str:
    return {"inproc": f"inproc://nngc-bench-rtt-{os.getpid()}-{key}-{next(_inproc_names)}",
            "ipc": f"ipc://{folder}/{key}.ipc", "tcp": "tcp://127.0.0.1:0", "ws": f"ws://127.0.0.1:0/{key}",
            "tls+tcp": "tls+tcp://127.0.0.1:0"}[transport]  # fmt: skip


# ===================================================================== clients (here)
class _Client:
    """Listens on ``address``; :meth:`roundtrips` times ``count`` round trips with ``payload``."""

    key = ""
    payload: Any = make_payload(64)

    def check(self, reply: Any) -> None:
        if reply != self.payload:
            raise RuntimeError(f"{self.key}: echo returned {reply!r:.80}, expected the "
                               f"{len(self.payload)}-byte payload")  # fmt: skip


class _PynngClient(_Client):
    async def open(self, stack: AsyncExitStack, address: str, tls: Tls) -> str:
        self.sock = stack.enter_context(pynng_pair(server_tls(tls), recv_timeout=IO_TIMEOUT_MS,
                                                    send_timeout=IO_TIMEOUT_MS))  # fmt: skip
        self._connected = threading.Event()
        self.sock.add_post_pipe_connect_cb(lambda _pipe: self._connected.set())
        return resolve_pynng(address, self.sock.listen(address))

    def connected(self) -> bool:
        return self._connected.is_set()


class PynngSyncClient(_PynngClient):
    key = "pynng_sync"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        sock, payload, clock = self.sock, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            sock.send(payload)
            reply = sock.recv()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                self.check(reply)

    async def send_stop(self) -> None:
        self.sock.send(STOP)


class PynngTrioClient(_PynngClient):
    key = "pynng_trio"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        sock, payload, clock = self.sock, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await sock.asend(payload)
            reply = await sock.arecv()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                self.check(reply)

    async def send_stop(self) -> None:
        await self.sock.asend(STOP)


class PynngFloorClient(_PynngClient):
    key = "pynng_floor"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        sock, payload, clock = self.sock, self.payload, time.perf_counter_ns
        fd, wait, again = sock.recv_fd, trio.lowlevel.wait_readable, pynng.TryAgain
        for _ in range(count):
            t0 = clock()
            sock.send(payload)
            while True:
                try:
                    reply = sock.recv(block=False)
                    break
                except again:
                    await wait(fd)
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                self.check(reply)

    async def send_stop(self) -> None:
        self.sock.send(STOP)


class _PatternsClient(_Client):
    async def open(self, stack: AsyncExitStack, address: str, tls: Tls) -> str:
        self.line = await stack.enter_async_context(patterns.Pair(listen=address, tls=server_tls(tls)))
        return str(self.line.addresses[0])

    def connected(self) -> bool:
        return bool(self.line.peers)


class PatternsBytesClient(_PatternsClient):
    key = "patterns_bytes"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        line, payload, clock = self.line, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await line.send_bytes(payload)
            reply = await line.receive_bytes()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                self.check(reply)

    async def send_stop(self) -> None:
        await self.line.send_bytes(STOP)


class PatternsCborClient(_PatternsClient):
    key = "patterns_cbor"

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        line, payload, clock = self.line, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            await line.send(payload)
            reply = await line.receive()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                self.check(reply)

    async def send_stop(self) -> None:
        await self.line.send(None)


class HotlineClient(_Client):
    key = "hotline_ask"

    async def open(self, stack: AsyncExitStack, address: str, tls: Tls) -> str:
        self.line = await stack.enter_async_context(consensus.hotline(listen=address, name="bench",
                                                                      tls=server_tls(tls)))  # fmt: skip
        return self.line.bound_address  # a tcp port 0 resolved

    def connected(self) -> bool:
        return bool(self.line.connected)

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        line, payload, clock = self.line, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            reply = await line.ask(payload, timeout=ASK_TIMEOUT_S)
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                self.check(reply)

    async def send_stop(self) -> None:
        await self.line.send(STOP)


class PlainHotlineClient(HotlineClient):
    key = "hotline_plain"  # the same asks; the echo child answers them from a plain function


class TrioPathHotlineClient(HotlineClient):
    key = "hotline_plain_trio"  # the same; the echo child's answers go back through trio (the old path)


class SecretHotlineClient(HotlineClient):
    key = "hotline_secret"  # the same asks on a line with a secret: every frame sealed and checked

    async def open(self, stack: AsyncExitStack, address: str, tls: Tls) -> str:
        self.line = await stack.enter_async_context(consensus.hotline(listen=address, name="bench",
                                                                      tls=server_tls(tls), secret=SECRET))  # fmt: skip
        return self.line.bound_address


CLIENTS: dict[str, type[Any]] = {cls.key: cls for cls in (
    PynngSyncClient, PynngTrioClient, PynngFloorClient, PatternsBytesClient, PatternsCborClient, HotlineClient,
    PlainHotlineClient, TrioPathHotlineClient, SecretHotlineClient)}  # fmt: skip
Counts = Callable[[int], tuple[int, int, int]]  # size -> (warm-up, timed round trips, block)


# ===================================================================== the interleaved measurement
async def measure(transport: str, keys: list[str], sizes: list[int], counts: Counts, folder: str,
                  tls: Tls) -> dict[tuple[str, int], list[int]]:  # fmt: skip
    """Every variant of one transport connected at once, then timed in interleaved blocks per size."""
    samples: dict[tuple[str, int], list[int]] = {(key, size): [] for key in keys for size in sizes}
    clients: list[Any] = []
    echoes: list[Any] = []
    async with trio.open_nursery() as nursery:
        async with AsyncExitStack() as stack:
            try:
                for key in keys:
                    client = CLIENTS[key]()
                    bound = await client.open(stack, _address(transport, key, folder), tls)
                    clients.append(client)
                    if transport == "inproc":
                        echoes.append(LocalEcho(key, bound, nursery))
                    else:
                        echoes.append(Child(f"echo-{key}"))
                        echoes[-1].start(echo, key, bound, tls)
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    for client, end in zip(clients, echoes):
                        while not client.connected():
                            end.check_alive()
                            await trio.sleep(0.01)
                for size in sizes:
                    warmup, n, block = counts(size)
                    for client in clients:
                        client.payload = make_payload(size)
                        await client.roundtrips(warmup, None)
                    for r in range(-(-n // block)):
                        shift = r % len(clients)  # rotate: no variant always follows the same one
                        for client in clients[shift:] + clients[:shift]:
                            await client.roundtrips(max(2, warmup // 10), None)
                            await client.roundtrips(min(block, n - r * block), samples[(client.key, size)])
                for client in clients:
                    await client.send_stop()
            finally:
                for end in echoes:
                    end.stop()
        nursery.cancel_scope.cancel()
    return samples


def run(transport: str, keys: list[str], sizes: list[int], counts: Counts) -> dict[tuple[str, int], list[int]] | str:
    """:func:`measure` in its own trio run and folder; a string says why it could not run."""
    with tempfile.TemporaryDirectory(prefix="nngc-bench-rtt-") as folder:
        tls = make_self_signed(Path(folder)) if transport == "tls+tcp" else None
        if transport == "tls+tcp" and tls is None:
            return "cryptography not installed: pip install cryptography"

        async def timed() -> dict[tuple[str, int], list[int]]:
            with trio.fail_after(TRANSPORT_TIMEOUT_S):
                return await measure(transport, keys, sizes, counts, folder, tls)

        return trio.run(timed)


def suite_counts(quick: bool) -> Counts:
    def counts(size: int) -> tuple[int, int, int]:
        if size >= 1 << 20:
            return (10, 100, 20) if quick else (20, 300, 50)
        return (100, 1000, 100) if quick else (200, 3000, 100)

    return counts


def measure_transport(transport: str, quick: bool, sizes: tuple[int, ...] | None = None) -> list[Metric | Skip]:
    """The suite's step: round trips over one transport for every variant and size."""
    keys = list(QUICK_VARIANTS if quick else [key for key in VARIANTS if key not in BENCH_ONLY])
    sizes = sizes or SIZES
    samples = run(transport, keys, list(sizes), suite_counts(quick))
    if isinstance(samples, str):
        return [Skip("rtt", TOOLKIT, transport, samples)]
    out: list[Metric | Skip] = []
    for key in keys:
        system, variant = VARIANTS[key][:2]
        for size in sizes:
            out += median_p99("rtt", system, variant, transport, size, 1, [s / 1e3 for s in samples[(key, size)]])
    return out
