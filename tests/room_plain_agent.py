"""A room member with plain (``def``) handlers, for the thread-reply tests.

    python tests/room_plain_agent.py ADDRESS NAME

``on_poll(question)`` answers ``{"echo": question, "by": NAME}``; a question
``{"raise": true}`` raises RuntimeError, ``{"sleep": S}`` sleeps S seconds first.
``on_vote`` picks the first option. Prints ``joined``; on ``quit`` (stdin) it leaves and
prints ``stats <json counters>`` then ``bye``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say, wait_for_quit

import consensus


def main(address: str, name: str) -> None:
    def on_poll(question: Any) -> Any:
        if isinstance(question, dict) and question.get("raise"):
            raise RuntimeError(f"{name} was asked to fail")
        if isinstance(question, dict) and "sleep" in question:
            time.sleep(question["sleep"])
        return {"echo": question, "by": name}

    def on_vote(motion: Any, options: list[Any]) -> Any:
        return options[0]

    async def run() -> None:
        async with consensus.join(
            address, name=name, on_poll=on_poll, on_vote=on_vote, join_timeout=20
        ) as me:
            say("joined")
            await wait_for_quit()
            stats = me.statistics()
        say("stats", json.dumps({"polls_answered": stats.polls_answered, "votes_cast": stats.votes_cast,
                                 "handler_errors": stats.handler_errors}))  # fmt: skip
        say("bye")

    trio.run(run)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
