"""Large payloads inline, as between two machines: the toolkit against raw pynng, in one run.

Issue 17's third goal: ``patterns.Pair`` and hotline asks within 1.2x of raw pynng ``Pair1``
sync at 1, 16 and 64 MiB over tcp with shared memory off, on one host and across two.

Each row is a client process sending a payload of ``size`` bytes to an echo process that
answers 8 bytes; a round trip is timed from just before the send until the reply is in,
``--repeats`` of them back to back after one untimed warm-up, and the row shows their median.

* ``pynng_sync``: ``pynng.Pair1`` blocking ``send`` / ``recv`` at both ends (the reference).
  Its copies, for fairness: ``send`` is ``nng_send`` (NNG allocates a message and copies the
  bytes in: one copy); ``recv`` is ``nng_recv`` with ``NNG_FLAG_ALLOC`` (NNG copies the
  message body into a fresh buffer) then ``ffi.unpack`` (a copy into ``bytes``): two.
  The toolkit's inline path makes one each way (``patterns._gaps``).
* ``patterns_bytes``: ``patterns.Pair.send_bytes`` / ``receive_bytes`` under trio: the
  driver's share, no envelope, no CBOR.
* ``patterns_pair``: ``patterns.Pair.send(payload)`` / ``receive()`` with
  ``shared_memory=False``: the envelope and its codec on top.
* ``hotline_ask``: ``line.ask(payload)`` answered by ``on_ask`` (between two hosts only: on
  one host a hotline proves its peer shares ``/dev/shm`` and would not send inline).

Placements: ``loopback`` (both on this host, tcp on 127.0.0.1) and, with ``--hosts`` where
network namespaces are available (root), ``two hosts`` (:class:`bench.hosts.Bed`: client on
h0, echo on h1, each with its own ``/dev/shm``: inline because nothing else is possible).

    python -m bench.inline                    # loopback, 1 16 64 MiB, 5 repeats
    python -m bench.inline --hosts --repeats 7
    python -m bench.inline client|echo ...    # the child processes (internal)
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("pynng_sync", "patterns_bytes", "patterns_pair", "hotline_ask")
REPLY = b"8 bytes."
LARGE = 1 << 30  # max_message_size for every toolkit end (the default refuses 64 MiB)


# ----------------------------------------------------------------------------- children
def echo(variant: str, address: str) -> None:
    if variant == "pynng_sync":
        import pynng

        with pynng.Pair1(listen=address, recv_max_size=0) as sock:
            print("ready", flush=True)
            while True:
                sock.recv()
                sock.send(REPLY)
    import trio

    trio.run(_echo_trio, variant, address)


async def _echo_trio(variant: str, address: str) -> None:
    import patterns

    if variant == "hotline_ask":
        import consensus

        async def answer(value: Any) -> bytes:
            return REPLY

        async with consensus.hotline(listen=address, on_ask=answer, max_message_size=LARGE):
            print("ready", flush=True)
            await _forever()
    async with patterns.Pair(listen=address, shared_memory=False, max_message_size=LARGE) as pair:
        print("ready", flush=True)
        if variant == "patterns_bytes":
            while True:
                await pair.receive_bytes()
                await pair.send_bytes(REPLY)
        while True:
            await pair.receive()
            await pair.send(REPLY, inline=True)


async def _forever() -> None:
    import trio

    await trio.sleep_forever()


def client(variant: str, address: str, sizes: list[int], repeats: int) -> None:
    """Print one JSON line: ``{size: [seconds of each timed round trip]}``."""
    payloads = {size: (bytes(range(256)) * (size // 256 + 1))[:size] for size in sizes}
    if variant == "pynng_sync":
        import pynng

        with pynng.Pair1(dial=address, recv_max_size=0) as sock:

            def round_trip_sync(payload: bytes) -> None:
                sock.send(payload)
                sock.recv()

            print(json.dumps(_timed(round_trip_sync, payloads, repeats)), flush=True)
        return
    import trio

    trio.run(_client_trio, variant, address, payloads, repeats)


async def _client_trio(variant: str, address: str, payloads: dict[int, bytes], repeats: int) -> None:
    import trio

    import consensus
    import patterns

    times: dict[int, list[float]] = {}
    if variant == "hotline_ask":
        async with consensus.hotline(dial=address, max_message_size=LARGE) as line:
            await line.wait_connected()
            for size, payload in payloads.items():
                times[size] = [await _time(line.ask(payload, timeout=60)) for _ in range(repeats + 1)][1:]
    else:
        async with patterns.Pair(dial=address, shared_memory=False, max_message_size=LARGE) as pair:
            await pair.wait_for_peers(1)
            for size, payload in payloads.items():
                runs = []
                for _ in range(repeats + 1):
                    start = time.perf_counter()
                    if variant == "patterns_bytes":
                        await pair.send_bytes(payload)
                        await pair.receive_bytes()
                    else:
                        await pair.send(payload, inline=True)
                        await pair.receive()
                    runs.append(time.perf_counter() - start)
                times[size] = runs[1:]
    await trio.lowlevel.checkpoint()
    print(json.dumps(times), flush=True)


async def _time(awaitable: Any) -> float:
    start = time.perf_counter()
    await awaitable
    return time.perf_counter() - start


def _timed(
    round_trip: Callable[[bytes], None], payloads: dict[int, bytes], repeats: int
) -> dict[int, list[float]]:
    times = {}
    for size, payload in payloads.items():
        runs = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            round_trip(payload)
            runs.append(time.perf_counter() - start)
        times[size] = runs[1:]
    return times


# ----------------------------------------------------------------------------- the run
Launch = Callable[[list[str]], "subprocess.Popen[str]"]


def _plain(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def measure(variant: str, address: str, sizes: list[int], repeats: int, on_echo: Launch,
            on_client: Launch) -> dict[int, list[float]]:  # fmt: skip
    me = [sys.executable, "-m", "bench.inline"]
    echoing = on_echo([*me, "echo", variant, address])
    try:
        assert echoing.stdout is not None
        if echoing.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {variant} echo did not start")
        asking = on_client([*me, "client", variant, address, ",".join(map(str, sizes)), str(repeats)])
        out, _ = asking.communicate(timeout=600)
        if asking.returncode != 0:
            raise RuntimeError(f"the {variant} client failed ({asking.returncode})")
        return {int(size): runs for size, runs in json.loads(out.strip().splitlines()[-1]).items()}
    finally:
        echoing.kill()
        echoing.wait()
        if echoing.stdout is not None:
            echoing.stdout.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(sizes_mib: list[int], repeats: int, hosts: bool) -> list[dict[str, Any]]:
    sizes = [mib << 20 for mib in sizes_mib]
    rows: list[dict[str, Any]] = []

    def record(placement: str, variant: str, times: dict[int, list[float]]) -> None:
        for size, runs in times.items():
            rows.append({"placement": placement, "variant": variant, "mib": size >> 20,
                         "median_ms": statistics.median(runs) * 1e3, "runs_ms": [r * 1e3 for r in runs]})  # fmt: skip

    for variant in VARIANTS[:3]:
        record("loopback", variant, measure(variant, f"tcp://127.0.0.1:{_free_port()}", sizes, repeats,
                                            _plain, _plain))  # fmt: skip
    if hosts:
        from bench import hosts as bed_hosts

        reason = bed_hosts.unavailable()
        if reason is not None:
            print(f"two hosts: skipped ({reason})", file=sys.stderr)
            return rows
        with bed_hosts.Bed(2) as bed:
            h0, h1 = bed.hosts

            def on(host: bed_hosts.Host) -> Launch:
                return lambda argv: host.popen(argv, stdin=subprocess.DEVNULL, cwd=ROOT)

            for n, variant in enumerate(VARIANTS):
                record("two hosts", variant, measure(variant, f"tcp://{h1.ip}:{7500 + n}", sizes, repeats,
                                                     on(h1), on(h0)))  # fmt: skip
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    base = {(r["placement"], r["mib"]): r["median_ms"] for r in rows if r["variant"] == "pynng_sync"}
    lines = [f"{'placement':<10} {'variant':<15} {'MiB':>4} {'median ms':>10} {'x pynng':>8}"]
    for r in rows:
        ratio = r["median_ms"] / base[(r["placement"], r["mib"])]
        lines.append(
            f"{r['placement']:<10} {r['variant']:<15} {r['mib']:>4} {r['median_ms']:>10.1f} {ratio:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "echo":
        echo(argv[1], argv[2])
        return
    if argv and argv[0] == "client":
        client(argv[1], argv[2], [int(s) for s in argv[3].split(",")], int(argv[4]))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.inline", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,16,64", help="MiB, comma-separated (default 1,16,64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hosts", action="store_true", help="also between two hosts of a namespace bed")
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args(argv)
    rows = run([int(s) for s in args.sizes.split(",")], args.repeats, args.hosts)
    print(render(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
