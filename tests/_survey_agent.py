"""What the two lent-survey agents share (tests/loop_survey_agent.py, tests/thread_survey_agent.py):
the counts of the surveys their reader answered or handed to trio, the dropped first welcome,
the ``stats`` line and the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from consensus.room.lent_items import Adopted
from consensus.room.lent_surveys import LentSurveys
from consensus.room.member_protocol import MemberProtocol

counted = {"here": 0, "trio": 0}


def count_paths(reader: type[LentSurveys]) -> None:
    """Count in ``counted`` the surveys ``reader`` answers itself and those it hands to trio."""
    start, to_trio = reader._start, reader._to_trio

    def counting_start(self: Any, *args: Any) -> None:
        counted["here"] += 1
        start(self, *args)

    def counting_to_trio(self: Any, items: list[Any]) -> None:
        counted["trio"] += sum(not isinstance(item, Adopted) for item in items)
        to_trio(self, items)

    reader._start = counting_start  # type: ignore[method-assign, assignment]
    reader._to_trio = counting_to_trio  # type: ignore[method-assign]


def drop_first_welcome() -> None:
    on_welcome = MemberProtocol._on_welcome
    dropped: list[bool] = []

    def once(self: MemberProtocol, welcome: Any) -> Any:
        if not dropped:
            dropped.append(True)
            return []
        return on_welcome(self, welcome)

    MemberProtocol._on_welcome = once  # type: ignore[method-assign]


def stats_line(me: Any) -> str:
    """The ``stats`` answer for the front's member proxy ``me`` (one JSON line)."""
    target = me._target
    statistics = me.statistics()  # first: it takes the replies sent elsewhere into the books
    sock = me._thread.call_sync(target._respondent.statistics)
    lent = target._answerer.lent
    expected = me._thread.call_sync(lambda: len(target._respondent._expected))  # the polls' shapes it reads
    return json.dumps({"member": dataclasses.asdict(statistics), "received": sock.messages_received,
                       "sent": sock.messages_sent, "bytes_sent": sock.bytes_sent, "expected": expected,
                       "lent": lent is not None,
                       "late": 0 if lent is None else lent.late,
                       "pauses": 0 if lent is None else lent.pauses, **counted})  # fmt: skip


def parser(reads: str) -> argparse.ArgumentParser:
    """The agents' command line; ``reads``: who reads the surveys (for the help text)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("name")
    parser.add_argument("--secret")
    parser.add_argument("--drop-first-welcome", action="store_true")
    parser.add_argument("--backlog", type=int, help=f"surveys handed to trio before {reads} pauses")
    parser.add_argument("--trio", action="store_true", help="trio reads the surveys (the path before the lending)")
    parser.add_argument("--handler-timeout", type=float, help="the member's handler_timeout (seconds)")
    return parser


def prepare(parsed: argparse.Namespace, reader: type[LentSurveys]) -> None:
    """What the parsed options ask of this process, and the counting of ``reader``'s paths."""
    if parsed.backlog is not None:
        from consensus.room import answering

        answering.BACKLOG = parsed.backlog  # type: ignore[attr-defined]  # (a test's bound, where it is read)
    if parsed.trio:
        from consensus.room.answering import Answerer

        Answerer.lend = lambda self, loop: None  # type: ignore[method-assign]
        Answerer.lend_thread = lambda self: None  # type: ignore[method-assign]
    count_paths(reader)
    if parsed.drop_first_welcome:
        drop_first_welcome()
