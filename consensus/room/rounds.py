"""The rounds a room's host runs, as a pure object: polls, votes and deliberations.

:class:`Rounds` is the part of :class:`consensus.room.host_protocol.HostProtocol` that
opens a round over the members present, counts each reply into it (through the pure
rounds of :mod:`consensus.decide`), and closes it into its result and the frame that
tells the members. The host protocol tells it who joins and who goes; the driver reaches
it as ``protocol.rounds``. No sockets, no clock: times are passed in. How one reply counts
into each kind of round is :mod:`consensus.room.round_replies`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consensus.decide.decision import Decision
from consensus.decide.deliberation import Deliberator
from consensus.decide.poll import PollResult, PollRound, Verdict
from consensus.decide.position import normalise_stance
from consensus.decide.prompt_fit import Fitted, fit_prompt, size_bound
from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Majority, Rule
from consensus.decide.stances import Key, Round
from consensus.decide.until import Until
from consensus.decide.vote import VoteRound
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import Send, Target
from consensus.room.roster import Roster
from consensus.room.round_replies import (
    FROM_FIELDS,
    TAKEN,
    Apply,
    Counting,
    ReplyOutcome,
    Taken,
    apply_deliberation,
    apply_poll,
    apply_vote,
)
from patterns import (
    MAX_SENDER_LENGTH,
    Encoded,
    Envelope,
    Fields,
    MalformedMessage,
    encode_body,
    encode_vouched,
)

__all__ = ["ENVELOPE_ROOM", "ReplyOutcome", "Rounds", "Taken"]

# What a survey's envelope adds to its body, at most: the keys, the kind, an id, a deadline
# and a sender name of MAX_SENDER_LENGTH characters of up to 4 bytes each.
ENVELOPE_ROOM = 64 + 4 * MAX_SENDER_LENGTH


@dataclass(slots=True)
class _Round:
    round: Counting
    apply: Apply  # chosen once per round: no test of the round's type per reply
    start: float
    subject: Any  # the question or the motion
    vote_id: int = 0
    deliberation: int = 0  # a deliberation round: the key of its deliberation
    closed: bool = False  # its caller has the result
    reading: bool = True  # replies may still come (the driver reads them, to count late ones)


def _vouched(body: dict[str, Any], question: Any, above: int) -> dict[str, Any] | Encoded:
    """A deliberation frame's body, encoded once without the walk that checks a body: the
    pure deliberation built it of values it checked (positions, names, stance keys, options
    and failures are text; confidences, weights and times numbers; rule names text, or
    ``chain_name`` would have failed), except for the question (``above``: the containers
    over it), checked as any body is. The body itself when the question is of another kind."""
    return encode_vouched(body, ((question, above),)) or body


class Rounds:
    """The polls, votes and deliberations of one host, open or closed with their late
    replies still counted. ``counts`` is the host's counter table (``polls``, ``votes``,
    ``deliberation_rounds``, ``late_replies``, ``rejected_replies``, ``malformed``)."""

    def __init__(self, roster: Roster, counts: dict[str, int]) -> None:
        self._roster = roster
        self._counts = counts
        self._rounds: dict[int, _Round] = {}
        self._deliberations: dict[int, tuple[Deliberator, float]] = {}  # key -> (its state, start)
        self._next_key = 0

    @property
    def held(self) -> int:
        """Rounds still held: open, or closed with their late replies still being read."""
        return len(self._rounds)

    @property
    def _inline(self) -> bool:
        return not self._roster.refs

    def joined(self, name: str) -> None:
        """A participant joined: running deliberations ask it from their next round on."""
        for deliberator, _ in self._deliberations.values():
            deliberator.join(name)

    def left(self, names: Sequence[str]) -> None:
        """Members went: every round under way stops expecting them."""
        for deliberator, _ in self._deliberations.values():
            for name in names:
                deliberator.left(name)  # also marks it left in the open round
        for active in self._rounds.values():
            if not active.deliberation:
                for name in names:
                    active.round.left(name)

    # ------------------------------------------------------------------ polls and votes
    def _open(self, active: _Round, kind: str, body: dict[str, Any] | Encoded) -> tuple[int, list[Send]]:
        self._next_key += 1
        self._rounds[self._next_key] = active
        if active.round.complete:
            active.reading = False
            return self._next_key, []  # nobody to ask
        return self._next_key, [Send(kind, body, Target.SURVEY, inline=self._inline)]

    def open_poll(self, question: Any, *, quorum: int | None, now: float) -> tuple[int, list[Send]]:
        """Start a poll of the members present: its key, and the survey to send (none if empty)."""
        poll = PollRound(self._roster.participants, quorum=quorum)
        self._counts["polls"] += 1
        return self._open(_Round(poll, apply_poll, now, question), P.POLL, P.poll_body(question))

    def open_vote(self, motion: Any, *, options: Sequence[Any], vote_id: int, rule: Rule | None,
                  quorum: int | None, weights: Mapping[str, float] | None,
                  now: float) -> tuple[int, list[Send]]:  # fmt: skip
        """Start a vote of the members present (``vote_id``: drawn by the caller)."""
        weights = weights or {}
        electorate = {member: float(weights.get(member, 1.0)) for member in self._roster.participants}
        options = tuple(options)
        vote = VoteRound(
            vote_id, electorate=electorate, options=options, rule=rule or Majority(), quorum=quorum
        )
        self._counts["votes"] += 1
        return self._open(_Round(vote, apply_vote, now, motion, vote_id), P.VOTE, P.vote_body(vote_id, motion, options))

    def complete(self, key: int) -> bool:
        """True when round ``key`` has what it needs: its caller may close it."""
        return self._rounds[key].round.complete

    def reply(self, key: int, envelope: Envelope, now: float) -> ReplyOutcome:
        """A reply to the survey of round ``key`` (the driver routes by the survey): what it
        did to the round (see :class:`ReplyOutcome`). :meth:`take` counts a batch the same way."""
        active = self._rounds.get(key)
        if active is None:  # the round was forgotten: nothing can count it
            self._counts["late_replies"] += 1
            return ReplyOutcome(Verdict.CLOSED, True, True)
        counting = active.round
        try:
            verdict = active.apply(counting, envelope, now - active.start)
        except MalformedMessage as exc:
            self._counts["malformed"] += 1
            return ReplyOutcome(None, counting.complete, counting.complete and not counting.pending, str(exc))
        if verdict is Verdict.CLOSED:
            self._counts["late_replies"] += 1
        elif verdict is not Verdict.ACCEPTED:
            self._counts["rejected_replies"] += 1
        return ReplyOutcome(verdict, counting.complete, counting.complete and not counting.pending)

    def take(self, key: int, envelopes: Iterator[Envelope], now: float) -> Taken:
        """Count every reply ``envelopes`` yields into round ``key``, all received by ``now``:
        each as :meth:`reply` would, with the round's state looked at once per batch.

        An unexpected error (a bug, never bad input: that is counted and reported in
        ``ignored``) propagates with a note naming the reply's sender; the replies the
        iterator still holds are not counted, so a caller may log it and call again."""
        active = self._rounds.get(key)
        if active is None:  # the round was forgotten: nothing can count them
            self._counts["late_replies"] += sum(1 for _ in envelopes)
            return TAKEN[True, True]
        return self._count(active.round, active.apply, envelopes, now - active.start)

    def take_fields(self, key: int, replies: Iterator[Fields], now: float) -> Taken:
        """:meth:`take` for replies read as fields (``SurveyReplies.take_fields``): a poll's
        plain answer and a deliberation's position are counted from them, any other reply
        through its envelope, built here. Raises and leaves the rest as :meth:`take` does."""
        active = self._rounds.get(key)
        apply = None if active is None else FROM_FIELDS.get(active.apply)
        if apply is None:  # no round, or a vote: the envelopes'
            return self.take(key, (Envelope(*fields) for fields in replies), now)
        assert active is not None
        return self._count(active.round, apply, replies, now - active.start)

    def _count(self, counting: Counting, apply: Callable[[Any, Any, float], Verdict],
               replies: Iterator[Any], at: float) -> Taken:  # fmt: skip
        """The batch loop of :meth:`take` and :meth:`take_fields`: each reply (an envelope,
        or fields for ``apply_poll_fields``) counted by ``apply``, its refusal or verdict
        booked, the round's state looked at once."""
        counts = self._counts
        ignored: list[str] = []
        for reply in replies:
            try:
                verdict = apply(counting, reply, at)
            except MalformedMessage as exc:
                counts["malformed"] += 1
                ignored.append(str(exc))
                continue
            except Exception as exc:
                sender = reply.sender if isinstance(reply, Envelope) else reply[1]
                exc.add_note(f"(counting the reply from {sender!r})")
                raise
            if verdict is not Verdict.ACCEPTED:
                counts["late_replies" if verdict is Verdict.CLOSED else "rejected_replies"] += 1
        complete = counting.complete
        exhausted = complete and not counting.pending
        if ignored:
            return Taken(complete, exhausted, tuple(ignored))
        return TAKEN[complete, exhausted]

    def finish(self, key: int) -> None:
        """Stop round ``key`` taking replies: later ones are late."""
        active = self._rounds.get(key)
        if active is not None:
            active.round.finish()

    # ------------------------------------------------------------------ deliberations
    def open_deliberation(self, question: Any, *, deliberation_id: int, now: float, rounds: int = 3,
                          options: Sequence[str] | None = None, rule: Rule | Sequence[Rule] | None = None,
                          until: Until | Sequence[Until] | None = None, anonymous: bool = False,
                          key: Key | None = None) -> int:  # fmt: skip
        """Start a deliberation among the members present (bad arguments: ``TypeError`` /
        ``ValueError``); returns its key. Open each round with :meth:`open_deliberation_round`."""
        deliberator = Deliberator(question, self._roster.participants, options=options, rule=rule or Majority(),
                                  rounds=rounds, until=until, anonymous=anonymous,
                                  key=key or normalise_stance, deliberation=deliberation_id)  # fmt: skip
        self._next_key += 1
        self._deliberations[self._next_key] = (deliberator, now)
        return self._next_key

    def deliberation_done(self, key: int) -> bool:
        """True when deliberation ``key`` needs no more rounds (see :meth:`close_deliberation`)."""
        return self._deliberations[key][0].done

    def open_deliberation_round(self, key: int, now: float, *,
                                max_size: int | None = None) -> tuple[int, list[Send], Fitted]:  # fmt: skip
        """Open the next round of deliberation ``key``: the round's key, its ``deliberate``
        survey (none when nobody is asked), and the prompt as sent. Replies go to
        :meth:`reply` as for polls.

        With ``max_size`` (the surveyor's ``max_message_size``) the prompt is cut to fit
        (:func:`~consensus.decide.prompt_fit.fit_prompt`: long answers, then reasons, then
        entries), so a round is never lost to a prompt too large to send; cut prompts
        are counted in ``prompts_cut``."""
        deliberator, _ = self._deliberations[key]
        fitted = Fitted(deliberator.open_round())
        body = _vouched(fitted.prompt.to_wire(), fitted.prompt.question, 1)
        # Encoded already, the prompt's size is known: only one that may be too large is measured and cut.
        if max_size is not None and (type(body) is not Encoded or len(body.data) > max_size - ENVELOPE_ROOM):
            question = len(encode_body(fitted.prompt.question))  # the same in every cut
            fitted = fit_prompt(fitted.prompt, max_size - ENVELOPE_ROOM, lambda p: len(encode_body(p.to_wire())),
                                lambda p: size_bound(p, question))  # fmt: skip
            self._counts["prompts_cut"] += fitted.cut
            if fitted.cut:
                body = _vouched(fitted.prompt.to_wire(), fitted.prompt.question, 1)
        current = deliberator.current
        assert current is not None
        self._counts["deliberation_rounds"] += 1
        active = _Round(current, apply_deliberation, now, fitted.prompt.question, deliberator.deliberation,
                        deliberation=key)  # fmt: skip
        round_key, frames = self._open(active, D.DELIBERATE, body)
        return round_key, frames, fitted

    def close_deliberation_round(self, key: int, now: float) -> Round:
        """End round ``key`` (later replies are late) and return its record."""
        active = self._close(key)
        deliberator, _ = self._deliberations[active.deliberation]
        return deliberator.close_round(elapsed=now - active.start)

    def close_deliberation(self, key: int, now: float) -> tuple[Deliberation, list[Send]]:
        """Forget deliberation ``key``: its result, and the frames that tell every member: the
        ``decision`` (none when the last round has no decision), then the whole result; or,
        when every member present reads the decision from the result, the result alone
        marked ``decided`` (``docs/deliberation.md`` section 7.2)."""
        deliberator, start = self._deliberations.pop(key)
        for round_key in [k for k, active in self._rounds.items() if active.deliberation == key]:
            if not self._rounds[round_key].closed:  # abandoned mid-round: close it unrecorded
                del self._rounds[round_key]
        if deliberator.current is not None:
            deliberator.close_round(elapsed=now - start)
        if not deliberator.done:
            deliberator.stop()
        result = deliberator.result(elapsed=now - start)
        body = D.result_body(result)
        if result.decision is not None and self._roster.decided:
            body[D.DECIDED] = True  # one frame: every member present takes the decision from it
        told = [Send(D.RESULT, _vouched(body, result.question, 2), Target.CONTROL, inline=self._inline)]
        if result.decision is None or D.DECIDED in body:
            return result, told
        # P.decision_body's map, with the decision's wire form built once for both frames.
        decided = {"vote": result.deliberation, "motion": result.question,
                   "decision": body["deliberation"]["rounds"][-1]["decision"]}  # fmt: skip
        decided_frame = Send(P.DECISION, _vouched(decided, result.question, 1), Target.CONTROL, inline=self._inline)
        return result, [decided_frame, *told]

    def close_poll(self, key: int, now: float, *, poll_id: int = 0) -> PollResult:
        """End the poll ``key`` (later replies are late) and return its result."""
        active = self._close(key)
        assert isinstance(active.round, PollRound)
        return active.round.result(active.subject, elapsed=now - active.start, poll_id=poll_id)

    def close_vote(self, key: int, now: float) -> tuple[Decision, Send]:
        """End the vote ``key``: its decision, and the frame that tells every member."""
        active = self._close(key)
        assert isinstance(active.round, VoteRound)
        decision = active.round.decision(elapsed=now - active.start)
        body = P.decision_body(active.vote_id, active.subject, decision)
        return decision, Send(P.DECISION, body, Target.CONTROL, inline=self._inline)

    def _close(self, key: int) -> _Round:
        active = self._rounds[key]
        active.round.finish()
        active.closed = True
        if not active.reading:
            del self._rounds[key]
        return active

    def replies_done(self, key: int) -> None:
        """No more replies to round ``key`` will be read (its survey's late window is over)."""
        active = self._rounds.get(key)
        if active is not None:
            active.reading = False
            if active.closed:
                del self._rounds[key]

    def abandon(self, key: int) -> None:
        """Round ``key`` ends without a result (its survey could not be sent)."""
        self._rounds.pop(key, None)
