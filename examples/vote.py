"""A room of agent processes votes on a motion; the ballots are then re-counted under other rules.

    python examples/vote.py [--agents 7] [--timeout 5] [--transport ipc|tcp] [--port P] [--seed 23]

The host opens a room; each agent is a separate OS process (started with "spawn":
NNG is not fork-safe) that joins it with ``consensus.join``. Agents have simulated,
deterministic opinions and confidences (from the seed). The host runs the vote under
``Majority`` (more than half of the electorate's weight), prints the tally and the
decision, then re-counts the very same ballots with ``consensus.tally`` under
``Plurality`` and a confidence-weighted ``Supermajority(2/3)``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

import consensus
from consensus.free_ports import free_room_address

MOTION = "Adopt the new retrieval pipeline for the next release"
OPTIONS = ["adopt", "reject", "defer"]
REASONS = {
    "adopt": "recall improved on every benchmark I ran",
    "reject": "latency regressions are not acceptable",
    "defer": "we need one more week of evaluation",
}


def agent_main(address: str, name: str, seed: int) -> None:
    """One simulated agent: a deterministic opinion, confidence and thinking time."""
    rng = random.Random(f"{seed}:{name}")
    choice = rng.choices(OPTIONS, weights=[5, 3, 2])[0]
    confidence = round(rng.uniform(0.35, 1.0), 2)
    abstain = rng.random() < 0.1

    async def on_vote(motion: Any, options: list[Any]) -> consensus.Ballot:
        await trio.sleep(rng.uniform(0.0, 0.05))  # "thinking"
        if abstain:
            return consensus.Ballot(None, reason="conflict of interest")
        return consensus.Ballot(choice, confidence=confidence, reason=REASONS[choice])

    async def run() -> None:
        try:
            async with consensus.join(address, name=name, on_vote=on_vote) as member:
                async for _decision in member.decisions():
                    return  # this agent's job is done once the decision is announced
        except consensus.RoomClosed:
            pass  # the host closed the room before this agent read the decision: the vote is over

    trio.run(run)


def show(title: str, decision: consensus.Decision) -> None:
    print(f"\n{title}")
    weight = max(decision.tally.values(), default=0) or 1
    for option, votes in decision.tally.items():
        print(f"  {option:<8} {votes:6.2f}  {'#' * round(20 * votes / weight)}")
    outcome = decision.outcome if decision.outcome is not None else "no decision"
    notes = []
    if decision.tie:
        notes.append(f"tie between {', '.join(map(str, decision.tied))}")
    if not decision.quorum_met:
        notes.append("quorum not met")
    if decision.abstained:
        notes.append(f"abstained: {', '.join(sorted(decision.abstained))}")
    if decision.missing:
        notes.append(f"missing: {', '.join(sorted(decision.missing))}")
    print(f"  => {outcome}  [{decision.rule}; electorate weight {decision.electorate_weight:g}]")
    if notes:
        print("     " + "; ".join(notes))


async def host_main(address: str, names: list[str], timeout: float, procs: list[Any]) -> None:
    async with consensus.host(address) as room:
        for proc in procs:
            proc.start()
        with trio.fail_after(30):
            await room.wait_for_members(len(names))
        print(f"{len(names)} agents joined the room at {address}")
        print(f"Motion: {MOTION!r}; options {OPTIONS}")
        decision = await room.vote(MOTION, options=OPTIONS, timeout=timeout, quorum=None)
        print(f"\nBallots ({decision.elapsed * 1000:.1f} ms):")
        for name in sorted(decision.ballots):
            ballot = decision.ballots[name]
            choice = "(abstains)" if ballot.choice is None else ballot.choice
            print(f"  {name:<9} {choice:<10} confidence {ballot.confidence:.2f}  {ballot.reason or ''}")
        show("Majority (more than half of the electorate)", decision)
        electorate = dict.fromkeys(decision.ballots.keys() | decision.missing, 1.0)
        for title, rule in [
            ("Plurality (most votes wins; ties give no outcome)", consensus.Plurality()),
            (
                "Supermajority(2/3), confidence-weighted",
                consensus.Supermajority(2 / 3, weighting=consensus.Weighting.CONFIDENCE),
            ),
        ]:
            show(title, consensus.tally(decision.ballots, options=OPTIONS, rule=rule, electorate=electorate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--transport", choices=["ipc", "tcp"], default="ipc")
    parser.add_argument("--port", type=int, default=0,
                        help="tcp: the room's first port (it uses P to P+4); 0: a run of five free ones")
    parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="nngc-vote-")
    if args.transport == "ipc":
        address = f"ipc://{folder}/room"
    else:
        address = f"tcp://127.0.0.1:{args.port}" if args.port else free_room_address()
    names = [f"agent-{i}" for i in range(1, args.agents + 1)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=agent_main, args=(address, name, args.seed), daemon=True) for name in names]
    try:
        trio.run(host_main, address, names, args.timeout, procs)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
