"""Both ends of ``bench.pair_rtt``'s round trips: the echo children and the timed clients.

Each variant's echo side runs in a spawned process in the same style as its client
(pynng sync, pynng async under trio, ``patterns.Pair`` raw bytes or CBOR values).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pynng
import trio

import patterns

PAYLOAD = bytes(range(64))
STOP = b"stop"  # raw variants: a frame that is not 64 bytes long ends the echo loop
CONNECT_TIMEOUT_S = 20.0  # child start-up (a fresh interpreter importing trio and pynng) + connect
IO_TIMEOUT_MS = 10_000  # sync sockets: no single send/recv may hang longer than this
CHILD_LIFETIME_S = 120.0  # an orphaned echo child gives up after this long
JOIN_TIMEOUT_S = 5.0


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
