"""A member's calls: the polls and votes it asks the room's host to run (the driver part).

:class:`Caller` sends the ``call`` frame its member's protocol object builds, waits for the
matching ``result`` (the protocol object parses it and the member's driver hands it over
with :meth:`Caller.answered`) and turns a refusal or a silence into the exception the caller
of ``member.poll`` / ``member.vote`` sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from consensus.errors import MemberCallRefused, Timeout
from consensus.room.calls import CallAnswer
from consensus.room.events import Send
from consensus.room.member_protocol import CALL_MARGIN, MemberProtocol
from consensus.runtime.service import Pulse

__all__ = ["Caller"]


class Caller:
    """The calls one member has under way, by call id."""

    def __init__(self, protocol: MemberProtocol, send: Callable[[Send], Awaitable[None]], address: str) -> None:
        self._protocol = protocol
        self._send = send
        self._address = address
        self._answers: dict[int, CallAnswer | None] = {}  # by call id; None until it comes
        self._answered = Pulse()

    def answered(self, answer: CallAnswer) -> None:
        """The result of a call arrived (one nobody waits for any more is dropped)."""
        if answer.call_id in self._answers:
            self._answers[answer.call_id] = answer
            self._answered.poke()

    async def call(self, kind: str, subject: Any, *, timeout: float, wait: float | None = None,
                   **args: Any) -> CallAnswer:  # fmt: skip
        """Ask the host to run a ``kind`` call on ``subject``; returns its answer, or raises
        :class:`MemberCallRefused` (the host's reason) or :class:`Timeout` (no answer within
        ``wait``, default ``timeout``, plus a margin)."""
        wait = timeout if wait is None else wait
        call_id, frame = self._protocol.call_frame(kind, subject, timeout=timeout, **args)
        self._answers[call_id] = None
        try:
            await self._send(frame)
            with trio.move_on_after(wait + CALL_MARGIN):
                while (answer := self._answers[call_id]) is None:
                    await self._answered.wait()
        finally:
            self._answers.pop(call_id, None)
            self._protocol.forget_call(call_id)
        if answer is None:
            raise Timeout(f"the host at {self._address} sent no result for the {kind} {subject!r:.80} "
                          f"within {wait} s and a margin of {CALL_MARGIN} s")  # fmt: skip
        if answer.refused:
            raise MemberCallRefused(f"the host at {self._address} refused the {kind}: {answer.refused}",
                                    answer.refused)  # fmt: skip
        return answer
