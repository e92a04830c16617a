"""pyzmq scatter-gather of N over ROUTER: one request to each of N DEALER respondents, wait for all N.

The pyzmq counterpart of ``bench.poll`` (a room poll of N members that answer at once).
A ROUTER in this process binds (``ROUTER_MANDATORY`` on, so a request to an unknown
peer raises instead of vanishing); N DEALER respondents, ``PER_PROCESS`` (8) to a
spawned child process, dial it under routing ids ``r000``..., say hello once connected
and echo each 64-byte request at once (one thread per child polls its DEALERs with a
``zmq.Poller`` and drains each ready socket). A round sends the request to every
respondent (``send_multipart([id, request])``, blocking calls) and ends when all N
replies are in; each round's request carries its number and every reply is checked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._children import Child, children
from .._placement import address as listen_address
from .._schema import Metric, Skip
from ._util import (
    GATHER_PAYLOAD,
    PER_PROCESS,
    READY_TIMEOUT_S,
    gather_metrics,
    gather_ns,
    make_payload,
    missing_module,
    scratch,
)

SYSTEM = "pyzmq"
NO_ZMQ = "pyzmq not installed: pip install pyzmq (in the bench extra)"
VARIANT = "ROUTER scatter-gather sync"
TRANSPORTS = ("ipc", "tcp")
ROUNDS, QUICK_ROUNDS = 300, 100
WARMUP = 20
IO_TIMEOUT_MS = 5000


def _gather(router: Any, ids: list[bytes], rounds: int, first: int, samples: list[int] | None) -> None:
    send, recv, clock = router.send_multipart, router.recv_multipart, time.perf_counter_ns
    n = len(ids)
    for r in range(first, first + rounds):
        request = make_payload(GATHER_PAYLOAD, r)
        t0 = clock()
        for ident in ids:
            send([ident, request])
        replies = [recv() for _ in range(n)]
        t1 = clock()
        if samples is not None:
            samples.append(t1 - t0)
        if any(reply[1] != request for reply in replies) or len({reply[0] for reply in replies}) != n:
            raise RuntimeError(f"round {r}: replies are not one echo from each of the {n} respondents")


def _one_n(pool: list[Child], n: int, transport: str, rounds: int, tmp: Path) -> list[int]:
    import zmq

    from . import _zmq_jobs

    ctx = zmq.Context()
    busy: list[Child] = []
    try:
        router = ctx.socket(zmq.ROUTER)
        router.linger = 0
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.rcvtimeo = router.sndtimeo = IO_TIMEOUT_MS
        if transport == "ipc":
            address = f"ipc://{tmp}/gather-{n}.ipc"
            router.bind(address)
        else:
            here = listen_address()
            address = f"tcp://{here}:{router.bind_to_random_port(f'tcp://{here}')}"
        ids = [f"r{i:03d}".encode() for i in range(n)]
        for k, child in enumerate(pool[: -(-n // PER_PROCESS)]):
            child.start(_zmq_jobs.respond, address, ids[k * PER_PROCESS : (k + 1) * PER_PROCESS])
            busy.append(child)
        for child in busy:
            child.receive("ready")
        router.rcvtimeo = int(READY_TIMEOUT_S * 1000)
        hellos = {router.recv_multipart()[0] for _ in range(n)}
        router.rcvtimeo = IO_TIMEOUT_MS
        if hellos != set(ids):
            raise RuntimeError(f"hellos from {sorted(hellos)}, expected {n} respondents")
        _gather(router, ids, WARMUP, 0, None)
        samples: list[int] = []
        _gather(router, ids, rounds, WARMUP, samples)
        for ident in ids:
            router.send_multipart([ident, b""])  # each respondent's stop frame
        for child in busy:
            child.finish(stop=False)
        busy.clear()
        return samples
    finally:
        ctx.destroy(linger=0)
        for child in busy:  # an error left this job running: its pipe is out of step, so end the child
            child.kill()


def measure(quick: bool, ns: Sequence[int] | None = None,
            transports: Sequence[str] = TRANSPORTS) -> list[Metric | Skip]:  # fmt: skip
    """Time to all N replies for each N (default 1, 8, 32, 64; quick 1, 8) over ipc and tcp."""
    skip = missing_module("zmq", NO_ZMQ, "poll", SYSTEM, VARIANT)
    if skip:
        return [skip]
    sizes = gather_ns(quick, ns)
    rounds = QUICK_ROUNDS if quick else ROUNDS
    out: list[Metric | Skip] = []
    with scratch("peers-zmq-gather-") as tmp, children(-(-max(sizes) // PER_PROCESS), "zmq-respond") as pool:
        for transport in transports:
            for n in sizes:
                out += gather_metrics(SYSTEM, VARIANT, transport, n, _one_n(pool, n, transport, rounds, tmp))
    return out
