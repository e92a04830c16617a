"""Poll a room of agent processes and print every answer with its latency, and who was missing.

    python examples/survey.py [--agents 5] [--timeout 2.0] [--transport ipc|tcp] [--port P] [--seed 7]

The host opens a room; each agent is a separate OS process (started with "spawn":
NNG is not fork-safe) that joins it with ``consensus.join`` and answers polls with a
simulated, deterministic opinion after a simulated thinking time. Three agents
misbehave on purpose: one's handler raises, one is too slow for the deadline, and one
process dies while the poll runs, so the output also shows errors, a timeout and who
was missing. The poll returns as soon as every member has answered, failed or left.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
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

OPINIONS = ["ship it", "needs more tests", "refactor first", "ship it, but watch latency", "not yet"]


def agent_main(address: str, name: str, seed: int, think: float, role: str) -> None:
    """One simulated agent process: answer every poll after ``think`` seconds."""
    rng = random.Random(f"{seed}-{name}")

    async def on_poll(question: Any) -> dict[str, Any]:
        if role == "dies":
            os._exit(1)  # the process vanishes mid-poll, as a crashed agent would
        await trio.sleep(think)
        if role == "raises":
            raise RuntimeError("my model endpoint is down")
        return {"answer": rng.choice(OPINIONS), "confidence": round(rng.random(), 2)}

    async def run() -> None:
        async with consensus.join(address, name=name, on_poll=on_poll):
            await trio.sleep_forever()

    try:
        trio.run(run)
    except (KeyboardInterrupt, consensus.RoomClosed):  # the host closing the room ends the agent
        pass


async def poll(address: str, names: list[str], timeout: float, procs: list[Any]) -> None:
    async with consensus.host(address) as room:
        for proc in procs:
            proc.start()
        with trio.fail_after(30):
            await room.wait_for_members(len(names))
        print(
            f"{len(names)} agents joined over {address.split('://')[0]}; polling with a {timeout:.1f} s deadline\n"
        )
        question = "Should we release version 0.1 today?"
        print(f"Q: {question}")
        result = await room.poll(question, timeout=timeout)
        for name in sorted(result.latencies, key=result.latencies.__getitem__):
            latency = result.latencies[name] * 1000
            if name in result.answers:
                print(f"  {name:<8} {latency:8.1f} ms  {result.answers[name]}")
            else:
                print(f"  {name:<8} {latency:8.1f} ms  error: {result.errors[name]}")
        print(
            f"\n{len(result.answers)}/{len(result.expected)} answered in {result.elapsed * 1000:.1f} ms",
            end="",
        )
        print(f"; missing: {', '.join(sorted(result.missing))}" if result.missing else "; nobody missing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5, help="number of agent processes (at least 4)")
    parser.add_argument("--timeout", type=float, default=2.0, help="poll deadline in seconds")
    parser.add_argument("--transport", choices=["ipc", "tcp"], default="ipc")
    parser.add_argument("--port", type=int, default=0,
                        help="tcp: the room's first port (it uses P to P+4); 0: a run of five free ones")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.agents < 4:
        parser.error("--agents must be at least 4 (three of them misbehave on purpose)")
    folder = tempfile.mkdtemp(prefix="nngc-survey-")
    if args.transport == "ipc":
        address = f"ipc://{folder}/room"
    else:
        address = f"tcp://127.0.0.1:{args.port}" if args.port else free_room_address()
    names = [f"agent-{i}" for i in range(1, args.agents + 1)]
    rng = random.Random(args.seed)
    # Thinking times well inside the deadline; the last three agents misbehave.
    roles = ["answers"] * (len(names) - 3) + ["raises", "too slow", "dies"]
    thinks = [rng.uniform(0.0, args.timeout / 4) for _ in names]
    thinks[-2] = args.timeout * 3
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=agent_main, args=(address, name, args.seed, think, role), daemon=True)
        for name, think, role in zip(names, thinks, roles)
    ]
    try:
        trio.run(poll, address, names, args.timeout, procs)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
