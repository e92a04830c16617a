"""A room member that keeps hotlines to other members, for ``tests/test_room_lines.py``.

    python tests/line_agent.py ADDRESS NAME

Answers asks on its lines with ``{"by": NAME, "got": value}``. Prints ``joined``, then
``line <peer>`` for each line another member opened to it. Commands on stdin:
``ask <peer> <json>`` waits until ``peer`` is in its roster, opens (or reuses) the
line to it and asks, then prints
``answer <json>`` or ``error <ExceptionType> <message>``; ``stats`` prints
``opened <hotlines_opened>``; ``quit`` leaves the room.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say

import consensus


async def main(args: argparse.Namespace) -> None:
    async def on_ask(value: Any) -> Any:
        return {"by": args.name, "got": value}

    async with (
        consensus.join(args.address, name=args.name, on_ask=on_ask) as member,
        trio.open_nursery() as nursery,
    ):
        say("joined")

        async def incoming() -> None:
            async for peer, _line in member.hotlines():
                say("line", peer)

        async def ask(peer: str, value: Any) -> None:
            try:
                while peer not in member.members:  # the host's roster may not have reached us yet
                    await member.wait_members_changed()
                line = await member.hotline(peer, timeout=10)
                say("answer", json.dumps(await line.ask(value, timeout=5)))
            except consensus.ConsensusError as exc:
                say("error", type(exc).__name__, exc)

        nursery.start_soon(incoming)
        async for text in trio.wrap_file(sys.stdin):
            command, _, rest = text.strip().partition(" ")
            if command == "ask":
                peer, _, value = rest.partition(" ")
                nursery.start_soon(ask, peer, json.loads(value))
            elif command == "stats":
                say("opened", member.statistics().hotlines_opened)
            elif command == "quit":
                break
        nursery.cancel_scope.cancel()
    say("left")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    trio.run(main, parser.parse_args())
