"""A member's calls (asking the host to run a poll, a vote or a deliberation), as a pure
helper of :class:`~consensus.room.member_protocol.MemberProtocol`.

It checks a call's arguments before any frame is built (so the caller hears at once), numbers
the calls, and matches the host's results to the calls still waiting; a result for a call
the caller stopped waiting for is counted as late. Results for other members' calls (the
control bus reaches everyone) are dropped here unread.
"""

from __future__ import annotations

from typing import Any

from consensus.decide.rules import Rule
from consensus.room import calls as C
from consensus.room.events import CallAnswered, Output, Send, Target

__all__ = ["MemberCalls"]


class MemberCalls:
    """The calls one member has sent and not had the result of yet."""

    def __init__(self, name: str, token: int, counts: dict[str, int]) -> None:
        self.name = name
        self.token = token
        self.counts = counts  # the member's counters (one dict: the protocol counts in it too)
        self._next = 0
        self._waiting: set[int] = set()  # ids of this member's calls waiting for their result

    def frame(self, kind: str, subject: Any, *, timeout: float, quorum: int | None, options: tuple[Any, ...],
              rule: Rule | None, weights: dict[str, float] | None, deliberation: C.DeliberationArgs | None,
              inline: bool) -> tuple[int, Send]:  # fmt: skip
        """The call's id and frame (see :meth:`MemberProtocol.call_frame`); ``ValueError``
        for arguments no host would take."""
        if type(timeout) not in (int, float) or not 0 < timeout <= C.MAX_CALL_TIMEOUT:
            raise ValueError(
                f"timeout must be a number of seconds in (0, {C.MAX_CALL_TIMEOUT:g}], got {timeout!r}"
            )
        if quorum is not None and not (type(quorum) is int and quorum >= 1):
            raise ValueError(f"quorum must be a count of members (an int >= 1), got {quorum!r}")
        self._next += 1
        body = C.call_body(self.name, self.token, self._next, kind, subject=subject, timeout=timeout,
                           quorum=quorum, options=options, rule=rule, weights=weights,
                           deliberation=deliberation)  # fmt: skip
        self._waiting.add(self._next)
        self.counts["calls"] += 1
        return self._next, Send(C.CALL, body, Target.CONTROL, inline=inline)

    def forget(self, call_id: int) -> None:
        """The caller stopped waiting for ``call_id``: a result for it later is late."""
        self._waiting.discard(call_id)

    def result(self, answer: C.CallAnswer) -> list[Output]:
        """The host's result of a call: this member's (and waited for), or nothing."""
        if (answer.name, answer.token) != (self.name, self.token):
            return []  # another member's result
        if answer.call_id not in self._waiting:
            self.counts["late_results"] += 1
            return []
        self._waiting.discard(answer.call_id)
        return [CallAnswered(answer)]
