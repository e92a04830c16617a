"""An asyncio member whose surveys its loop reads, for tests/test_aio_loop_surveys.py.

    python tests/loop_survey_agent.py ADDRESS NAME [--secret S] [--drop-first-welcome]

Joins through ``consensus.aio`` with asyncio ``on_poll`` and ``on_vote``. ``on_poll``
answers ``{"q": question, "by": NAME, "loop": True}`` (True when it runs on this loop);
``"raise"`` raises ``ValueError``; ``{"sleep": s}`` prints ``asleep`` and sleeps first
(printing ``cancelled`` when cancelled); ``"big"`` answers 300 kB of bytes (too large for the loop's own send).
``on_vote`` picks the first option. ``--drop-first-welcome``: the member ignores the
host's first welcome, so the surveys sent meanwhile come before its welcome;
``--backlog N``: the loop pauses once N surveys wait for trio.

Prints ``ready`` once joined; ``stats`` on stdin prints one JSON line (the member's
statistics, its respondent's counters, how many surveys the loop answered itself and
how many it handed to trio, whether it was lent); ``quit`` (or the end of stdin) leaves,
then prints ``left``; a block the host ended prints ``closed``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _agent import say

from consensus import aio
from consensus.errors import RoomClosed
from consensus.room import loop_surveys
from consensus.room.member_protocol import MemberProtocol

counted = {"here": 0, "trio": 0}


def count_paths() -> None:
    start, to_trio = loop_surveys.LoopSurveys._start, loop_surveys.LoopSurveys._to_trio

    def counting_start(self: Any, *args: Any) -> None:
        counted["here"] += 1
        start(self, *args)

    def counting_to_trio(self: Any, items: list[Any]) -> None:
        counted["trio"] += sum(not isinstance(item, loop_surveys.Adopted) for item in items)
        to_trio(self, items)

    loop_surveys.LoopSurveys._start = counting_start  # type: ignore[method-assign, assignment]
    loop_surveys.LoopSurveys._to_trio = counting_to_trio  # type: ignore[method-assign]


def drop_first_welcome() -> None:
    on_welcome = MemberProtocol._on_welcome
    dropped: list[bool] = []

    def once(self: MemberProtocol, welcome: Any) -> Any:
        if not dropped:
            dropped.append(True)
            return []
        return on_welcome(self, welcome)

    MemberProtocol._on_welcome = once  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()

    async def on_poll(question: Any) -> Any:
        here = asyncio.get_running_loop() is loop
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
                            secret=args.secret, join_timeout=20) as me:  # fmt: skip
            say("ready")
            while (line := await asyncio.to_thread(sys.stdin.readline)) and line.strip() != "quit":
                if line.strip() == "stats":
                    target = me._target
                    statistics = me.statistics()  # first: it takes the replies sent elsewhere into the books
                    sock = me._thread.call_sync(target._respondent.statistics)
                    say(json.dumps({"member": dataclasses.asdict(statistics), "received": sock.messages_received,
                                    "sent": sock.messages_sent, "lent": target._answerer.lent is not None,
                                    "pauses": getattr(target._answerer.lent, "pauses", 0), **counted}))  # fmt: skip
    except RoomClosed:
        say("closed")
        return
    say("left")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--secret")
    parser.add_argument("--drop-first-welcome", action="store_true")
    parser.add_argument("--backlog", type=int, help="surveys handed to trio before the loop pauses")
    parsed = parser.parse_args()
    if parsed.backlog is not None:
        from consensus.room import answering

        answering.BACKLOG = parsed.backlog  # type: ignore[attr-defined]
    count_paths()
    if parsed.drop_first_welcome:
        drop_first_welcome()
    asyncio.run(main(parsed))
