"""The host's CPU for the count of a vote with a quorum (issue 18): hot loop, and in a room.

A :class:`~consensus.decide.vote.VoteRound` with a quorum asks after each accepted ballot
whether any ballot still possible could change the decision. The hot loop times everything
the round does with the ballots: ``ballot()`` for each member in turn until the round is
complete (decided early, or everyone voted), then ``decision()``. One process, no I/O:
``time.thread_time`` of this thread, per vote, median of ``--rounds`` rounds of
``--votes`` votes each.

``--room``: the same vote (``whole`` below) through a room: the host here, the members
8 to a spawned process, ``room.vote(..., quorum=...)`` ``--votes`` times per round; the
host's trio thread CPU (``time.thread_time``) and process CPU (NNG's threads too) around
each call, medians. A pause after each vote (untimed) lets late ballots drain.

Variants (each at ``--n`` members, default 8 and 64):

* ``whole``: weights 1, ``Majority()``, quorum a majority of the members; two thirds vote
  ``a``, one third ``b`` (so the decision settles near the end, not at once);
* ``fraction``: weights 0.5, 1 and 1.5 in turn, ``Majority(weighting=CONFIDENCE)``,
  confidences 0.7 and 0.9 (exact ``Fraction`` sums), same quorum and choices;
* ``fallback``: weights 1, ``[Supermajority(2/3), Plurality()]``, same quorum and choices.

    python -m bench.vote_cpu                   # n = 8 and 64, 5 rounds
    python -m bench.vote_cpu --n 64 --rounds 9
    python -m bench.vote_cpu --room --votes 30  # in a room, ipc

Against another tree (the count before a change, say): from a directory holding a link
``bench`` to this one, ``PYTHONPATH=.:<tree> python -m bench.vote_cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from typing import Any

import trio

import consensus
from consensus.decide.ballot import Ballot
from consensus.decide.rules import Majority, Plurality, Rules, Supermajority, Weighting
from consensus.decide.vote import VoteRound

VARIANTS = ("whole", "fraction", "fallback")


def _setup(variant: str, n: int) -> tuple[dict[str, float], Rules, list[tuple[str, Ballot]]]:
    names = [f"m{i:03d}" for i in range(n)]
    choices = ["b" if i % 3 == 2 else "a" for i in range(n)]
    if variant == "fraction":
        electorate = {name: (0.5, 1.0, 1.5)[i % 3] for i, name in enumerate(names)}
        rule: Rules = Majority(weighting=Weighting.CONFIDENCE)
        ballots = [(name, Ballot(choice, (0.7, 0.9)[i % 2], vote=1)) for i, (name, choice) in
                   enumerate(zip(names, choices))]  # fmt: skip
    else:
        electorate = dict.fromkeys(names, 1.0)
        rule = [Supermajority(2 / 3), Plurality()] if variant == "fallback" else Majority()
        ballots = [(name, Ballot(choice, vote=1)) for name, choice in zip(names, choices)]
    return electorate, rule, ballots


def one_round(variant: str, n: int, votes: int) -> tuple[float, int, Any]:
    """Thread CPU per vote (seconds), ballots taken per vote, the last decision's outcome."""
    electorate, rule, ballots = _setup(variant, n)
    quorum = n // 2 + 1
    taken = 0
    outcome = None
    start = time.thread_time()
    for _ in range(votes):
        round_ = VoteRound(1, electorate=electorate, options=("a", "b"), rule=rule, quorum=quorum)
        taken = 0
        for name, ballot in ballots:
            round_.ballot(name, ballot)
            taken += 1
            if round_.complete:
                break
        outcome = round_.decision(elapsed=0.0).outcome
    return (time.thread_time() - start) / votes, taken, outcome


# ===================================================================== in a room
PER_PROCESS = 8
JOIN_TIMEOUT_S = 60.0
VOTE_TIMEOUT_S = 5.0
DRAIN_S = 0.05


async def _members(conn: Any, address: str, names: list[str]) -> dict[str, Any]:
    from ._children import aserve

    joined: list[consensus.Member] = []
    stop, all_joined = trio.Event(), trio.Event()

    async def one(name: str) -> None:
        choice = "b" if int(name[1:]) % 3 == 2 else "a"

        async def on_vote(motion: Any, options: list[Any]) -> Any:
            return choice

        async with consensus.join(address, name=name, on_vote=on_vote, join_timeout=JOIN_TIMEOUT_S) as member:
            joined.append(member)
            if len(joined) == len(names):
                all_joined.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, member)
                await stop.wait()
                nursery.cancel_scope.cancel()

    async def drain(member: consensus.Member) -> None:
        async for _ in member.decisions():
            pass

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(one, name)
        await all_joined.wait()
        conn.send(("ready", len(joined)))
        await aserve(conn)
        stop.set()
    return {"members": len(joined)}


