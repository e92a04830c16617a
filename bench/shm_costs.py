"""Where an isolated 64 MiB shared-memory delivery spends its time besides the copy.

``bench.shm``'s row ``a`` (``patterns.Pair`` over ipc, ``send({"data": array})``, a settle
pause before each delivery) with timestamps inside both processes, to tell the copy from
the toolkit's fixed costs around it (docs/shared-memory.md §3.5). Per delivery:

* ``delivered``: from just before ``send`` until the receiver holds ``body["data"]``;
* ``copy``: the sender's copy into the segment (``patterns.shm.memcopy.copy_into``);
* ``over``: ``delivered - copy``, the figure this bench is for: the memory bandwidth that
  other work on the machine takes from the copy cancels out of it;
* ``cpu_pre`` / ``cpu_post``: the sender thread's CPU from ``send`` to the copy, and from
  the copy to ``nng_send`` (``_try_send``): the sender's share of ``over``;
* ``cpu_receive``: the receiver thread's CPU to decode and attach the frame (``_unpack``);
* ``faults``: minor page faults of the sender's thread over ``send`` (``ru_minflt``).

The hooks wrap those three internal functions (measurement only: each adds a clock read);
the bench fails if one is missing. The first ``WARMUP`` deliveries are left out (a fresh
segment, then its first reuse, which maps it). ``--base DIR`` runs a second tree (another
checkout's root: its ``patterns`` is imported in both children) in alternating runs, so
a change can be judged against it under the same load.

    python -m bench.shm_costs                 # 4 runs of 60 deliveries
    python -m bench.shm_costs --quick         # 2 runs of 20
    python -m bench.shm_costs --base /tmp/main-tree
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _cli
from ._children import Child, Conn, aserve

SIZE = 64 << 20
WARMUP = 3
SETTLE_S = 0.02  # as bench.shm: the receiver is parked by then
STEP_TIMEOUT_S = 120.0
KEYS = ("delivered", "copy", "over", "cpu_pre", "cpu_post", "cpu_receive", "faults")


def _use_tree(tree: str | None) -> None:
    if tree:
        sys.path.insert(0, tree)
        for name in [n for n in sys.modules if n == "patterns" or n.startswith("patterns.")]:
            del sys.modules[name]


def _hook(owner: Any, name: str, log: list[tuple[int, int]], where: str) -> None:
    """Wrap ``owner.name`` to log (monotonic ns, thread CPU ns) at its ``where`` ("in"/"out")."""
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if original is None:
        raise RuntimeError(f"bench.shm_costs: {owner!r} has no {name}: the hooks need updating")

    def hooked(*args: Any) -> Any:
        if where == "in":
            log.append((time.monotonic_ns(), time.thread_time_ns()))
            return original(*args)
        result = original(*args)
        log.append((time.monotonic_ns(), time.thread_time_ns()))
        return result

    setattr(owner, name, hooked)


def receiver(conn: Conn, address: str, folder: str, tree: str | None) -> None:
    _use_tree(tree)
    import numpy as np
    import trio

    import patterns
    import patterns._framing as framing

    unpacked: list[tuple[int, int]] = []
    _hook(framing.Framing, "_unpack", unpacked, "in")
    _hook(framing.Framing, "_unpack", unpacked, "out")

    async def main() -> None:
        async with patterns.Pair(listen=address, max_message_size=2 * SIZE,
                                 shared_memory=patterns.SharedMemory(directory=folder)) as sock:  # fmt: skip

            async def receive() -> tuple[str, Any]:
                unpacked.clear()
                conn.send(("waiting", None))
                body = await sock.receive()
                held = time.monotonic_ns()
                data = body["data"]
                del body
                np.frombuffer(data, dtype=np.uint64).sum(dtype=np.uint64)  # read once, as bench.shm
                data.release()
                del data
                (_, cpu_in), (_, cpu_out) = unpacked[-2:]
                return ("got", {"held": held, "cpu_receive": cpu_out - cpu_in})

            conn.send(("ready", None))
            await aserve(conn, {"receive": receive})

    trio.run(main)


def sender(conn: Conn, address: str, folder: str, tree: str | None) -> None:
    _use_tree(tree)
    import numpy as np
    import trio

    import patterns
    import patterns._stream as stream
    from patterns.shm import memcopy

    copies: list[tuple[int, int]] = []
    sends: list[tuple[int, int]] = []
    _hook(memcopy, "copy_into", copies, "in")
    _hook(memcopy, "copy_into", copies, "out")
    _hook(stream.SendingSocket, "_try_send", sends, "in")
    payload: list[Any] = []

    async def main() -> None:
        async with patterns.Pair(dial=address, max_message_size=2 * SIZE,
                                 shared_memory=patterns.SharedMemory(directory=folder)) as sock:  # fmt: skip
            await sock.wait_for_peers(1)

            def prepare(seed: int) -> tuple[str, Any]:
                payload[:] = [np.arange(SIZE // 8, dtype=np.uint64) + np.uint64(seed)]
                return ("prepared", None)

            async def go() -> tuple[str, Any]:
                copies.clear()
                sends.clear()
                faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
                cpu, start = time.thread_time_ns(), time.monotonic_ns()
                await sock.send({"data": payload.pop()})
                faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults
                if len(copies) < 2 or not sends:  # a fresh segment is written, not copied
                    return ("sent", {"start": start, "copy": None, "faults": faults})
                (copy_in, cpu_in), (copy_out, cpu_out) = copies[-2:]
                return ("sent", {"start": start, "copy": copy_out - copy_in, "faults": faults,
                                 "cpu_pre": cpu_in - cpu, "cpu_post": sends[0][1] - cpu_out})  # fmt: skip

            conn.send(("ready", None))
            await aserve(conn, {"prepare": prepare, "go": go})

    trio.run(main)


def one_run(tree: str | None, rounds: int) -> list[dict[str, float]]:
    """``rounds`` isolated deliveries between a fresh pair of processes; the rows after WARMUP."""
    sockets = tempfile.mkdtemp(prefix="nngc-bench-costs-")
    folder = tempfile.mkdtemp(prefix="shm-bench-costs-", dir="/dev/shm")
    address = f"ipc://{sockets}/costs.ipc"
    rows: list[dict[str, float]] = []
    recv, send = Child("costs-receiver", 1), Child("costs-sender")
    try:
        recv.start(receiver, address, folder, tree)
        recv.receive("ready")
        send.start(sender, address, folder, tree)
        send.receive("ready")
        for seed in range(rounds):
            send.send("prepare", seed)
            send.receive("prepared", STEP_TIMEOUT_S)
            recv.send("receive")
            recv.receive("waiting", STEP_TIMEOUT_S)
            time.sleep(SETTLE_S)
            send.send("go")
            sent = send.receive("sent", STEP_TIMEOUT_S)
            got = recv.receive("got", STEP_TIMEOUT_S)
            if seed < WARMUP or sent["copy"] is None:
                continue
            delivered = (got["held"] - sent["start"]) / 1e6
            rows.append({"delivered": delivered, "copy": sent["copy"] / 1e6, "over": delivered - sent["copy"] / 1e6,
                         "cpu_pre": sent["cpu_pre"] / 1e6, "cpu_post": sent["cpu_post"] / 1e6,
                         "cpu_receive": got["cpu_receive"] / 1e6, "faults": sent["faults"]})  # fmt: skip
    finally:
        send.stop()
        recv.stop()
        left = sorted(os.listdir(folder))
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
    if left:
        raise RuntimeError(f"bench.shm_costs: segments left behind: {left}")
    return rows


def _quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values * 3)
    return {"p25": round(q1, 3), "median": round(median, 3), "p75": round(q3, 3)}


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("shm_costs", "Where an isolated 64 MiB shared-memory delivery spends its time besides the copy.",
                    "2 runs of 20 deliveries")  # fmt: skip
    p.add_argument("--runs", type=int, default=None, help="runs per tree (default 4, quick 2)")
    p.add_argument("--rounds", type=int, default=None, help="deliveries per run (default 60, quick 20)")
    p.add_argument("--base", default=None, help="another tree's root, measured in alternating runs")
    args = p.parse_args(argv)
    runs = args.runs or (2 if args.quick else 4)
    rounds = max(args.rounds or (20 if args.quick else 60), WARMUP + 2)
    trees = {"this": None, **({"base": str(Path(args.base).resolve())} if args.base else {})}

    def measure(machine: dict[str, Any]) -> dict[str, Any]:
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        loads: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(runs):
            for name, tree in trees.items():
                loads[name].append(os.getloadavg()[0])
                rows[name] += one_run(tree, rounds)
        summary = {name: {"deliveries": len(rows[name]), "load": [min(loads[name]), max(loads[name])],
                          **{key: _quartiles([r[key] for r in rows[name]]) for key in KEYS}}
                   for name in trees}  # fmt: skip
        return {"params": {"size": SIZE, "runs": runs, "rounds": rounds, "warmup": WARMUP, "trees": trees},
                "results": summary}  # fmt: skip

    def render(report: dict[str, Any]) -> str:
        lines = []
        for name, s in report["results"].items():
            lines.append(
                f"{name}: {s['deliveries']} deliveries, load average {s['load'][0]:.1f}-{s['load'][1]:.1f}"
            )
            lines += [f"  {key:<12} median {s[key]['median']:8.3f}  (p25 {s[key]['p25']:.3f}, p75 {s[key]['p75']:.3f})"
                      for key in KEYS]  # fmt: skip
        return "\n".join(lines) + "\n(ms; faults: minor page faults of the sender's thread over send)"

    return _cli.run(args, "shm_costs", "shm_costs: an isolated 64 MiB delivery besides its copy", measure, render,
                    packages=("numpy",))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
