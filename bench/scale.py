"""How a room grows: poll, vote and broadcast cost and open descriptors at N members.

    python -m bench.scale                      # N = 8, 32, 128, 256 on this machine (tcp)
    python -m bench.scale --quick              # N = 8, 32
    python -m bench.scale --n 256 --mode mesh  # the full member mesh instead of relaying past 32
    python -m bench.scale --hosts              # host on A, members spread over B and C of a namespace bed

Members run 8 to a process (:func:`members`, spawned :class:`~bench._children.Child` processes;
with ``--hosts`` the processes alternate between hosts B and C). For each N the room host
(here, or on A) times: every member in (``join_s``), ``--polls`` polls (median and p99, and how
many missed a member), one vote, and one member's broadcast until every other member has it
(arrival times on one kernel clock, so they compare across processes and namespaces). It
counts open descriptors in the host's process and in each member process. ``docs/scale.md``
explains the figures and what a room does past 32 members.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

import consensus

from ._children import Child, Conn, aserve
from ._common import percentile, summarize
from ._placement import ADDRESS_ENV, SPAWN_ENV
from ._placement import address as listen_address
from ._poll_members import split_members
from ._ports import free_port_block

PER_PROCESS = 8
JOIN_TIMEOUT_S = 120.0  # 256 members joining at once on 2 cores take 10-15 s
POLL_TIMEOUT_S = 5.0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ===================================================================== member processes (child side)
async def _members(conn: Conn, address: str, names: list[str]) -> dict[str, Any]:
    async def on_poll(question: Any) -> Any:
        return question

    arrivals: dict[str, list[float]] = {}
    joined: list[consensus.Member] = []
    stop, all_joined = trio.Event(), trio.Event()

    async def one(name: str) -> None:
        async with consensus.join(address, name=name, on_poll=on_poll, on_vote=lambda _m, options: options[0],
                                  join_timeout=JOIN_TIMEOUT_S) as member:  # fmt: skip
            joined.append(member)
            if len(joined) == len(names):
                all_joined.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_listen, member, arrivals)
                await stop.wait()
                nursery.cancel_scope.cancel()

    async def broadcast(tag: str) -> tuple[str, float]:
        sent = time.monotonic()  # one clock for every process of this kernel, namespaces included
        await joined[0].broadcast({"tag": tag})
        return ("sent", sent)

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
        await all_joined.wait()
        conn.send(("ready", len(joined)))
        await aserve(conn, {"broadcast": broadcast, "fds": lambda: ("fds", _fds()),
                            "arrivals": lambda tag: ("arrivals", arrivals.get(tag, []))})  # fmt: skip
        stop.set()
    return {"members": len(joined)}


async def _listen(member: consensus.Member, arrivals: dict[str, list[float]]) -> None:
    async for _sender, value in member.messages():
        if isinstance(value, dict) and isinstance(value.get("tag"), str):
            arrivals.setdefault(value["tag"], []).append(time.monotonic())


def members(conn: Conn, address: str, names: list[str]) -> dict[str, Any]:
    """Join the room as ``names``, report ready, then broadcast, count and report when asked."""
    return trio.run(_members, conn, address, names)


# ===================================================================== the room (here, or on host A)
async def room_of(n: int, mode: str, polls: int) -> dict[str, Any]:
    """One fresh room of ``n`` members: join, polls, a vote, a broadcast, descriptors."""
    address = f"tcp://{listen_address()}:{free_port_block(5)}"
    sizes = split_members(n, PER_PROCESS)
    names = iter(f"m{i:03d}" for i in range(n))
    workers = [Child(f"scale-{n}-{i}", i) for i in range(len(sizes))]
    try:
        async with consensus.host(address, relay_above=None if mode == "mesh" else 32) as room:
            t0 = time.monotonic()
            for worker, size in zip(workers, sizes):
                worker.start(members, address, [next(names) for _ in range(size)])
            with trio.fail_after(JOIN_TIMEOUT_S):
                await room.wait_for_members(n)
                for worker in workers:
                    await worker.areceive("ready", JOIN_TIMEOUT_S)
            join_s = time.monotonic() - t0
            elapsed: list[float] = []
            missing = missed = 0
            for i in range(polls):
                result = await room.poll(i, timeout=POLL_TIMEOUT_S)
                elapsed.append(result.elapsed * 1e3)
                lost = len(result.missing) + len(result.errors)
                missing, missed = missing + lost, missed + (lost > 0)
            decision = await room.vote("which?", options=["a", "b"], timeout=POLL_TIMEOUT_S)
            workers[0].send("broadcast", "b0")
            sent = await workers[0].areceive("sent")
            got: list[float] = []
            with trio.move_on_after(POLL_TIMEOUT_S):
                while len(got) < n - 1:  # every member but the sender; polled, at most 5 s
                    got = []
                    for worker in workers:
                        worker.send("arrivals", "b0")
                        got += await worker.areceive("arrivals")
                    if len(got) < n - 1:
                        await trio.sleep(0.05)
            fds = []
            for worker in workers:
                worker.send("fds")
                fds.append(await worker.areceive("fds"))
            host_fds = _fds()
            for worker in workers:  # members leave before the room closes under them
                worker.send("stop")
            for worker in workers:
                await worker.areceive("done")
    finally:
        for worker in workers:
            worker.stop()
    poll = summarize(elapsed, unit="ms")
    return {"n": n, "mode": mode if n > 32 else "mesh", "processes": len(sizes), "join_s": round(join_s, 2),
            "poll_p50_ms": poll["median_ms"], "poll_p99_ms": round(percentile(elapsed, 99.0), 3),
            "polls": polls, "polls_missing": missed, "members_missing": missing,
            "vote_ms": round(decision.elapsed * 1e3, 3), "vote_missing": len(decision.missing),
            "broadcast_reached": len(got), "broadcast_all_ms": round((max(got) - sent) * 1e3, 3) if got else None,
            "host_fds": host_fds, "member_process_fds": max(fds)}  # fmt: skip


def measure(ns: list[int], mode: str, polls: int) -> list[dict[str, Any]]:
    return [trio.run(room_of, n, mode, polls) for n in ns]


def on_a(conn: Conn, address: str, executables: list[str], ns: list[int], mode: str, polls: int) -> list[Any]:
    """``--hosts``: the room on host A (``address``), member processes through ``executables``."""
    os.environ[ADDRESS_ENV] = address
    os.environ[SPAWN_ENV] = os.pathsep.join(executables)
    return measure(ns, mode, polls)


def across_hosts(ns: list[int], mode: str, polls: int) -> list[dict[str, Any]]:
    from . import _hosts_suite

    if (why := _hosts_suite.unavailable()) is not None:
        raise SystemExit(f"bench.scale --hosts: cannot run here: {why}")
    with _hosts_suite.Run() as run:
        a = run.bed.hosts[0] if run.bed else None
        assert a is not None
        child = Child(f"scale-on-{a.name}", 0, executable=run.executables[0], daemon=False)
        try:
            child.start(on_a, a.ip, run.executables[1:], ns, mode, polls)
            rows: list[dict[str, Any]] = child.receive("done", timeout=JOIN_TIMEOUT_S * len(ns) + 300)
        finally:
            child.stop()
    return rows


COLUMNS = ("n", "mode", "processes", "join_s", "poll_p50_ms", "poll_p99_ms", "polls_missing", "vote_ms",
           "broadcast_all_ms", "broadcast_reached", "host_fds", "member_process_fds")  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[str(row.get(c)) for c in COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 8, 32 and 10 polls")
    parser.add_argument("--n", type=int, action="append", help="members (repeatable; default 8, 32, 128, 256)")
    parser.add_argument("--mode", choices=("relay", "mesh"), default="relay",
                        help="past 32 members: relay broadcasts through the host (default) or keep the mesh")
    parser.add_argument("--polls", type=int, help="polls per room (default 20, --quick 10)")
    parser.add_argument("--hosts", action="store_true", help="room on host A, members on B and C (root)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    ns = args.n or ([8, 32] if args.quick else [8, 32, 128, 256])
    polls = args.polls or (10 if args.quick else 20)
    rows = across_hosts(ns, args.mode, polls) if args.hosts else measure(ns, args.mode, polls)
    placement = "hosts: room on A, members on B+C" if args.hosts else "one host"
    print(f"bench.scale ({placement}, tcp, {PER_PROCESS} members per process, {polls} polls)")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"placement": placement, "rows": rows}, indent=2) + "\n")
    return 0 if all(r["polls_missing"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
