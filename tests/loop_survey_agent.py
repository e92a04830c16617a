"""An asyncio member whose surveys its loop reads, for tests/test_aio_loop_surveys.py.

    python tests/loop_survey_agent.py ADDRESS NAME [--secret S] [--drop-first-welcome]

Joins through ``consensus.aio`` with asyncio ``on_poll`` and ``on_vote``. ``on_poll``
answers ``{"q": question, "by": NAME, "loop": True}`` (True when it runs on this loop);
``"raise"`` raises ``ValueError``; ``{"sleep": s}`` prints ``asleep`` and sleeps first
(printing ``cancelled`` when cancelled); ``{"echo": v}`` answers ``v``; ``"big"`` answers
300 kB of bytes (too large for the loop's own send).
``on_vote`` picks the first option. ``--drop-first-welcome``: the member ignores the
host's first welcome, so the surveys sent meanwhile come before its welcome;
``--backlog N``: the loop pauses once N surveys wait for trio; ``--trio``: trio reads.

Prints ``ready`` once joined; ``stats`` on stdin prints one JSON line (the member's
statistics, its respondent's counters, how many surveys the loop answered itself and
how many it handed to trio, whether it was lent); ``quit`` (or the end of stdin) leaves,
then prints ``left``; a block the host ended prints ``closed``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _agent import say
from _survey_agent import parser as agent_parser
from _survey_agent import prepare, stats_line

from consensus import aio
from consensus.errors import RoomClosed
from consensus.room import loop_surveys


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()

    async def on_poll(question: Any) -> Any:
        here = asyncio.get_running_loop() is loop
        if isinstance(question, dict) and "echo" in question:
            return question["echo"]
        if question == "raise":
            raise ValueError(f"{args.name} refuses")
        if question == "big":
            return b"x" * 300_000
        if isinstance(question, dict) and "sleep" in question:
            say("asleep")
            try:
                await asyncio.sleep(question["sleep"])
            except asyncio.CancelledError:
                say("cancelled")
                raise
        return {"q": question, "by": args.name, "loop": here}

    async def on_vote(motion: Any, options: list[Any]) -> Any:
        return options[0]

    try:
        async with aio.join(args.address, name=args.name, on_poll=on_poll, on_vote=on_vote,
                            secret=args.secret, join_timeout=20, handler_timeout=args.handler_timeout) as me:  # fmt: skip
            say("ready")
            while (line := await asyncio.to_thread(sys.stdin.readline)) and line.strip() != "quit":
                if line.strip() == "stats":
                    say(stats_line(me))
    except RoomClosed:
        say("closed")
        return
    say("left")


if __name__ == "__main__":
    parser = agent_parser("the loop")
    parsed = parser.parse_args()
    prepare(parsed, loop_surveys.LoopSurveys)
    asyncio.run(main(parsed))
