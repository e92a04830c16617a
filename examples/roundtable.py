"""A roundtable: six agent processes deliberate on one open question over three rounds.

    python examples/roundtable.py [--rounds 3] [--timeout 10] [--transport ipc|tcp] [--port P] [--anonymous]

The host opens a room; each agent is a separate OS process (started with "spawn": NNG
is not fork-safe) with a deterministic, rule-based "personality": some hold their view,
some follow the crowd, one is won over by an argument about queue groups, one by the
most confident camp. Each round they see the others' positions of the previous round
(``room.deliberate``), think for 50-300 ms and answer again. The deliberation stops when
everyone agrees or nobody changes (``until=[unanimous, no_change]``) or after
``--rounds``. The roundtable report is printed, then the final round's ballots are
re-counted under two other rules (``Decision.recount``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

import consensus
from consensus.decide import Seen, no_change, unanimous
from consensus.free_ports import free_room_address

QUESTION = "What is the most effective tool for agents on a local network?"

# name: (first stance, confidence, reason, personality)
AGENTS: dict[str, tuple[str, float, str, str]] = {
    "Claude": ("NATS", 0.9, "subjects and queue groups fit agents, with no broker state to babysit", "steadfast"),
    "GPT-5.4": ("NATS", 0.8, "NATS is light, fast and made for request/reply", "steadfast"),
    "Gemini": ("Redis", 0.85, "Redis is the most effective tool because it is everywhere", "steadfast"),
    "Sonar Pro": ("Redis", 0.5, "Redis is what most teams already run", "crowd"),
    "Qwen": ("ZeroMQ", 0.6, "ZeroMQ needs no server at all", "queue groups"),
    "Llama": ("MQTT", 0.4, "MQTT is simple and well known", "confidence"),
}


def persuade(name: str, held: str, others: Sequence[Seen]) -> tuple[str, str | None]:
    """The personality's rule: the stance to hold now, and whose label persuaded it."""
    _, confidence, _, personality = AGENTS[name]
    camps: dict[str, list[Seen]] = {}
    for seen in others:
        camps.setdefault(seen.position.stance, []).append(seen)
    if not camps or personality == "steadfast":
        return held, None
    if personality == "crowd":  # follows a camp once three others hold it
        stance, holders = max(camps.items(), key=lambda item: (len(item[1]), item[0]))
        if len(holders) >= 3 and stance != held:
            return stance, max(holders, key=lambda s: s.position.confidence).label
    elif personality == "queue groups":  # won over by the queue-groups argument
        for seen in others:
            if "queue groups" in (seen.position.reason or "") and seen.position.stance != held:
                return seen.position.stance, seen.label
    elif personality == "confidence":  # joins the camp with the most confidence, if well ahead
        stance, holders = max(camps.items(), key=lambda item: (sum(s.position.confidence for s in item[1]), item[0]))
        if stance != held and sum(s.position.confidence for s in holders) > 1.5 * confidence:
            return stance, max(holders, key=lambda s: s.position.confidence).label
    return held, None


def agent_main(address: str, name: str) -> None:
    """One simulated agent: a personality, a first stance, 50-300 ms of thinking per round."""
    stance, confidence, reason, _ = AGENTS[name]
    rng = random.Random(name)
    held, why = stance, reason

    async def on_deliberate(question: Any, number: int, others: Sequence[Seen], options: Any) -> consensus.Position:
        nonlocal held, why
        await trio.sleep(rng.uniform(0.05, 0.3))  # "thinking"
        now, persuader = persuade(name, held, others)
        if persuader is None:
            if number == 1:
                return consensus.Position(held, answer=f"{held}: {why}", reason=why, confidence=confidence)
            return consensus.Position(held, answer=f"I maintain my position: {held}", reason=why,
                                      confidence=confidence)  # fmt: skip
        held, why = now, f"{persuader}'s argument convinced me that {now} fits"
        return consensus.Position(now, answer=f"{now}", reason=why, confidence=confidence,
                                  persuaded_by=(persuader,))  # fmt: skip

    async def run() -> None:
        try:
            async with consensus.join(address, name=name, on_deliberate=on_deliberate) as member:
                async for _decision in member.decisions():
                    return  # done once the outcome is announced
        except consensus.RoomClosed:
            pass  # the decision frame was lost (the control bus is best effort): the room ended anyway

    trio.run(run)


def show(title: str, decision: consensus.Decision) -> None:
    outcome = decision.outcome if decision.outcome is not None else "no outcome"
    tally = ", ".join(f"{option} {votes:.2f}" for option, votes in decision.tally.items())
    print(f"  {title:<44} => {outcome}  ({tally})")


async def host_main(address: str, rounds: int, timeout: float, anonymous: bool, procs: list[Any]) -> None:
    async with consensus.host(address) as room:
        for proc in procs:
            proc.start()
        with trio.fail_after(30):
            await room.wait_for_members(len(AGENTS))
        print(f"{len(AGENTS)} agents joined the roundtable at {address}\n")
        result = await room.deliberate(QUESTION, rounds=rounds, timeout=timeout, anonymous=anonymous,
                                       until=[unanimous, no_change])  # fmt: skip
        print(result)
        print(f"\nRounds: {len(result.rounds)} (stopped by {result.stopped_by}); {result.elapsed:.2f} s")
        decision = result.decision
        if decision is None:
            return
        print("\nThe final ballots re-counted:")
        show(decision.rule, decision)
        show("Plurality", decision.recount(consensus.Plurality()))
        show("Supermajority(2/3), confidence-weighted",
             decision.recount(consensus.Supermajority(2 / 3, weighting=consensus.Weighting.CONFIDENCE)))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--transport", choices=["ipc", "tcp"], default="ipc")
    parser.add_argument("--port", type=int, default=0,
                        help="tcp: the room's first port (it uses P to P+4); 0: a run of five free ones")
    parser.add_argument("--anonymous", action="store_true")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="nngc-roundtable-")
    if args.transport == "ipc":
        address = f"ipc://{folder}/room"
    else:
        address = f"tcp://127.0.0.1:{args.port}" if args.port else free_room_address()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=agent_main, args=(address, name), daemon=True) for name in AGENTS]
    try:
        trio.run(host_main, address, args.rounds, args.timeout, args.anonymous, procs)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
