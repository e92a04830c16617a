"""Poll a group of agent processes with one survey and print every answer with its latency.

    python examples/survey.py [--agents 5] [--timeout 2.0] [--transport ipc|tcp] [--seed 7]

A surveyor listens; each agent is a separate OS process (started with the "spawn"
method: NNG is not fork-safe) that dials it with a ``patterns.Respondent`` and answers
with a simulated, deterministic opinion after a simulated thinking time. One agent
is made too slow on purpose, so the output also shows who missed the deadline.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

import patterns  # noqa: E402

OPINIONS = ["ship it", "needs more tests", "refactor first", "ship it, but watch latency", "not yet"]


def agent_main(address: str, name: str, seed: int, think: float) -> None:
    """One simulated agent process: answer every survey after ``think`` seconds."""

    async def run() -> None:
        rng = random.Random(f"{seed}-{name}")
        async with patterns.Respondent(dial=address, name=name) as respondent:
            async for survey in respondent:
                await trio.sleep(think)
                await survey.reply({"answer": rng.choice(OPINIONS), "confidence": round(rng.random(), 2)})

    try:
        trio.run(run)
    except KeyboardInterrupt:
        pass


async def poll(address: str, names: list[str], timeout: float, procs: list[multiprocessing.Process]) -> None:
    async with patterns.Surveyor(listen=address, name="host") as surveyor:
        for proc in procs:
            proc.start()
        with trio.fail_after(30):
            await surveyor.wait_for_peers(len(names))
        print(f"{len(names)} agents connected over {address.split('://')[0]}; asking, {timeout:.1f} s deadline\n")
        question = "Should we release version 0.1 today?"
        print(f"Q: {question}")
        start = time.perf_counter()
        answers: dict[str, tuple[float, object]] = {}
        async with await surveyor.survey(question, timeout=timeout) as replies:
            async for reply in replies:
                latency = time.perf_counter() - start
                answers[reply.sender] = (latency, reply.body)
                print(f"  {reply.sender:<8} {latency * 1000:8.1f} ms  {reply.body}")
                if len(answers) == len(names):
                    break  # everyone answered: no need to wait for the deadline
        elapsed = time.perf_counter() - start
        missing = [name for name in names if name not in answers]
        print(f"\n{len(answers)}/{len(names)} answered in {elapsed * 1000:.1f} ms", end="")
        print(f"; missing: {', '.join(missing)}" if missing else "; nobody missing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5, help="number of agent processes")
    parser.add_argument("--timeout", type=float, default=2.0, help="survey deadline in seconds")
    parser.add_argument("--transport", choices=["ipc", "tcp"], default="ipc")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="nngc-survey-")
    if args.transport == "ipc":
        address = f"ipc://{folder}/survey.ipc"
    else:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    names = [f"agent-{i}" for i in range(1, args.agents + 1)]
    rng = random.Random(args.seed)
    # Thinking times well inside the deadline, except the last agent, which is too slow.
    thinks = [rng.uniform(0.0, args.timeout / 4) for _ in names[:-1]] + [args.timeout * 2]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=agent_main, args=(address, name, args.seed, think), daemon=True)
        for name, think in zip(names, thinks)
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
