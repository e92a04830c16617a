"""How one survey reply counts into its round: a round's ``apply`` per kind, and the records
of what a reply (:class:`ReplyOutcome`) or a batch (:class:`Taken`) did to it.

A reply comes as an :class:`~patterns.Envelope` or, for the common frames, as its fields
(``*_fields``: counted without building an Envelope; any other reply through one). Pure:
no sockets, no clock; :class:`consensus.room.rounds.Rounds` picks the ``apply`` once per
round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consensus.decide.deliberation_round import DeliberationRound
from consensus.decide.poll import PollRound, Verdict
from consensus.decide.vote import VoteRound
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from patterns import Envelope, Fields, MalformedMessage

__all__ = ["FROM_FIELDS", "TAKEN", "Apply", "Counting", "ReplyOutcome", "Taken", "apply_deliberation", "apply_poll",
           "apply_vote"]


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What one survey reply did to its round.

    ``verdict`` is None for a malformed reply (``reason`` says why). ``complete``: the
    round has what it needs (wake its caller). ``exhausted``: nobody who could still
    answer is left, even late (stop reading)."""

    verdict: Verdict | None
    complete: bool
    exhausted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Taken:
    """What a batch of survey replies did to its round (:meth:`Rounds.take`).

    ``complete``: the round has what it needs (its caller may close it). ``exhausted``:
    nobody who could still answer is left, even late (stop reading). ``ignored``: why
    each malformed reply of the batch was not counted (empty in the common case)."""

    complete: bool
    exhausted: bool
    ignored: tuple[str, ...] = ()


# The outcomes of batches with nothing malformed, shared: a batch builds no record of its own.
TAKEN = {(complete, exhausted): Taken(complete, exhausted) for complete in (False, True) for exhausted in (False, True)}

Counting = PollRound | VoteRound | DeliberationRound
Apply = Callable[[Any, Envelope, float], Verdict]
"""How one kind of round counts a reply (the round, the reply, its time since the round began)."""


def apply_poll(poll: PollRound, envelope: Envelope, at: float) -> Verdict:
    body = envelope.body
    if envelope.kind == P.ANSWER and type(body) is dict and "answer" in body:
        return poll.answer(envelope.sender, body["answer"], at=at)  # the common reply: parse_reply's first test
    if envelope.kind == D.POSITION:
        raise MalformedMessage(f"a 'position' reply to a poll or vote from {envelope.sender!r}",
                               reason="body", size=0)  # fmt: skip
    kind, value = P.parse_reply(envelope)
    if kind == P.ANSWER:
        return poll.answer(envelope.sender, value, at=at)
    if kind == P.ERROR:
        return poll.fail(envelope.sender, value, at=at)
    raise MalformedMessage(f"a {kind!r} reply to a poll from {envelope.sender!r}", reason="body", size=0)


def apply_poll_fields(poll: PollRound, fields: Fields, at: float) -> Verdict:
    """:func:`apply_poll` for a reply read as fields: the common reply counted without an
    :class:`Envelope` (its first test), any other through one."""
    kind, sender, _, body, _, _ = fields
    if kind == P.ANSWER and type(body) is dict and "answer" in body:
        return poll.answer(sender, body["answer"], at=at)
    return apply_poll(poll, Envelope(*fields), at)


def apply_vote(vote: VoteRound, envelope: Envelope, at: float) -> Verdict:
    if envelope.kind == D.POSITION:
        raise MalformedMessage(f"a 'position' reply to a poll or vote from {envelope.sender!r}",
                               reason="body", size=0)  # fmt: skip
    kind, value = P.parse_reply(envelope)
    if kind == P.BALLOT:
        return vote.ballot(envelope.sender, value)
    if kind == P.ERROR:
        return vote.fail(envelope.sender, value)
    raise MalformedMessage(f"a {kind!r} reply to a vote from {envelope.sender!r}", reason="body", size=0)


def apply_deliberation(counting: DeliberationRound, envelope: Envelope, at: float) -> Verdict:
    if envelope.kind == D.POSITION:  # (D.parse_position, inline: the round checks the body)
        return counting.answer(envelope.sender, envelope.body, at=at)
    kind, value = P.parse_reply(envelope)
    if kind == P.ERROR:
        return counting.fail(envelope.sender, value, at=at)
    raise MalformedMessage(f"a {kind!r} reply to a deliberation from {envelope.sender!r}", reason="body", size=0)


def apply_deliberation_fields(counting: DeliberationRound, fields: Fields, at: float) -> Verdict:
    """:func:`apply_deliberation` for a reply read as fields: a position counted without an
    :class:`Envelope`, any other reply through one."""
    kind, sender, _, body, _, _ = fields
    if kind == D.POSITION:
        return counting.answer(sender, body, at=at)
    return apply_deliberation(counting, Envelope(*fields), at)


# The rounds whose replies are counted from their fields (take_fields), by the rounds' apply.
FROM_FIELDS: dict[Apply, Callable[[Any, Fields, float], Verdict]] = {
    apply_poll: apply_poll_fields, apply_deliberation: apply_deliberation_fields,
}  # fmt: skip
