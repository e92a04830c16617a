"""The surveys a member answers, as a pure helper of :class:`MemberProtocol`.

It keeps each survey from the host until its reply is out: which handler answers it,
the surveys that came before the welcome (answered once it comes, declined if the
membership ends first), ballot coercion, the error replies, and the counter each reply
goes to once it is sent. The membership (joins, the host's life, the roster) stays with
:class:`~consensus.room.member_protocol.MemberProtocol`, which says whether a survey is
kept and whether replies carry shared-memory references (``inline``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

from consensus.failure import Failure
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import Decline, Handle, HandlerKind, Output, Send, Target
from consensus.room.member_deliberation import MemberDeliberations
from consensus.trust.identity import Identity
from patterns import Envelope

__all__ = ["MAX_KEPT_SURVEYS", "MemberSurveys", "ReplyTicket"]

MAX_KEPT_SURVEYS: Final = 64  # surveys that came before the welcome, kept to answer after it

# A complete poll being answered, as the reply, the ticket and the books read it (its kind):
# the question is only the handler's, given in its Handle (``receive_fields``).
_ANSWERING_POLL: Final = P.Survey(P.POLL, True)


@dataclass(frozen=True, slots=True)
class ReplyTicket:
    """What the reply to a poll or a vote needs, frozen before its handler runs in another
    thread: that thread builds the reply (:meth:`reply`, pure) and sends it; trio books it
    afterwards (:meth:`MemberSurveys.replied`). Nothing in it changes meanwhile."""

    key: int
    survey: P.Survey
    voter: str
    identity: Identity | None
    inline: bool

    def reply(self, outcome: tuple[bool, Any]) -> tuple[Send, str]:
        """The reply frame for ``outcome`` and the counter it goes to once sent."""
        return _reply_frame(self.key, self.survey, outcome, self.voter, self.identity, self.inline)


def _reply_frame(key: int, survey: P.Survey, outcome: tuple[bool, Any], voter: str,
                 identity: Identity | None, inline: bool) -> tuple[Send, str]:  # fmt: skip
    """A poll's answer, a vote's ballot, or the error (for any survey): the frame and its counter."""
    ok, result = outcome
    if ok and survey.kind == P.POLL:
        return Send(P.ANSWER, P.answer_body(result), Target.REPLY, key, inline=inline), "polls_answered"
    if ok and survey.kind == P.VOTE:
        try:
            sign = None if identity is None else functools.partial(
                identity.sign_ballot, vote=survey.vote_id, options=tuple(survey.options), voter=voter
            )
            body = P.ballot_body(result, survey.vote_id, sign)
            return Send(P.BALLOT, body, Target.REPLY, key, inline=inline), "votes_cast"
        except (ValueError, TypeError) as exc:  # no ballot: the host hears why
            result = Failure(type(exc).__name__, str(exc))
    if not isinstance(result, Failure):
        result = Failure("Error", str(result)[: P.MAX_ERROR_TEXT])
    return Send(P.ERROR, P.error_body(result), Target.REPLY, key, inline=inline), "handler_errors"


class MemberSurveys:
    """The surveys one member has received and not answered yet."""

    def __init__(self, name: str, counts: dict[str, int], *, on_poll: bool, on_vote: bool,
                 on_deliberate: bool, identity: Identity | None) -> None:  # fmt: skip
        self.name = name
        self.identity = identity  # signs this member's ballots (None: unsigned)
        self.counts = counts  # the member's counters (one dict: the protocol counts in it too)
        self._handlers = {P.POLL: HandlerKind.POLL if on_poll else None,
                          P.VOTE: HandlerKind.VOTE if on_vote else None}  # fmt: skip
        # A deliberation is answered by on_deliberate, else by on_poll (its answer as the stance).
        self._handlers[D.DELIBERATE] = (HandlerKind.DELIBERATE if on_deliberate
                                        else HandlerKind.POLL if on_poll else None)  # fmt: skip
        self._polls = on_poll  # (the poll handler's test in ``receive_fields``, without the lookup)
        self._deliberations = MemberDeliberations(name)
        self._kept: dict[int, None] = {}  # surveys received before the welcome, oldest first
        self._surveys: dict[int, P.Survey] = {}  # surveys not answered yet, by the driver's key
        self._counter: dict[int, str] = {}  # the counter a reply being sent goes to

    def receive(self, key: int, envelope: Envelope, *, keep: bool, inline: bool) -> list[Output]:
        """A survey from the host (see :meth:`MemberProtocol.receive_survey`); with ``keep``
        (no welcome yet) it waits for :meth:`release`, the oldest declined past
        :data:`MAX_KEPT_SURVEYS`."""
        self._surveys[key] = P.parse_survey(envelope)
        if envelope.kind == D.DELIBERATE and not self._deliberations.receive(key, envelope):
            self.counts["malformed"] += 1  # answered with an error: the host hears why
        return self._keep(key) if keep else self._dispatch(key, inline)

    def receive_fields(self, key: int, kind: str, body: Any, *, keep: bool, inline: bool) -> list[Output] | None:
        """:meth:`receive` for a survey's kind and body (read without an envelope); None for
        a deliberation, whose prompt is read from the envelope (call :meth:`receive`)."""
        if kind == D.DELIBERATE:
            return None
        if kind == P.POLL and not keep and type(body) is dict and "question" in body and self._polls:
            # The common survey, a complete poll answered now (``_dispatch``'s first case): its
            # question goes to the handler in the Handle, and what its reply needs later is its
            # kind alone, so every such poll shares one record (no Survey built per poll).
            self._surveys[key] = _ANSWERING_POLL
            return [Handle(key, HandlerKind.POLL, (body["question"],))]
        self._surveys[key] = P.survey_of(kind, body)
        return self._keep(key) if keep else self._dispatch(key, inline)

    def _keep(self, key: int) -> list[Output]:
        """Keep survey ``key`` until the welcome: nothing to do now, or the oldest to decline."""
        self._kept[key] = None
        if len(self._kept) > MAX_KEPT_SURVEYS:
            oldest = next(iter(self._kept))
            del self._kept[oldest]
            del self._surveys[oldest]
            self._deliberations.forget(oldest)
            return [Decline(oldest)]
        return []

    def release(self, *, inline: bool) -> list[Output]:
        """The welcome came: answer the surveys kept until then, oldest first."""
        out: list[Output] = []
        kept, self._kept = list(self._kept), {}
        for key in kept:
            out += self._dispatch(key, inline)
        return out

    def decline_kept(self) -> list[Output]:
        """The membership ended before the welcome: the kept surveys are never answered."""
        out: list[Output] = []
        for key in list(self._kept):
            self._surveys.pop(key, None)
            out.append(Decline(key))
        self._kept.clear()
        return out

    def _dispatch(self, key: int, inline: bool) -> list[Output]:
        survey = self._surveys[key]
        handler = self._handlers.get(survey.kind)
        if handler is HandlerKind.POLL and survey.complete:
            return [Handle(key, handler, (survey.question,))]
        if handler is HandlerKind.VOTE and survey.complete:
            return [Handle(key, handler, (survey.motion, survey.options))]
        if survey.kind == D.DELIBERATE:
            handle = self._deliberations.handle(key, handler)
            if isinstance(handle, Handle):
                return [handle]
            return [self.reply(key, None if handle is None else (False, handle), inline=inline)]
        return [self.reply(key, None, inline=inline)]

    def reply(self, key: int, outcome: tuple[bool, Any] | None, *, inline: bool) -> Send:
        """The reply to survey ``key`` (see :meth:`MemberProtocol.reply`)."""
        survey = self._surveys[key]
        if outcome is None:
            known = (P.POLL, P.VOTE, D.DELIBERATE)
            what = "no handler for it" if survey.kind in known else "unknown survey kind"
            outcome = (False, Failure("NotSupported", f"{survey.kind!r}: {what}"))
        ok, result = outcome
        if survey.kind == D.DELIBERATE:  # only a deliberation has a prompt to use or forget
            if ok:
                made = self._deliberations.position(key, result)
                if not isinstance(made, Failure):
                    return self._reply(key, D.POSITION, made, "positions_sent", inline)
                result = made
            self._deliberations.forget(key)
        frame, self._counter[key] = _reply_frame(key, survey, (ok, result), self.name, self.identity, inline)
        return frame  # counted once it is out (sent)

    def poll_answer(self, key: int, outcome: tuple[bool, Any]) -> bool:
        """True when the reply to ``key`` for ``outcome`` is a poll's answer, the common reply:
        the driver sends :data:`P.ANSWER` with ``P.answer_body(outcome[1])`` (its shape's hole:
        the value) without a :class:`Send` built, then books it with :meth:`sent` (counted as
        ``polls_answered``). False: build the reply with :meth:`reply`."""
        if outcome[0] and self._surveys[key].kind == P.POLL:
            self._counter[key] = "polls_answered"
            return True
        return False

    def ticket(self, key: int, *, inline: bool) -> ReplyTicket | None:
        """All the reply to ``key`` needs, if a thread can build it (a poll or a vote; None for others)."""
        survey = self._surveys[key]
        if survey.kind != P.POLL and survey.kind != P.VOTE:
            return None
        return ReplyTicket(key, survey, self.name, self.identity, inline)

    def ticket_elsewhere(self, key: int, kind: str, body: Any, here: frozenset[str], *,
                         inline: bool) -> ReplyTicket | None:  # fmt: skip
        """The ticket of a poll or vote survey another thread answers without this object
        ever holding it (a member's surveys read on an asyncio loop), if the survey of
        ``kind`` and ``body`` (its envelope's fields, or as read without one) is one with a
        handler of a kind in ``here`` and all that handler needs; None: the driver hands it
        to :meth:`receive` instead. Pure, and reads only what never changes."""
        if kind not in here or self._handlers.get(kind) is None:
            return None
        survey = P.survey_of(kind, body)
        return ReplyTicket(key, survey, self.name, self.identity, inline) if survey.complete else None

    def adopt(self, ticket: ReplyTicket) -> None:
        """A survey answered elsewhere whose reply only the driver's :meth:`reply` path can
        send (too large for the other thread, say): from now on it is this object's."""
        self._surveys[ticket.key] = ticket.survey

    def replied(self, key: int, counter: str) -> None:
        """The reply built from a :class:`ReplyTicket` went out: count it under ``counter``."""
        if self._surveys.pop(key, None) is not None:
            self.counts[counter] += 1

    def _reply(self, key: int, kind: str, body: Any, counter: str, inline: bool) -> Send:
        self._counter[key] = counter  # counted once the frame is out (sent)
        return Send(kind, body, Target.REPLY, key, inline=inline)

    def unencodable(self, key: int, exc: Exception, *, inline: bool) -> Send:
        """The reply to ``key`` has no wire form (``exc``): the error frame to send instead."""
        failure = Failure(type(exc).__name__, str(exc)[: P.MAX_ERROR_TEXT])
        return self._reply(key, P.ERROR, P.error_body(failure), "handler_errors", inline)

    def sent(self, key: int) -> None:
        """The reply to ``key`` went out: count it."""
        self._surveys.pop(key, None)
        counter = self._counter.pop(key, None)
        if counter is not None:
            self.counts[counter] += 1

    def dropped(self, key: int) -> None:
        """The reply to ``key`` could not go out (the socket closed): forget it."""
        self._surveys.pop(key, None)
        self._deliberations.forget(key)
        self._counter.pop(key, None)
