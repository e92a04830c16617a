"""Two agents refine a simulated 3D mesh turn by turn over a hotline, then one streams a reply.

    python examples/hotline.py [--turns 5] [--transport ipc|tcp] [--port P]

The host process plays "claude" and listens; "gemini" is a separate OS process (started
with "spawn": NNG is not fork-safe) that dials. On odd turns claude asks gemini for a
refinement of the mesh; on even turns claude hands the turn over and gemini asks claude.
Each refinement subdivides the mesh and improves its quality score (simulated,
deterministic). Then claude asks for an explanation, which gemini answers with an async
generator: the words arrive one by one as a stream. Last, both sides' statistics.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import shutil
import socket
import sys
import tempfile
from contextlib import aclosing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

import consensus

EXPLANATION = (
    "I split every triangle into four, moved the new vertices onto the limit surface, "
    "then relaxed the thin slivers near the seams so the quality score could climb."
)
START = {"vertices": 8, "faces": 12, "quality": 0.40, "history": []}


def refine(mesh: dict[str, Any], by: str) -> dict[str, Any]:
    """A deterministic "refinement": one subdivision step and a better quality score."""
    return {
        "vertices": mesh["vertices"] + mesh["faces"] * 3 // 2,  # one new vertex per edge
        "faces": mesh["faces"] * 4,
        "quality": round(1 - (1 - mesh["quality"]) * 0.6, 4),
        "history": [*mesh["history"], by],
    }


def summary(name: str, s: consensus.HotlineStatistics) -> str:
    return (
        f"  {name:<7} asks answered {s.asks_answered}, served {s.asks_served}, stale replies "
        f"{s.stale_replies}, expired {s.asks_expired}, connections {s.connections}, "
        f"frames sent/received {s.sent}/{s.received}"
    )


def gemini_main(address: str) -> None:
    """The dialing agent: answers claude's asks, and asks claude when handed the turn."""

    async def run() -> None:
        async def on_ask(request: dict[str, Any]) -> Any:  # an async generator: may stream
            if request["op"] == "refine":
                await trio.sleep(0.01)  # "thinking"
                yield refine(request["mesh"], "gemini")
            elif request["op"] == "explain":
                for word in EXPLANATION.split():
                    await trio.sleep(0.015)  # one simulated token at a time
                    yield word
            elif request["op"] == "stats":
                yield dataclasses.asdict(line.statistics())

        async with consensus.hotline(dial=address, name="gemini", on_ask=on_ask) as line:
            async for message in line:
                if message["op"] == "your_turn":
                    start = trio.current_time()
                    mesh = await line.ask({"op": "refine", "mesh": message["mesh"]}, timeout=5)
                    await line.send({"op": "refined", "mesh": mesh, "rtt": trio.current_time() - start})
                elif message["op"] == "bye":
                    return

    trio.run(run)


def show_turn(turn: int, asker: str, answerer: str, mesh: dict[str, Any], rtt: float) -> None:
    print(
        f"turn {turn}: {asker:>6} asks {answerer:<6} -> {mesh['vertices']:6d} vertices, "
        f"{mesh['faces']:6d} faces, quality {mesh['quality']:.3f}  (round trip {rtt * 1000:.1f} ms)"
    )


async def claude_main(address: str, turns: int, proc: Any) -> None:
    async def on_ask(request: dict[str, Any]) -> Any:
        await trio.sleep(0.01)  # "thinking"
        return refine(request["mesh"], "claude")

    async with consensus.hotline(listen=address, name="claude", on_ask=on_ask) as line:
        proc.start()
        with trio.fail_after(30):
            await line.wait_connected()
        print(f"claude listens at {address}; gemini dialed in (pid {proc.pid})")
        mesh: dict[str, Any] = dict(START)
        print(
            f"start : {mesh['vertices']:6d} vertices, {mesh['faces']:6d} faces, quality {mesh['quality']:.3f}"
        )
        for turn in range(1, turns + 1):
            if turn % 2:  # claude asks gemini
                start = trio.current_time()
                mesh = await line.ask({"op": "refine", "mesh": mesh}, timeout=5)
                show_turn(turn, "claude", "gemini", mesh, trio.current_time() - start)
            else:  # hand the turn over: gemini asks claude, then reports back
                await line.send({"op": "your_turn", "mesh": mesh})
                with trio.fail_after(5):
                    report = await line.receive()
                mesh = report["mesh"]
                show_turn(turn, "gemini", "claude", mesh, report["rtt"])
        print(f"history: {' -> '.join(mesh['history'])}")

        print("\nclaude asks gemini to explain; the answer streams in:\n  ", end="", flush=True)
        start = trio.current_time()
        first: float | None = None
        words = 0
        # aclosing: if this loop ends early, the stream is closed here, not by the GC elsewhere
        explain = line.ask_stream({"op": "explain"}, timeout=5)
        async with aclosing(explain) as stream:  # an async generator
            async for word in stream:
                if word is None:  # the end of the stream carries no value
                    continue
                if first is None:
                    first = trio.current_time() - start
                words += 1
                print(word, end=" ", flush=True)
        total = trio.current_time() - start
        print(
            f"\n  ({words} words; first token after {(first or 0) * 1000:.1f} ms, all in {total * 1000:.1f} ms)"
        )

        theirs = consensus.HotlineStatistics(**await line.ask({"op": "stats"}, timeout=5))
        print("\nstatistics")
        print(summary("claude", line.statistics()))
        print(summary("gemini", theirs))
        await line.send({"op": "bye"})
        with trio.move_on_after(2):  # let gemini hang up first, so the bye is not lost
            while line.connected:
                await trio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--transport", choices=["ipc", "tcp"], default="ipc")
    parser.add_argument("--port", type=int, default=0, help="tcp: the line's port; 0: one the system says is free")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="nngc-hotline-")
    if args.transport == "ipc":
        address = f"ipc://{folder}/mesh"
    elif args.port:
        address = f"tcp://127.0.0.1:{args.port}"
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        address = f"tcp://127.0.0.1:{port if port < 65000 else 47000}"
    proc = multiprocessing.get_context("spawn").Process(target=gemini_main, args=(address,), daemon=True)
    try:
        trio.run(claude_main, address, args.turns, proc)
    finally:
        if proc.pid is not None:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
