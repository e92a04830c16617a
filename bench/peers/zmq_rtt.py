"""pyzmq round trips between two processes: PAIR and ROUTER-DEALER, sync and ``zmq.asyncio``.

* ``PAIR``: this process binds a PAIR socket, an echo child dials it and sends every
  frame back (the issue's "pyzmq asyncio PAIR" is the hotline's reference).
* ``ROUTER-DEALER``: the echo child is the server, a ROUTER bound to the address; this
  process is the client, a DEALER dialing it (request/reply as the architecture this
  project replaces did it; no empty delimiter frame, since a DEALER client needs none).

Both ends use the same style, blocking calls (``sync``) or ``zmq.asyncio`` under asyncio.
Below 64 KiB frames travel as ``bytes``; from 64 KiB on both ends pass zero-copy
``zmq.Frame`` objects (``copy=False``), pyzmq's own advice for large messages. Each
round trip is timed alone with ``time.perf_counter_ns`` after a warm-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._children import Child, children
from .._schema import Metric, Skip
from ._util import make_payload, missing_module, payloads, rtt_counts, rtt_metrics, scratch

SYSTEM = "pyzmq"
NO_ZMQ = "pyzmq not installed: pip install pyzmq (in the bench extra)"
TRANSPORTS = ("ipc", "tcp")
STYLES = ("sync", "asyncio")
PATTERNS = ("pair", "router")
BASE_N = 3000  # timed round trips per 64 B / 4 KiB configuration (quick: 750; 1 MiB: a tenth)
COPY_THRESHOLD = 65536
IO_TIMEOUT_MS = 10_000


def _variant(pattern: str, style: str) -> str:
    return f"{'PAIR' if pattern == 'pair' else 'ROUTER-DEALER'} {style}"


def _check(reply: Any, payload: bytes, what: str) -> None:
    if len(reply) != len(payload) or bytes(reply[:8]) != payload[:8]:
        raise RuntimeError(f"{what}: echo returned {len(reply)} bytes, not the {len(payload)} sent")


def _roundtrips_sync(sock: Any, payload: bytes, count: int, copy: bool, samples: list[int] | None) -> None:
    send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
    for _ in range(count):
        t0 = clock()
        send(payload, copy=copy)
        reply = recv(copy=copy)
        t1 = clock()
        if samples is not None:
            samples.append(t1 - t0)
    _check(reply if copy else reply.buffer, payload, "pyzmq")


async def _roundtrips_async(sock: Any, payload: bytes, count: int, copy: bool,
                            samples: list[int] | None) -> None:  # fmt: skip
    send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
    for _ in range(count):
        t0 = clock()
        await send(payload, copy=copy)
        reply = await recv(copy=copy)
        t1 = clock()
        if samples is not None:
            samples.append(t1 - t0)
    _check(reply if copy else reply.buffer, payload, "pyzmq asyncio")


def _client(ctx: Any, pattern: str, transport: str, tmp: Path, tag: str) -> tuple[Any, str]:
    """The measuring socket and the address the echo child uses (PAIR: we bind; ROUTER: it binds)."""
    import zmq

    if pattern == "pair":
        sock = ctx.socket(zmq.PAIR)
        if transport == "ipc":
            address = f"ipc://{tmp}/{tag}.ipc"
            sock.bind(address)
        else:
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            address = f"tcp://127.0.0.1:{port}"
    else:
        sock = ctx.socket(zmq.DEALER)
        address = f"ipc://{tmp}/{tag}.ipc" if transport == "ipc" else "tcp://127.0.0.1:*"
    sock.linger = 0
    sock.rcvtimeo = sock.sndtimeo = IO_TIMEOUT_MS
    return sock, address


async def _group(child: Child, pattern: str, style: str, transport: str, group: Sequence[int], copy: bool,
                 quick: bool, tmp: Path) -> dict[int, list[int]]:  # fmt: skip
    """One echo job: every size of ``group`` (sync style: blocking calls, inside asyncio.run all the same)."""
    import zmq
    import zmq.asyncio

    from . import _zmq_jobs

    ctx = zmq.asyncio.Context() if style == "asyncio" else zmq.Context()
    samples: dict[int, list[int]] = {}
    try:
        sock, address = _client(ctx, pattern, transport, tmp, f"{pattern}-{style}-{int(copy)}")
        child.start(_zmq_jobs.echo, pattern, style, address, copy)
        endpoint = child.receive("ready")  # blocking on the pipe is fine: nothing else runs yet
        if pattern == "router":
            sock.connect(endpoint)
        for size in group:
            payload = make_payload(size, size)
            warmup, n = rtt_counts(size, quick, BASE_N)
            samples[size] = []
            for count, into in ((warmup, None), (n, samples[size])):
                if style == "sync":
                    _roundtrips_sync(sock, payload, count, copy, into)
                else:
                    await _roundtrips_async(sock, payload, count, copy, into)
        sent = sock.send(b"")  # the echo's stop frame
        if style == "asyncio":
            await sent
        child.finish(stop=False)
    finally:
        ctx.destroy(linger=0)
    return samples


def _measure_one(child: Child, pattern: str, style: str, transport: str, sizes: Sequence[int], quick: bool,
                 tmp: Path) -> list[Metric | Skip]:  # fmt: skip
    out: list[Metric | Skip] = []
    for copy in (True, False):  # one echo job per frame style: bytes below 64 KiB, Frames above
        group = [s for s in sizes if (s < COPY_THRESHOLD) == copy]
        if not group:
            continue
        try:
            samples = asyncio.run(_group(child, pattern, style, transport, group, copy, quick, tmp))
        except BaseException:
            child.kill()  # its echo job waits on a socket that is gone: do not wait for it
            raise
        for size in group:
            out += rtt_metrics(SYSTEM, _variant(pattern, style), transport, size, samples[size])
    return out


def measure(quick: bool, sizes: Sequence[int] | None = None, patterns: Sequence[str] = PATTERNS,
            styles: Sequence[str] = STYLES,
            transports: Sequence[str] = TRANSPORTS) -> list[Metric | Skip]:  # fmt: skip
    """Round trips for each pattern, style, transport and payload size; one echo child, reused."""
    skip = missing_module("zmq", NO_ZMQ, "rtt", SYSTEM, "PAIR, ROUTER-DEALER")
    if skip:
        return [skip]
    out: list[Metric | Skip] = []
    with scratch("peers-zmq-") as tmp, children(1, "zmq-echo") as (child,):
        for transport in transports:
            for pattern in patterns:
                for style in styles:
                    out += _measure_one(child, pattern, style, transport, payloads(quick, sizes), quick, tmp)
    return out
