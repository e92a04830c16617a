"""A simulated agent that asks, for the tests of served trio lines (tests/test_hotline_served.py).

    python tests/asking_agent.py ADDRESS NAME

Dials ``ADDRESS`` with an ``async def`` echo as ``on_ask`` (``{"echo": value, "by": NAME}``),
prints ``ready`` once connected, then reads commands on stdin: ``ask N`` asks ``{"i": i}``
for i < N, one after the other, and prints ``asked`` followed by the answers as JSON;
``hang`` asks ``{"hang": true}`` (the peer's handler blocks; this child is killed meanwhile);
``quit`` (or end of input) leaves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say

import consensus


async def main(address: str, name: str) -> None:
    async def echo(value: Any) -> Any:
        return {"echo": value, "by": name}

    async with consensus.hotline(dial=address, name=name, on_ask=echo) as line:
        await line.wait_connected()
        say("ready")
        while True:
            text = (await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)).split()
            if not text or text[0] == "quit":
                return
            if text[0] == "ask":
                answers = [await line.ask({"i": i}, timeout=30) for i in range(int(text[1]))]
                say("asked", json.dumps(answers))
            elif text[0] == "hang":
                say("hanging")
                await line.ask({"hang": True}, timeout=60)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
