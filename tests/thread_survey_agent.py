"""A blocking member whose surveys the reader thread reads, for tests/test_blocking_thread_surveys.py.

    python tests/thread_survey_agent.py ADDRESS NAME [--secret S] [--drop-first-welcome]

Joins through ``consensus.blocking`` with plain ``on_poll`` and ``on_vote``. ``on_poll``
answers ``{"q": question, "by": NAME, "crew": True}`` (True when the survey reader or its crew
runs it); ``"raise"`` raises ``ValueError``; ``{"sleep": s}`` prints ``asleep``,
sleeps, then prints ``woke``; ``{"echo": v}`` answers ``v``; ``"big"`` answers 300 kB of bytes (too large for the crew's
own send). ``on_vote`` picks the first option. ``--drop-first-welcome``: the member ignores
the host's first welcome, so the surveys sent meanwhile come before its welcome;
``--backlog N``: the reader pauses once N surveys wait for trio; ``--trio``: trio reads.

Prints ``ready`` once joined; ``stats`` on stdin prints one JSON line (the member's
statistics, its respondent's counters, how many surveys the reader answered itself and
how many it handed to trio, its late answers, whether it was lent); ``quit`` (or the end
of stdin) leaves, then prints ``left`` and the threads still alive besides the main one;
a block the host ended prints ``closed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _agent import say
from _survey_agent import parser as agent_parser
from _survey_agent import prepare, stats_line

from consensus import blocking
from consensus.errors import RoomClosed
from consensus.room import thread_surveys


def main(args: argparse.Namespace) -> None:
    def on_poll(question: Any) -> Any:
        crew = threading.current_thread().name in ("consensus survey reader", "consensus survey handler")
        if isinstance(question, dict) and "echo" in question:
            return question["echo"]
        if question == "raise":
            raise ValueError(f"{args.name} refuses")
        if question == "big":
            return b"x" * 300_000
        if isinstance(question, dict) and "sleep" in question:
            say("asleep")
            time.sleep(question["sleep"])
            say("woke")
        return {"q": question, "by": args.name, "crew": crew}

    def on_vote(motion: Any, options: list[Any]) -> Any:
        return options[0]

    try:
        with blocking.join(args.address, name=args.name, on_poll=on_poll, on_vote=on_vote,
                           secret=args.secret, join_timeout=20, handler_timeout=args.handler_timeout) as me:  # fmt: skip
            say("ready")
            while (line := sys.stdin.readline()) and line.strip() != "quit":
                if line.strip() == "stats":
                    say(stats_line(me))
    except RoomClosed:
        say("closed")
        return
    say("left")
    readers = [t.name for t in threading.enumerate() if t.name == "consensus survey reader"]
    say(json.dumps(readers))


if __name__ == "__main__":
    parser = agent_parser("the reader")
    parsed = parser.parse_args()
    prepare(parsed, thread_surveys.ThreadSurveys)
    main(parsed)
