"""An agent written for asyncio or as a plain script, for the consensus.aio / blocking tests.

    python tests/bridge_agent.py FRONT MODE ADDRESS NAME [--raise] [--slow S] [--coroutine]

``FRONT`` is ``aio`` (``consensus.aio`` under ``asyncio.run``, async handlers that await
asyncio things: a queue fed by another asyncio task, ``asyncio.sleep``) or ``blocking``
(``consensus.blocking``, plain handlers). ``MODE``:

* ``member``: joins the room; ``on_poll`` answers ``{"q": question, "by": NAME}`` (after
  ``--slow`` seconds; ``--raise``: raises ``ValueError``), ``on_vote`` picks the first option.
* ``worker``: a ``Worker`` of the dispatcher at ADDRESS; tasks are ``{"n": int, "sleep": s}``,
  answered ``{"n": n, "by": NAME}``. (aio) A task with ``"hold": NAME`` is never answered:
  its worker prints ``holding N`` and keeps it until the process dies.
* ``line``: listens on a hotline at ADDRESS; an ask ``{"stream": n}`` is answered with ``n``
  chunks ``{"chunk": i, "by": NAME}`` (aio: an async generator), anything else with
  ``{"echo": value, "by": NAME}``. ``--coroutine`` (aio): a coroutine ``on_ask`` instead,
  without streams; ``{"raise": true}`` raises ``ValueError``, ``{"sleep": s}`` waits first
  (blocking: the same from its plain ``on_ask``).
* ``asker`` (blocking): dials the line at ADDRESS and asks what stdin says (``run_asker``).

Prints ``ready`` once joined, connected or listening. ``quit`` on stdin (or its end) leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _agent import say

from consensus import aio, blocking


async def run_aio(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    tickets: asyncio.Queue[int] = asyncio.Queue()

    async def feed() -> None:  # an asyncio task of this loop the handlers depend on
        n = 0
        while True:
            await asyncio.sleep(0.001)
            await tickets.put(n)
            n += 1

    async def on_poll(question: Any) -> Any:
        assert asyncio.get_running_loop() is loop
        await tickets.get()
        await asyncio.sleep(args.slow)
        if args.raise_:
            raise ValueError(f"{args.name} refuses {question!r}")
        return {"q": question, "by": args.name}

    async def on_vote(motion: Any, options: list[Any]) -> Any:
        await asyncio.sleep(0.001)
        return options[0]

    async def on_task(task: Any) -> Any:
        if task.get("hold") == args.name:  # kept until this process dies: the test kills it now
            say(f"holding {task['n']}")
            await asyncio.Event().wait()
        await asyncio.sleep(task.get("sleep", 0))
        return {"n": task["n"], "by": args.name}

    async def on_ask_coroutine(value: Any) -> Any:
        if isinstance(value, dict) and value.get("raise"):
            raise ValueError(f"{args.name} was asked to fail")
        if isinstance(value, dict) and "sleep" in value:
            await asyncio.sleep(value["sleep"])
        return {"echo": value, "by": args.name}

    async def on_ask(value: Any) -> AsyncIterator[Any]:
        if isinstance(value, dict) and "stream" in value:
            for i in range(value["stream"]):
                await asyncio.sleep(0)
                yield {"chunk": i, "by": args.name}
        else:
            yield {"echo": value, "by": args.name}

    feeder = asyncio.create_task(feed())
    if args.mode == "member":
        opening: Any = aio.join(args.address, name=args.name, on_poll=on_poll, on_vote=on_vote)
    elif args.mode == "worker":
        opening = aio.Worker(args.address, name=args.name, handler=on_task, concurrency=2)
    else:
        opening = aio.hotline(listen=args.address, name=args.name,
                              on_ask=on_ask_coroutine if args.coroutine else on_ask)  # fmt: skip
    async with opening as thing:
        if args.mode == "worker":
            await thing.wait_connected()
        say("ready")
        while (line := await asyncio.to_thread(sys.stdin.readline)) and line.strip() != "quit":
            pass
    feeder.cancel()


def run_blocking(args: argparse.Namespace) -> None:
    def on_poll(question: Any) -> Any:
        time.sleep(args.slow)
        if args.raise_:
            raise ValueError(f"{args.name} refuses {question!r}")
        return {"q": question, "by": args.name}

    def on_vote(motion: Any, options: list[Any]) -> Any:
        return options[0]

    def on_task(task: Any) -> Any:
        time.sleep(task.get("sleep", 0))
        return {"n": task["n"], "by": args.name}

    def on_ask(value: Any) -> Any:
        if isinstance(value, dict) and "sleep" in value:
            time.sleep(value["sleep"])
        if isinstance(value, dict) and value.get("raise"):
            raise ValueError(f"{args.name} was asked to fail")
        return {"echo": value, "by": args.name}

    if args.mode == "asker":
        run_asker(args)
        return
    if args.mode == "member":
        opening: Any = blocking.join(args.address, name=args.name, on_poll=on_poll, on_vote=on_vote)
    elif args.mode == "worker":
        opening = blocking.Worker(args.address, name=args.name, handler=on_task, concurrency=2)
    else:
        opening = blocking.hotline(listen=args.address, name=args.name, on_ask=on_ask)
    with opening as thing:
        if args.mode == "worker":
            thing.wait_connected()
        say("ready")
        lines: Iterator[str] = iter(sys.stdin.readline, "")
        for line in lines:
            if line.strip() == "quit":
                break


def run_asker(args: argparse.Namespace) -> None:
    """Dial the line at ADDRESS; each ``ask JSON`` on stdin is asked (prints ``asking``, then
    ``answer JSON`` or ``error TYPE``)."""
    with blocking.hotline(dial=args.address, name=args.name) as line:
        line.wait_connected()
        say("ready")
        for command in iter(sys.stdin.readline, ""):
            if command.strip() == "quit":
                break
            if command.startswith("ask "):
                say("asking")
                try:
                    say(f"answer {json.dumps(line.ask(json.loads(command[4:]), timeout=30))}")
                except Exception as exc:  # noqa: BLE001 - the test reads what the asker saw
                    say(f"error {type(exc).__name__}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("front", choices=["aio", "blocking"])
    parser.add_argument("mode", choices=["member", "worker", "line", "asker"])
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--raise", dest="raise_", action="store_true")
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--coroutine", action="store_true", help="aio line: on_ask is a coroutine (no streams)")
    args = parser.parse_args()
    if args.front == "aio":
        asyncio.run(run_aio(args))
    else:
        run_blocking(args)


if __name__ == "__main__":
    main()
