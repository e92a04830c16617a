"""A simulated agent at one end of a hotline, for the hotline tests.

    python tests/hotline_agent.py ADDRESS --listen|--dial [--name N] [--heartbeat S] [--plain]

Opens ``consensus.hotline`` with an ``on_ask`` handler (an async generator, so it can
answer streamed asks too). What it does is said by the asked value: ``{"stream": n}``
yields ``n`` chunks ``{"chunk": i, "by": NAME}``; ``{"sleep": s}`` sleeps ``s`` seconds
then answers; ``{"hold": true}`` answers once a ``release`` line came on stdin; ``{"raise": true}`` raises ``RuntimeError``; anything else is answered
with ``{"echo": value, "by": NAME}`` (``--plain``: the same from a plain function). Prints ``ready`` once connected (``taken ...``
when the listener refused it: it has another peer), and sends back
every value received with ``line.receive()``. Reads stdin: ``release`` lets the held asks
answer; ``quit`` (or end of input) leaves cleanly.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say, wait_for_quit

import consensus


def make_handler(name: str, released: trio.Event) -> Any:
    async def on_ask(value: Any) -> AsyncIterator[Any]:
        if isinstance(value, dict):
            if value.get("hold"):
                await released.wait()
            if "stream" in value:
                for i in range(int(value["stream"])):
                    yield {"chunk": i, "by": name}
                return
            if "sleep" in value:
                await trio.sleep(float(value["sleep"]))
            if value.get("raise"):
                raise RuntimeError(f"{name} was asked to fail")
        yield {"echo": value, "by": name}

    return on_ask


def make_plain_handler(name: str) -> Any:
    """The same answers from a plain function (run in a handler thread), for ``--plain``;
    ``{"big": n}`` is answered with ``n`` bytes (shared memory from 1 MiB), ``{"sleep": s}``
    blocks the thread."""

    def on_ask(value: Any) -> Any:
        if isinstance(value, dict):
            if "big" in value:
                return bytes(int(value["big"]))
            if "sleep" in value:
                time.sleep(float(value["sleep"]))
            if value.get("raise"):
                raise RuntimeError(f"{name} was asked to fail")
        return {"echo": value, "by": name}

    return on_ask


async def echo_back(line: consensus.Hotline) -> None:
    async for value in line:
        await line.send(value)


async def commands(released: trio.Event) -> None:
    """Until ``quit`` (or the end of stdin); ``release`` lets the held asks answer."""
    while True:
        text = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not text or text.strip() == "quit":
            return
        if text.strip() == "release":
            released.set()


async def main(args: argparse.Namespace) -> None:
    released = trio.Event()
    async with consensus.hotline(listen=args.address if args.listen else None,
                                 dial=args.address if args.dial else None, name=args.name, heartbeat=args.heartbeat,
                                 on_ask=make_plain_handler(args.name) if args.plain else make_handler(args.name, released),
                                 secret=consensus.Secret.from_env() if args.secret_env else None) as line:  # fmt: skip
        try:
            await line.wait_connected()
        except consensus.LineTaken:  # the listener has another peer: say so, stay until told to quit
            say(f"taken {line.state.name} connected={line.connected}")
            await wait_for_quit()
            return
        say("ready")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_back, line)
            await commands(released)
            nursery.cancel_scope.cancel()
    say("bye")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument("--listen", action="store_true")
    side.add_argument("--dial", action="store_true")
    parser.add_argument("--name", default="agent")
    parser.add_argument("--secret-env", action="store_true", help="seal the line with the secret in NNGC_SECRET")
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--plain", action="store_true", help="answer from a plain function (no streams)")
    trio.run(main, parser.parse_args())