def members(conn: Any, address: str, names: list[str]) -> dict[str, Any]:
    """Join the room as ``names``; each votes ``a``, or ``b`` if its number is 2 modulo 3."""
    return trio.run(_members, conn, address, names)


async def _room(n: int, rounds: int, votes: int, tmpdir: str) -> dict[str, Any]:
    from ._children import Child
    from ._poll_members import split_members

    address = f"ipc://{tmpdir}/vote-{n}"
    sizes = split_members(n, PER_PROCESS)
    names = iter(f"m{i:03d}" for i in range(n))
    workers = [Child(f"vote-cpu-{n}-{i}", i) for i in range(len(sizes))]
    thread_ms: list[float] = []
    process_ms: list[float] = []
    ballots = []
    try:
        async with consensus.host(address) as room:
            for worker, size in zip(workers, sizes, strict=True):
                worker.start(members, address, [next(names) for _ in range(size)])
            with trio.fail_after(JOIN_TIMEOUT_S * 2):
                await room.wait_for_members(n)
            for worker in workers:
                await worker.areceive("ready")
            await trio.sleep(0.3)
            for i in range(rounds * votes + 3):  # the first 3 untimed
                t0, p0 = time.thread_time(), time.process_time()
                decision = await room.vote("which?", options=["a", "b"], quorum=n // 2 + 1, timeout=VOTE_TIMEOUT_S)
                t1, p1 = time.thread_time(), time.process_time()
                if i >= 3:
                    thread_ms.append((t1 - t0) * 1e3)
                    process_ms.append((p1 - p0) * 1e3)
                    ballots.append(len(decision.ballots))
                await trio.sleep(DRAIN_S)
    finally:
        for worker in workers:
            worker.stop()
    return {"n": n, "votes": len(thread_ms), "ballots_median": statistics.median(ballots),
            "thread_ms": round(statistics.median(thread_ms), 4), "process_ms": round(statistics.median(process_ms), 4),
            "load": os.getloadavg()[0]}  # fmt: skip


def room_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vote-cpu-") as tmpdir:
        for n in args.n or [8, 64]:
            row = trio.run(_room, n, args.rounds, args.votes or 20, tmpdir)
            if args.json:
                print(json.dumps(row))
            else:
                print(f"room n={n:3d} host thread {row['thread_ms']:.3f} ms/vote, process {row['process_ms']:.3f} "
                      f"ms/vote ({row['votes']} votes, {row['ballots_median']} ballots counted, load "
                      f"{row['load']:.2f})")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="members (repeatable; default 8 and 64)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--votes", type=int, default=0, help="votes per round (default: ~0.3 s of work)")
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--json", action="store_true", help="one JSON line per variant")
    parser.add_argument("--room", action="store_true", help="in a room (the whole variant)")
    args = parser.parse_args(argv)
    if args.room:
        room_main(args)
        return
    for n in args.n or [8, 64]:
        for variant in args.variant or VARIANTS:
            votes = args.votes or max(3, int(0.3 / max(one_round(variant, n, 3)[0], 1e-6)))
            runs = [one_round(variant, n, votes) for _ in range(args.rounds)]
            per_vote = [seconds * 1e3 for seconds, _, _ in runs]
            row = {"n": n, "variant": variant, "votes": votes, "ballots": runs[-1][1], "outcome": runs[-1][2],
                   "ms_per_vote": round(statistics.median(per_vote), 4),
                   "ms_min": round(min(per_vote), 4), "ms_max": round(max(per_vote), 4),
                   "load": os.getloadavg()[0]}  # fmt: skip
            if args.json:
                print(json.dumps(row))
            else:
                print(f"n={n:3d} {variant:9s} {row['ms_per_vote']:8.3f} ms/vote (min {row['ms_min']:.3f}, max "
                      f"{row['ms_max']:.3f}; {row['ballots']} ballots, outcome {row['outcome']!r}, "
                      f"{votes} votes/round, load {row['load']:.2f})")


if __name__ == "__main__":
    main()
