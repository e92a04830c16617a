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
STOP = b"stop"  # raw variants: this frame (shorter than any payload) ends the echo loop
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
def client_tls(tls: dict[str, str] | None) -> patterns.TLSConfig | None:
    """The dialing side's TLS settings from ``{"ca_file": ..., "server_name": ...}`` (None: no TLS)."""
    if tls is None:
        return None
    return patterns.TLSConfig(
        mode=patterns.TLSMode.CLIENT, ca_file=tls["ca_file"], server_name=tls.get("server_name")
    )


def server_tls(tls: dict[str, str] | None) -> patterns.TLSConfig | None:
    """The listening side's TLS settings from ``{"cert_key_file": ...}`` (None: no TLS)."""
    if tls is None:
        return None
    return patterns.TLSConfig(mode=patterns.TLSMode.SERVER, cert_key_file=tls["cert_key_file"])


def _pynng_pair(tls: patterns.TLSConfig | None, **options: Any) -> Any:
    sock = pynng.Pair1(**options)
    if tls is not None:
        sock.tls_config = tls.to_pynng()
    return sock


def _echo_pynng_sync(address: str, tls: dict[str, str] | None = None) -> None:
    recv_timeout = int(CHILD_LIFETIME_S * 1000)
    with _pynng_pair(client_tls(tls), recv_timeout=recv_timeout, send_timeout=IO_TIMEOUT_MS) as sock:
        sock.dial(address, block=True)
        while True:
            data = sock.recv()
            if data == STOP:
                return
            sock.send(data)


async def _echo_pynng_trio(address: str, tls: dict[str, str] | None = None) -> None:
    with _pynng_pair(client_tls(tls)) as sock:
        sock.dial(address, block=True)
        with trio.move_on_after(CHILD_LIFETIME_S):
            while True:
                data = await sock.arecv()
                if data == STOP:
                    return
                await sock.asend(data)


async def _echo_patterns_bytes(address: str, tls: dict[str, str] | None = None) -> None:
    async with patterns.Pair(dial=address, tls=client_tls(tls)) as line:
        with trio.move_on_after(CHILD_LIFETIME_S):
            while True:
                data = await line.receive_bytes()
                if data == STOP:
                    return
                await line.send_bytes(data)


async def _echo_patterns_cbor(address: str, tls: dict[str, str] | None = None) -> None:
    async with patterns.Pair(dial=address, tls=client_tls(tls)) as line:
        with trio.move_on_after(CHILD_LIFETIME_S):
            while True:
                value = await line.receive()
                if value is None:
                    return
                await line.send(value)


ASYNC_ECHOES = {
    "pynng_trio": _echo_pynng_trio,
    "patterns_bytes": _echo_patterns_bytes,
    "patterns_cbor": _echo_patterns_cbor,
}


def _echo_main(variant: str, address: str, tls: dict[str, str] | None = None) -> None:
    """Entry point of the spawned echo process."""
    if variant == "pynng_sync":
        _echo_pynng_sync(address, tls)
    elif variant in ASYNC_ECHOES:
        trio.run(ASYNC_ECHOES[variant], address, tls)
    else:
        raise SystemExit(f"unknown variant {variant!r}")


# ===================================================================== child management
class EchoChild:
    """A spawned echo process that is always reaped: join, then terminate, then kill."""

    def __init__(self, variant: str, address: str, tls: dict[str, str] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.process: multiprocessing.process.BaseProcess = ctx.Process(
            target=_echo_main, args=(variant, address, tls), name=f"echo-{variant}", daemon=True
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
    """The bound address of a pynng listener, with a port 0 resolved (tcp, ws, tls+tcp)."""
    if not address.startswith(("tcp://", "ws://", "tls+tcp://")) or ":0" not in address:
        return address
    port = listener.local_address.port
    port = ((port & 0xFF) << 8) | (port >> 8)  # SockAddr.port is in network byte order
    host, _, rest = address.rpartition(":0")
    return f"{host}:{port}{rest}"


def _check_echo(reply: Any, variant: str, payload: bytes = PAYLOAD) -> None:
    if reply != payload:
        raise RuntimeError(
            f"{variant}: echo returned {reply!r:.80}, expected the {len(payload)}-byte payload"
        )


# ===================================================================== client side (parent)
# Each client owns one listening socket and times ``count`` round trips per call. The
# timed loops are written out per variant so that nothing but the I/O calls and the
# clock sits inside the measured window. All four live in one trio run so that their
# blocks can be interleaved; the sync client never touches trio (its blocking calls just
# run while the trio loop has nothing else to do).
class _PynngClient:
    key = ""
    payload = PAYLOAD  # what each round trip sends (set another ``bytes`` value on the instance)

    def open(self, address: str, tls: dict[str, str] | None = None) -> str:
        self.sock = _pynng_pair(server_tls(tls), recv_timeout=IO_TIMEOUT_MS, send_timeout=IO_TIMEOUT_MS)
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
        sock, payload, clock = self.sock, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            sock.send(payload)
            reply = sock.recv()
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                _check_echo(reply, self.key, payload)

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
                _check_echo(reply, self.key, payload)

    async def send_stop(self) -> None:
        await self.sock.asend(STOP)


class _PatternsClient:
    key = ""
    payload = PAYLOAD  # what each round trip sends (set another ``bytes`` value on the instance)

    def open(self, address: str, tls: dict[str, str] | None = None) -> str:
        self.line = patterns.Pair(listen=address, tls=server_tls(tls))
        self.line.open()
        return self.line.addresses[0]

    def connected(self) -> bool:
        return bool(self.line.peers)

    def close(self) -> None:
        self.line.close()


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
                _check_echo(reply, self.key, payload)

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
                _check_echo(reply, self.key, payload)

    async def send_stop(self) -> None:
        await self.line.send(None)


CLIENTS: dict[str, type[Any]] = {
    cls.key: cls for cls in (PynngSyncClient, PynngTrioClient, PatternsBytesClient, PatternsCborClient)
}


# ===================================================================== driver
