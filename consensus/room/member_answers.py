"""The surveys part of :class:`~consensus.room.member_protocol.MemberProtocol` (pure, a mixin).

The member protocol hands each survey from the host to its helper
(:class:`~consensus.room.member_surveys.MemberSurveys`), given the state of the membership:
whether it is answered now, kept until the welcome, or declined. These are the methods the
driver (:class:`consensus.room.answering.Answerer`) calls per survey and per reply.
"""

from __future__ import annotations

from typing import Any

from consensus.room.events import Decline, Output, Send
from consensus.room.member_state import MemberState
from consensus.room.member_surveys import MemberSurveys, ReplyTicket
from patterns import Envelope

__all__ = ["SurveyAnswers"]


class SurveyAnswers:
    """A member's surveys, as :class:`~consensus.room.member_protocol.MemberProtocol` sees them."""

    # The member protocol's (set by its __init__).
    state: MemberState
    observer: bool
    inline: bool
    counts: dict[str, int]
    _surveys: MemberSurveys

    def receive_survey(self, key: int, envelope: Envelope, now: float) -> list[Output]:
        """A survey from the host; ``key`` is the driver's name for it until it is answered.

        A survey that comes before the welcome is kept and answered once the welcome
        arrives: the host may poll a member it has just welcomed, and the survey can
        overtake the welcome (it travels on another connection). Returns the reply, a
        :class:`Handle` (run a handler, then call :meth:`reply`), or :class:`Decline` for
        surveys never to be answered."""
        state = self.state
        if state is MemberState.JOINED and not self.observer:  # (the common case: one test)
            return self._surveys.receive(key, envelope, keep=False, inline=self.inline)
        if state is not MemberState.JOINING or self.observer:
            return [Decline(key)]  # an observer is never expected: silence costs the host nothing
        return self._surveys.receive(key, envelope, keep=True, inline=self.inline)

    def receive_fields(self, key: int, kind: str, body: Any, now: float) -> list[Output] | None:
        """:meth:`receive_survey` for a survey's kind and body, read without an envelope
        (:attr:`patterns.IncomingSurvey.kind`, ``body``); None when its envelope is needed
        after all (a deliberation's prompt): then call :meth:`receive_survey`."""
        state = self.state
        if state is MemberState.JOINED and not self.observer:  # (the common case: one test)
            return self._surveys.receive_fields(key, kind, body, keep=False, inline=self.inline)
        if state is not MemberState.JOINING or self.observer:
            return [Decline(key)]
        return self._surveys.receive_fields(key, kind, body, keep=True, inline=self.inline)

    def poll_answer(self, key: int, outcome: tuple[bool, Any]) -> bool:
        """True when the reply to survey ``key`` for ``outcome`` is a poll's plain answer: the
        driver sends it as fields (kind :data:`~consensus.room.protocol.ANSWER`, body
        ``{"answer": outcome[1]}``) and calls :meth:`sent` once it is out; False: :meth:`reply`."""
        return self._surveys.poll_answer(key, outcome)

    def reply(self, key: int, outcome: tuple[bool, Any] | None) -> Send:
        """The reply to survey ``key`` given its handler's ``outcome`` (None: no handler).

        ``outcome`` is ``(True, value)`` or ``(False, Failure)``. A vote's value becomes a
        ballot for that vote; one that makes no ballot is answered with an error. Returns
        the frame to send; call :meth:`sent` (or :meth:`dropped`) once it is out."""
        return self._surveys.reply(key, outcome, inline=self.inline)

    def ticket(self, key: int) -> ReplyTicket | None:
        """What the reply to survey ``key`` needs, frozen, so that another thread can build it
        (:meth:`ReplyTicket.reply`) and send it; None when only :meth:`reply` can (not a
        poll or a vote). Book the reply with :meth:`replied` once it is out."""
        return self._surveys.ticket(key, inline=self.inline)

    def ticket_elsewhere(self, key: int, kind: str, body: Any, here: frozenset[str]) -> ReplyTicket | None:
        """The ticket of a survey another thread (an asyncio loop) may answer start to end
        without this object: a complete poll or vote of a kind in ``here``, once welcomed,
        not an observer; None: hand it to :meth:`receive_survey`, in order. Reads only the
        state (one attribute). Book with :meth:`count_elsewhere`, or give back with :meth:`adopt`."""
        if self.state is not MemberState.JOINED or self.observer:
            return None
        return self._surveys.ticket_elsewhere(key, kind, body, here, inline=self.inline)

    def adopt(self, ticket: ReplyTicket) -> None:
        """A survey answered elsewhere whose reply only :meth:`reply` can send (its key unused here)."""
        self._surveys.adopt(ticket)

    def count_elsewhere(self, counts: dict[str, int]) -> None:
        """Replies sent (or lost) by another thread from :meth:`ticket_elsewhere` tickets."""
        for counter, n in counts.items():
            self.counts[counter] += n

    def replied(self, key: int, counter: str) -> None:
        """The reply built from :meth:`ticket` went out: count it under ``counter``."""
        self._surveys.replied(key, counter)

    def unencodable(self, key: int, exc: Exception) -> Send:
        """The reply to ``key`` has no wire form (``exc``): the error frame to send instead."""
        return self._surveys.unencodable(key, exc, inline=self.inline)

    def sent(self, key: int) -> None:
        """The reply to ``key`` went out: count it."""
        self._surveys.sent(key)

    def dropped(self, key: int) -> None:
        """The reply to ``key`` could not go out (the socket closed): forget it."""
        self._surveys.dropped(key)

    def lost(self, key: int) -> None:
        """The reply to ``key`` could not be sent while the host waited (NNG gave up: its
        connection stayed busy): forget it and count it."""
        self._surveys.dropped(key)
        self.counts["replies_lost"] += 1
