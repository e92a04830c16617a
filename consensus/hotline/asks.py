"""Outstanding asks on a hotline, as a sans-IO table: which replies are wanted, which are not.

The driver opens an ask before sending it and feeds the table every reply frame that
comes back; the table says what to do with it (deliver it to the asker, end the ask, or
drop and count it). It never reads a clock: ``expire(now)`` and ``fail_all`` are told
when deadlines pass and when the peer goes away.

Reply kinds: ``reply`` (the one answer of a plain ask), ``chunk`` (one piece of a
streamed answer), ``end`` (a stream is complete) and ``error`` (the peer's handler
failed; ends either kind of ask). A reply for an id that is not open (never asked,
already answered, expired, failed) is stale: dropped and counted, never delivered.
A ``reply`` to a streaming ask, or a ``chunk``/``end`` to a plain one, is a protocol
error: it ends the ask as a failure and is counted as malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Action", "AskTable", "AskTableStatistics", "Verdict"]

REPLY_KINDS = ("reply", "chunk", "end", "error")


class Action(Enum):
    DELIVER = "deliver"  # hand the value to the asker; the ask stays open (a chunk)
    FINISH = "finish"  # hand the value to the asker and close the ask (reply, end, error)
    DROP = "drop"  # stale: counted, nothing else
    VIOLATION = "violation"  # wrong kind for the ask: the ask fails, counted as malformed


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    ask_id: int


@dataclass(frozen=True, slots=True)
class AskTableStatistics:
    open: int
    opened: int
    answered: int  # finished by a reply, an end or an error
    expired: int
    failed: int  # closed by fail_all (peer lost) or a protocol violation
    stale: int
    malformed: int
    unsent: int  # failed while waiting for room (connection lost, line closed or taken): never sent (at most once)


class AskTable:
    """The asks this side has sent and not yet seen finished."""

    def __init__(self) -> None:
        # ask id -> (deadline, stream): a tuple, built in C (a slotted class was a Python
        # call per ask)
        self._asks: dict[int, tuple[float, bool]] = {}
        self._opened = self._answered = self._expired = self._failed = self._stale = self._malformed = 0
        self._unsent = 0

    def __contains__(self, ask_id: object) -> bool:
        return ask_id in self._asks

    def __len__(self) -> int:
        return len(self._asks)

    def open(self, ask_id: int, *, deadline: float, stream: bool) -> None:
        if ask_id in self._asks:
            raise ValueError(f"ask {ask_id} is already open ({len(self._asks)} open)")
        self._asks[ask_id] = (deadline, stream)
        self._opened += 1

    def on_reply(self, kind: str, ask_id: int) -> Verdict:
        """What to do with a reply frame of ``kind`` quoting ``ask_id``."""
        return Verdict(self.answer(kind, ask_id), ask_id)

    def answer(self, kind: str, ask_id: int) -> Action:
        """:meth:`on_reply` without the :class:`Verdict` around the action (the driver's
        hot path: one object less a reply)."""
        if kind not in REPLY_KINDS:
            raise ValueError(f"not a reply kind: {kind!r} (expected one of {', '.join(REPLY_KINDS)})")
        ask = self._asks.get(ask_id)
        if ask is None:
            self._stale += 1
            return Action.DROP
        if kind != "error":
            if (kind == "reply") == ask[1]:
                del self._asks[ask_id]
                self._failed += 1
                self._malformed += 1
                return Action.VIOLATION
            if kind == "chunk":
                return Action.DELIVER
        del self._asks[ask_id]  # (finished: inline, one call less per answer)
        self._answered += 1
        return Action.FINISH

    def close(self, ask_id: int) -> bool:
        """The asker gave up (cancelled, timed out on its own): later replies are stale."""
        return self._asks.pop(ask_id, None) is not None

    def expire(self, now: float) -> list[int]:
        """Close every ask whose deadline is at or before ``now``; returns their ids."""
        due = [ask_id for ask_id, (deadline, _stream) in self._asks.items() if deadline <= now]
        for ask_id in due:
            del self._asks[ask_id]
        self._expired += len(due)
        return due

    def count_elsewhere(self, opened: int, answered: int, expired: int, failed: int, malformed: int) -> None:
        """Asks another reader kept in its own table (``consensus.hotline.foreign``), into the books."""
        self._opened += opened
        self._answered += answered
        self._expired += expired
        self._failed += failed
        self._malformed += malformed

    def next_deadline(self) -> float | None:
        return min((deadline for deadline, _stream in self._asks.values()), default=None)

    def fail_all(self) -> list[int]:
        """The peer is gone: every open ask fails; returns their ids."""
        ids = list(self._asks)
        self._asks.clear()
        self._failed += len(ids)
        return ids

    def unsent(self) -> None:
        """An ask failed (its connection lost) while its frame waited for room: dropped, not
        sent to whichever peer comes next (it would answer an ask nobody waits for)."""
        self._unsent += 1

    def statistics(self) -> AskTableStatistics:
        return AskTableStatistics(len(self._asks), self._opened, self._answered, self._expired,
                                  self._failed, self._stale, self._malformed, self._unsent)  # fmt: skip
