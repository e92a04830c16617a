"""A blocking member whose surveys the reader thread reads, for tests/test_blocking_thread_surveys.py.

    python tests/thread_survey_agent.py ADDRESS NAME [--secret S] [--drop-first-welcome]

Joins through ``consensus.blocking`` with plain ``on_poll`` and ``on_vote``. ``on_poll``
answers ``{"q": question, "by": NAME, "crew": True}`` (True when it runs on the survey
reader's crew); ``"raise"`` raises ``ValueError``; ``{"sleep": s}`` prints ``asleep``,
sleeps, then prints ``woke``; ``"big"`` answers 300 kB of bytes (too large for the crew's
own send). ``on_vote`` picks the first option. ``--drop-first-welcome``: the member ignores
the host's first welcome, so the surveys sent meanwhile come before its welcome;
``--backlog N``: the reader pauses once N surveys wait for trio (``--trio``: trio reads).

Prints ``ready`` once joined; ``stats`` on stdin prints one JSON line (the member's
statistics, its respondent's counters, how many surveys the reader answered itself and
how many it handed to trio, its late answers, whether it was lent); ``quit`` (or the end
of stdin) leaves, then prints ``left`` and the threads still alive besides the main one;
a block the host ended prints ``closed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _agent import say

from consensus import blocking
from consensus.errors import RoomClosed
from consensus.room import lent_surveys, thread_surveys
from consensus.room.member_protocol import MemberProtocol

counted = {"here": 0, "trio": 0}


def count_paths() -> None:
    start, to_trio = thread_surveys.ThreadSurveys._start, thread_surveys.ThreadSurveys._to_trio

    def counting_start(self: Any, *args: Any) -> None:
        counted["here"] += 1
        start(self, *args)

    def counting_to_trio(self: Any, items: list[Any]) -> None:
        counted["trio"] += sum(not isinstance(item, lent_surveys.Adopted) for item in items)
        to_trio(self, items)

    thread_surveys.ThreadSurveys._start = counting_start  # type: ignore[method-assign, assignment]
    thread_surveys.ThreadSurveys._to_trio = counting_to_trio  # type: ignore[method-assign]


def drop_first_welcome() -> None:
    on_welcome = MemberProtocol._on_welcome
    dropped: list[bool] = []

    def once(self: MemberProtocol, welcome: Any) -> Any:
        if not dropped:
            dropped.append(True)
            return []
        return on_welcome(self, welcome)

    MemberProtocol._on_welcome = once  # type: ignore[method-assign]


def main(args: argparse.Namespace) -> None:
    def on_poll(question: Any) -> Any:
        crew = threading.current_thread().name == "consensus survey handler"
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
                           secret=args.secret, join_timeout=20) as me:  # fmt: skip
            say("ready")
            while (line := sys.stdin.readline()) and line.strip() != "quit":
                if line.strip() == "stats":
                    target = me._target
                    statistics = me.statistics()  # first: it takes the replies sent elsewhere into the books
                    sock = me._thread.call_sync(target._respondent.statistics)
                    lent = target._answerer.lent
                    say(json.dumps({"member": dataclasses.asdict(statistics), "received": sock.messages_received,
                                    "sent": sock.messages_sent, "lent": lent is not None,
                                    "late": 0 if lent is None else lent.late,
                                    "pauses": 0 if lent is None else lent.pauses, **counted}))  # fmt: skip
    except RoomClosed:
        say("closed")
        return
    say("left")
    readers = [t.name for t in threading.enumerate() if t.name == "consensus survey reader"]
    say(json.dumps(readers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--secret")
    parser.add_argument("--drop-first-welcome", action="store_true")
    parser.add_argument("--trio", action="store_true", help="trio reads the surveys (as before the reader)")
    parser.add_argument("--backlog", type=int, help="surveys handed to trio before the reader pauses")
    parsed = parser.parse_args()
    if parsed.backlog is not None:
        from consensus.room import answering

        answering.BACKLOG = parsed.backlog  # type: ignore[attr-defined]
    if parsed.trio:
        from consensus.room.answering import Answerer

        Answerer.lend_thread = lambda self: None  # type: ignore[method-assign]
    count_paths()
    if parsed.drop_first_welcome:
        drop_first_welcome()
    main(parsed)
