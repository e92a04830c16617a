"""A hotline ask in two trees at once: µs of thread CPU that separate runs cannot show.

Separate runs of ``bench.calls --mode cpu`` move by 25-57 µs between runs on a shared
machine, far more than a change to the asking or answering path is worth. So both trees
run in the same two processes: another checkout's root (``--base``, e.g. ``git archive
REV | tar -x -C /tmp/base``) is imported first and its ``consensus`` and ``patterns``
renamed in ``sys.modules`` (``old_consensus``, ...), then this tree's. The near process
listens with a hotline of each tree, a bare pynng ``Pair1`` under trio (the floor) and a
``patterns.Pair`` (this tree's, 64 B CBOR values); a spawned far process answers each
(async echo handlers, the floor's echo loop, the Pair's receive/send loop), all in one trio
run per process. Each round runs one block of each variant in a rotating order: ``--warm``
untimed round trips then ``--n`` timed ones, the near trio thread's CPU
(``time.thread_time``) and wall time per round trip, the far thread's CPU from its handler
at the block's first and last timed ask. Printed: medians of the blocks and of each
round's paired differences (new - old, each minus the floor or the Pair).

Two identical trees measured this way at load 5-7: paired new - old -0.15 µs (asking) and
+0.75 µs (answering: the line opened second in the far process) over 40 rounds: that is
the method's resolution.

    python -m bench.hotline_paired --base /tmp/base                 # ipc, 40 rounds
    python -m bench.hotline_paired --base /tmp/base --transport tcp --rounds 30
    python -m bench.hotline_paired --base /tmp/base --secret s3cret  # both lines sealed
    python -m bench.hotline_paired --base /tmp/base --value record   # another value (VALUES)

``--value`` asks with another value than 64 bytes (the line and the ``Pair`` send it; the
floor sends its bytes, or 64 bytes for a value that is not bytes): where a value falls off
the frames' fast paths (``patterns._shape``, ``patterns._records``) onto cbor2.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

PAYLOAD = bytes(64)
VALUES: dict[str, Any] = {
    "bytes64": PAYLOAD, "bytes255": bytes(255), "bytes256": bytes(256), "bytes4k": bytes(4096),
    "text2k": "é" * 1000, "int": 7, "record": {"choice": "B", "score": 0.7, "tags": ["fast", "safe"]},
    "nested": {"choice": "B", "why": [["three", "levels"], {"x": [1]}]},
    "json": {"items": [{"name": "a", "tags": ["x", "y"]}, {"name": "b", "tags": []}], "total": 2},
    "deep": {"choice": "B", "why": [[[[[[["seven", "levels"]]]]]]]},  # past a record: cbor2's
    "wide": {f"field{i}": i for i in range(30)},  # past a record: cbor2's
    "many": {"scores": list(range(100))},  # past a record: cbor2's
}  # fmt: skip
VARIANTS = ("old", "new", "floor", "pair")
ORDERS = (("old", "new", "floor", "pair"), ("new", "old", "pair", "floor"),
          ("floor", "pair", "old", "new"), ("pair", "floor", "new", "old"))  # fmt: skip


def _load(base: str) -> tuple[ModuleType, ModuleType, ModuleType]:
    """The base tree's consensus (renamed), this tree's consensus and patterns."""
    sys.path.insert(0, base)
    import consensus
    import consensus.hotline.line  # (every module a line uses, before the rename)
    import patterns  # noqa: F401

    if not (consensus.__file__ or "").startswith(base):
        raise SystemExit(f"--base {base}: its consensus was not imported ({consensus.__file__})")
    for name in list(sys.modules):
        if name.split(".")[0] in ("consensus", "patterns"):
            sys.modules["old_" + name] = sys.modules.pop(name)
    sys.path.remove(base)
    import consensus as new
    import patterns as new_patterns

    return sys.modules["old_consensus"], new, new_patterns


def _far(base: str, addresses: dict[str, str], warm: int, n: int, queue: Any, secret: str | None = None) -> None:
    import pynng
    import trio

    old, new, new_patterns = _load(base)
    marks: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def mark(name: str, seen: int) -> None:
        if seen % (warm + n) in (warm, 0):  # the first timed ask and the last
            marks[name].append(time.thread_time())

    def echo(name: str) -> Callable[[Any], Awaitable[Any]]:
        seen = [0]

        async def on_ask(value: Any) -> Any:
            seen[0] += 1
            mark(name, seen[0])
            return value

        return on_ask

    async def floor(done: trio.Event) -> None:
        with pynng.Pair1(send_timeout=10000) as sock:
            sock.dial(addresses["floor"], block=True)
            fd, seen = sock.recv_fd, 0
            while True:
                try:
                    data = sock.recv(block=False)
                except pynng.TryAgain:
                    await trio.lowlevel.wait_readable(fd)
                    continue
                if data == b"stop":
                    break
                seen += 1
                mark("floor", seen)
                sock.send(data)
        done.set()

    async def pair() -> None:
        async with new_patterns.Pair(dial=addresses["pair"]) as line:
            seen = 0
            while (value := await line.receive()) != b"stop":
                seen += 1
                mark("pair", seen)
                await line.send(value)

    async def main() -> None:
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(floor, done)
            nursery.start_soon(pair)
            async with old.hotline(dial=addresses["old"], name="echo", on_ask=echo("old"), secret=secret) as a, \
                    new.hotline(dial=addresses["new"], name="echo", on_ask=echo("new"), secret=secret) as b:  # fmt: skip
                await a.wait_connected()
                await b.wait_connected()
                await done.wait()

    trio.run(main)
    queue.put({name: [(rec[i + 1] - rec[i]) / n * 1e6 for i in range(0, len(rec) - 1, 2)]
               for name, rec in marks.items()})  # fmt: skip


def _addresses(transport: str) -> dict[str, str]:
    if transport == "ipc":
        return {name: f"ipc:///tmp/nngc-hotline-paired-{os.getpid()}-{name}" for name in VARIANTS}
    addresses = {}
    for name in VARIANTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            addresses[name] = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    return addresses


def measure(base: str, transport: str, rounds: int, warm: int, n: int, secret: str | None = None,
            value: Any = PAYLOAD) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Per variant, the near blocks' (cpu, wall) µs per round trip and the far blocks' cpu
    (``secret``: both trees' lines sealed with it; the floor and the Pair are not; ``value``:
    what the lines ask and the Pair sends, and the floor too if it is bytes)."""
    import pynng
    import trio

    old, new, new_patterns = _load(base)
    addresses = _addresses(transport)
    raw = value if type(value) is bytes else PAYLOAD
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    near: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}

    async def run() -> Any:
        with pynng.Pair1(send_timeout=10000) as sock:
            sock.listen(addresses["floor"])
            fd = sock.recv_fd
            async with new_patterns.Pair(listen=addresses["pair"]) as pair, \
                    old.hotline(listen=addresses["old"], name="near", secret=secret) as a, \
                    new.hotline(listen=addresses["new"], name="near", secret=secret) as b:  # fmt: skip
                child = ctx.Process(target=_far, args=(base, addresses, warm, n, queue, secret))
                child.start()
                await a.wait_connected()
                await b.wait_connected()

                async def floor_block() -> tuple[float, float]:
                    async def round_trip() -> None:
                        sock.send(raw)
                        while True:
                            try:
                                sock.recv(block=False)
                                return
                            except pynng.TryAgain:
                                await trio.lowlevel.wait_readable(fd)

                    for _ in range(warm):
                        await round_trip()
                    cpu, wall = time.thread_time(), time.perf_counter()
                    for _ in range(n):
                        await round_trip()
                    return (time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6

                async def pair_block() -> tuple[float, float]:
                    for _ in range(warm):
                        await pair.send(value)
                        await pair.receive()
                    cpu, wall = time.thread_time(), time.perf_counter()
                    for _ in range(n):
                        await pair.send(value)
                        await pair.receive()
                    return (time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6

                async def line_block(line: Any) -> tuple[float, float]:
                    ask = line.ask
                    for _ in range(warm):
                        await ask(value, timeout=5)
                    cpu, wall = time.thread_time(), time.perf_counter()
                    for _ in range(n):
                        await ask(value, timeout=5)
                    return (time.thread_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6

                blocks = {"old": lambda: line_block(a), "new": lambda: line_block(b), "floor": floor_block,
                          "pair": pair_block}  # fmt: skip
                for r in range(rounds):
                    for name in ORDERS[r % len(ORDERS)]:
                        near[name].append(await blocks[name]())
                sock.send(b"stop")
                await pair.send(b"stop")
                return child

    child = trio.run(run)
    far = queue.get(timeout=60)
    child.join(30)
    return near, far


def report(near: dict[str, Any], far: dict[str, Any]) -> list[str]:
    med = statistics.median

    def paired(a: list[float], b: list[float]) -> float:
        return med([y - x for x, y in zip(a, b, strict=False)])

    lines = []
    sides = {"asking (near) CPU": {k: [c for c, _w in v] for k, v in near.items()}, "answering (far) CPU": far}
    for side, cpu in sides.items():
        lines.append(f"  {side} µs per ask: old {med(cpu['old']):.1f}, new {med(cpu['new']):.1f}, "
                     f"floor {med(cpu['floor']):.1f}, Pair {med(cpu['pair']):.1f}; paired new - old "
                     f"{paired(cpu['old'], cpu['new']):+.2f}; over the floor: old {paired(cpu['floor'], cpu['old']):+.1f}, "
                     f"new {paired(cpu['floor'], cpu['new']):+.1f}, Pair {paired(cpu['floor'], cpu['pair']):+.1f}; "
                     f"over the Pair: new {paired(cpu['pair'], cpu['new']):+.1f}")  # fmt: skip
    wall = {k: [w for _c, w in v] for k, v in near.items()}

    def ratio(name: str, to: str) -> float:
        return med([x / y for x, y in zip(wall[name], wall[to], strict=False)])

    lines.append(f"  wall µs: old {med(wall['old']):.1f}, new {med(wall['new']):.1f}, floor {med(wall['floor']):.1f}, "
                 f"Pair {med(wall['pair']):.1f}; paired new - old {paired(wall['old'], wall['new']):+.2f}; / floor: "
                 f"old {ratio('old', 'floor'):.3f}, new {ratio('new', 'floor'):.3f}, Pair {ratio('pair', 'floor'):.3f}; "
                 f"new / Pair {ratio('new', 'pair'):.3f}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotline_paired", description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the root of the other tree (its consensus and patterns)")
    p.add_argument("--transport", default="ipc", choices=("ipc", "tcp"))
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--warm", type=int, default=400, help="untimed round trips before each block")
    p.add_argument("--n", type=int, default=1000, help="timed round trips per block")
    p.add_argument("--secret", help="seal both trees' lines with this secret (the floor and the Pair are plain)")
    p.add_argument("--value", default="bytes64", choices=sorted(VALUES), help="what the lines ask (default 64 bytes)")
    args = p.parse_args(argv)
    base = os.path.abspath(args.base)
    near, far = measure(base, args.transport, args.rounds, args.warm, args.n, args.secret, VALUES[args.value])
    sealed = ", sealed" if args.secret else ""
    print(f"{args.transport}{sealed}, {args.value}: {args.rounds} rounds of {args.n} (after {args.warm}), "
          f"load {os.getloadavg()}")  # fmt: skip
    print("\n".join(report(near, far)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
