"""The host's side of the room protocol as a pure object (no sockets, no clock).

:class:`HostProtocol` takes what arrives on the control bus (an envelope and the NNG
pipe it came over), the connection losses and the time, and returns frames to send
and events (:mod:`consensus.room.events`). It owns every check, cache and counter of
the host: the roster, the refused-join cache, the mesh checks of a join, the poll and
vote rounds and their replies. The trio driver (:class:`consensus.room.host.Room`)
only moves frames and wakes waiters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from consensus.decide.decision import Decision
from consensus.decide.deliberation import Deliberator
from consensus.decide.deliberation_round import DeliberationRound
from consensus.decide.poll import PollResult, PollRound, Verdict
from consensus.decide.position import normalise_stance
from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Majority, Rule
from consensus.decide.stances import Key, Round
from consensus.decide.until import Until
from consensus.decide.vote import VoteRound
from consensus.endpoints import Endpoints
from consensus.room import calls as C
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import (
    CallRequested,
    Ignored,
    Joined,
    Left,
    MembersChanged,
    Output,
    Send,
    Target,
    Why,
)
from consensus.room.roster import DEFAULT_MAX_MEMBERS, JoinOutcome, JoinVerdict, Roster
from patterns import Envelope, MalformedMessage

__all__ = ["COUNTERS", "HostProtocol", "ReplyOutcome"]

REFUSALS_REMEMBERED: Final = 256  # refused join attempts remembered, so a repeated join counts once
ROSTER_RESEND_BEATS: Final = 2  # the roster is resent every 2 heartbeats: it heals a lost update
EXPIRY_MARGIN: Final = 1e-3  # expire() drops members silent for *more than* the expiry: check just after it

COUNTERS: Final = ("joins", "refused_joins", "leaves", "connection_losses", "expired", "polls", "votes",
                   "late_replies", "rejected_replies", "malformed", "calls", "refused_calls",
                   "deliberation_rounds")  # fmt: skip

_COUNTER_OF: Final = {Why.LEAVE: "leaves", Why.REPLACED: "leaves", Why.CONNECTION_LOSS: "connection_losses",
                      Why.EXPIRY: "expired"}  # fmt: skip


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


@dataclass(slots=True)
class _Round:
    round: PollRound | VoteRound | DeliberationRound
    start: float
    subject: Any  # the question or the motion
    vote_id: int = 0
    deliberation: int = 0  # a deliberation round: the key of its deliberation
    closed: bool = False  # its caller has the result
    reading: bool = True  # replies may still come (the driver reads them, to count late ones)


class HostProtocol:
    """The host of one room: who is in it, and the polls and votes under way."""

    def __init__(self, *, name: str, endpoints: Endpoints, heartbeat: float, missed_heartbeats: int = 3,
                 max_members: int = DEFAULT_MAX_MEMBERS, member_calls: bool = True) -> None:  # fmt: skip
        self.name = name
        self.member_calls = member_calls  # False: members may not ask the host to poll or vote
        self._calls: set[tuple[str, int, int]] = set()  # calls running: (name, token, call id)
        self.endpoints = endpoints
        self.roster = Roster(
            heartbeat=heartbeat, missed_heartbeats=missed_heartbeats, max_members=max_members
        )
        self._own = {"survey": endpoints.survey, "control": endpoints.control, "mesh": endpoints.mesh,
                     "tasks": endpoints.tasks, "results": endpoints.results}  # fmt: skip
        self._refused: dict[tuple[str, int], None] = {}  # recent refused join attempts, oldest first
        self._rounds: dict[int, _Round] = {}
        self._deliberations: dict[int, tuple[Deliberator, float]] = {}  # key -> (its state, start)
        self._next_key = 0
        self.counts = dict.fromkeys(COUNTERS, 0)

    # ------------------------------------------------------------------ queries
    @property
    def members(self) -> tuple[str, ...]:
        """The names of the members present who take part in polls and votes (sorted)."""
        return self.roster.participants

    @property
    def observers(self) -> tuple[str, ...]:
        """The names of the observers present (sorted): in the room, never in an electorate."""
        return self.roster.observers

    @property
    def inline(self) -> bool:
        """True while a member present takes no shared-memory references: send inline."""
        return not self.roster.refs

    @property
    def heartbeat(self) -> float:
        """The interval members are told to heartbeat at (seconds)."""
        return self.roster.heartbeat

    @property
    def roster_interval(self) -> float:
        """How often the driver sends :meth:`roster_frame` unprompted, to heal a lost update."""
        return self.roster.heartbeat * ROSTER_RESEND_BEATS

    def next_check(self, now: float) -> float:
        """When to call :meth:`expire` next: just after the earliest member would expire if
        it stays silent, or one heartbeat from ``now`` when nobody is present."""
        first = self.roster.next_expiry()
        return now + self.roster.heartbeat if first is None else first + EXPIRY_MARGIN

    def beat_frame(self) -> Send:
        """The host's heartbeat, sent every :attr:`heartbeat` seconds: members notice a silent host."""
        return Send(P.BEAT, P.beat_body(self.roster.heartbeat), Target.CONTROL, inline=True)

    def close_frame(self, reason: str = "the host closed the room") -> Send:
        """Tells every member the room is closed (the driver sends it a few times: best effort)."""
        return Send(P.CLOSE, P.close_body(reason), Target.CONTROL, inline=True)

    def roster_frame(self) -> Send:
        """The roster as it stands (sent after each change, and periodically by the driver)."""
        body = P.roster_body(self.roster.meshes(), self.roster.version, refs=self.roster.refs,
                             observers=self.roster.observers)  # fmt: skip
        return Send(P.ROSTER, body, Target.CONTROL, inline=self.inline)

    # ------------------------------------------------------------------ control bus
    def receive_control(
        self, envelope: Envelope, pipe: int, now: float, *, connected: bool = True
    ) -> list[Output]:
        """A frame from the control bus, over the connection ``pipe``: the frames to send
        (welcome, refuse, roster) and the events (joined, left, members changed, ignored).

        ``connected=False``: the driver no longer sees that connection (it closed, and the
        news may not have reached :meth:`connection_closed` yet); a refusal is then not sent,
        since the member retries over its new connection."""
        try:
            if envelope.kind in (P.JOIN, P.HEARTBEAT):
                return self._on_hello(envelope, pipe, now, connected)
            if envelope.kind == C.CALL:
                return self._on_call(C.parse_call(envelope))
            if envelope.kind == P.LEAVE:
                hello = P.parse_hello(envelope)
                if self.roster.leave(hello.name, hello.token):
                    return self._gone([hello.name], Why.LEAVE)
                return []
            raise MalformedMessage(f"unexpected control kind {envelope.kind!r}", reason="body", size=0)
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            return [Ignored(str(exc))]

    def _on_hello(self, envelope: Envelope, pipe: int, now: float, connected: bool) -> list[Output]:
        hello = P.parse_hello(envelope, with_mesh=True)
        if envelope.kind == P.HEARTBEAT and self.roster.heartbeat_from(hello.name, hello.token, now):
            return []
        why = self._not_dialable(hello.mesh)
        if why is not None:
            verdict = JoinVerdict(JoinOutcome.REFUSED, f"the mesh address {hello.mesh[:80]!r} {why}")
        else:
            verdict = self.roster.join(hello.name, hello.token, hello.mesh, pipe, now, refs=hello.refs,
                                       observer=hello.observer)  # fmt: skip
        if verdict.outcome is JoinOutcome.REFUSED:
            return self._refuse(hello, pipe, verdict.reason, connected)
        out: list[Output] = []
        if verdict.outcome is not JoinOutcome.REFRESHED:
            self.counts["joins"] += 1
            if verdict.replaced is not None:
                out += self._gone([verdict.replaced.name], Why.REPLACED, roster=False)
            out.append(Joined(hello.name, replaced=verdict.replaced is not None))
            if not hello.observer:
                for deliberator, _ in self._deliberations.values():
                    deliberator.join(hello.name)  # asked from the next round on
        body = P.welcome_body(hello.name, hello.token, self.roster.meshes(), heartbeat=self.roster.heartbeat,
                              mesh=self.endpoints.mesh, refs=self.roster.refs,
                              observers=self.roster.observers)  # fmt: skip
        out.append(Send(P.WELCOME, body, Target.CONTROL, inline=self.inline))
        if verdict.outcome is not JoinOutcome.REFRESHED:
            out += [MembersChanged(self.members), self.roster_frame()]
        return out

    # ------------------------------------------------------------------ member calls
    def _on_call(self, call: C.Call) -> list[Output]:
        record = self.roster.get(call.name)
        if record is None or record.token != call.token:
            return self.call_refused(call, f"{call.name!r} is not a member of this room (join first)")
        running = (call.name, call.token, call.call_id)
        if running in self._calls:
            return []  # the same call again: it is running, its result will come
        if not self.member_calls:
            return self.call_refused(
                call, "this room takes no polls or votes from members (member_calls=False)"
            )
        if call.problem:
            return self.call_refused(call, call.problem)
        self._calls.add(running)
        self.counts["calls"] += 1
        return [CallRequested(call)]

    def call_refused(self, call: C.Call, reason: str) -> list[Output]:
        """Refuse ``call`` (also when opening its round failed): the frame that tells the caller."""
        self._calls.discard((call.name, call.token, call.call_id))
        self.counts["refused_calls"] += 1
        body = C.result_body(call.name, call.token, call.call_id, refused=reason)
        return [Send(C.RESULT, body, Target.CONTROL, inline=self.inline)]

    def call_result(self, call: C.Call, result: PollResult | Decision) -> list[Output]:
        """The call ran: the frame that brings its result to the caller."""
        self._calls.discard((call.name, call.token, call.call_id))
        if isinstance(result, PollResult):
            body = C.result_body(call.name, call.token, call.call_id, poll=result)
        else:
            body = C.result_body(call.name, call.token, call.call_id, decision=result)
        return [Send(C.RESULT, body, Target.CONTROL, inline=self.inline)]

    def _not_dialable(self, mesh: str) -> str | None:
        why = P.dialable(mesh)
        if why is not None:
            return f"is not one members can dial: {why}"
        for endpoint, address in self._own.items():
            if mesh == address:
                return f"is this host's {endpoint} endpoint, not a member's"
        return None

    def _refuse(self, hello: P.Hello, pipe: int, reason: str, connected: bool) -> list[Output]:
        attempt = (hello.name, hello.token)  # a member repeats its join until answered:
        if attempt not in self._refused:  # one attempt counts once, however many times it came
            self._refused[attempt] = None
            if len(self._refused) > REFUSALS_REMEMBERED:
                del self._refused[next(iter(self._refused))]
            self.counts["refused_joins"] += 1
        if not connected or self.roster.is_closed(pipe):
            return []  # sent over a connection that has closed: the member retries on its new one
        return [
            Send(P.REFUSE, P.refuse_body(hello.name, hello.token, reason), Target.CONTROL, inline=self.inline)
        ]

    def connection_closed(self, pipe: int, now: float) -> list[Output]:
        """The control connection ``pipe`` closed: the members that joined over it are gone
        (returns their :class:`Left`, and the new roster to send; nothing if there were none)."""
        return self._gone(self.roster.pipe_closed(pipe), Why.CONNECTION_LOSS)

    def expire(self, now: float) -> list[Output]:
        """Drop the members silent for longer than the expiry (returns as :meth:`connection_closed`)."""
        return self._gone(self.roster.expire(now), Why.EXPIRY)

    def _gone(self, names: list[str], why: Why, *, roster: bool = True) -> list[Output]:
        if not names:
            return []
        self.counts[_COUNTER_OF[why]] += len(names)
        for deliberator, _ in self._deliberations.values():
            for name in names:
                deliberator.left(name)  # also marks it left in the open round
        for active in self._rounds.values():
            if not active.deliberation:
                for name in names:
                    active.round.left(name)
        out: list[Output] = [Left(tuple(names), why)]
        if roster:
            out += [MembersChanged(self.members), self.roster_frame()]
        return out

    # ------------------------------------------------------------------ polls and votes
    def _open(self, active: _Round, kind: str, body: dict[str, Any]) -> tuple[int, list[Send]]:
        self._next_key += 1
        self._rounds[self._next_key] = active
        if active.round.complete:
            active.reading = False
            return self._next_key, []  # nobody to ask
        return self._next_key, [Send(kind, body, Target.SURVEY, inline=self.inline)]

    def open_poll(self, question: Any, *, quorum: int | None, now: float) -> tuple[int, list[Send]]:
        """Start a poll of the members present: its key, and the survey to send (none if empty)."""
        poll = PollRound(self.members, quorum=quorum)
        self.counts["polls"] += 1
        return self._open(_Round(poll, now, question), P.POLL, P.poll_body(question))

    def open_vote(self, motion: Any, *, options: Sequence[Any], vote_id: int, rule: Rule | None,
                  quorum: int | None, weights: Mapping[str, float] | None,
                  now: float) -> tuple[int, list[Send]]:  # fmt: skip
        """Start a vote of the members present (``vote_id``: drawn by the caller)."""
        weights = weights or {}
        electorate = {member: float(weights.get(member, 1.0)) for member in self.members}
        options = tuple(options)
        vote = VoteRound(
            vote_id, electorate=electorate, options=options, rule=rule or Majority(), quorum=quorum
        )
        self.counts["votes"] += 1
        return self._open(_Round(vote, now, motion, vote_id), P.VOTE, P.vote_body(vote_id, motion, options))

    def complete(self, key: int) -> bool:
        """True when round ``key`` has what it needs: its caller may close it."""
        return self._rounds[key].round.complete

    def reply(self, key: int, envelope: Envelope, now: float) -> ReplyOutcome:
        """A reply to the survey of round ``key`` (the driver routes by the survey): what it
        did to the round (see :class:`ReplyOutcome`)."""
        active = self._rounds.get(key)
        if active is None:  # the round was forgotten: nothing can count it
            self.counts["late_replies"] += 1
            return ReplyOutcome(Verdict.CLOSED, True, True)
        counting = active.round
        try:
            verdict = self._apply(counting, envelope, now - active.start)
        except MalformedMessage as exc:
            self.counts["malformed"] += 1
            return ReplyOutcome(None, counting.complete, counting.complete and not counting.pending, str(exc))
        if verdict is Verdict.CLOSED:
            self.counts["late_replies"] += 1
        elif verdict is not Verdict.ACCEPTED:
            self.counts["rejected_replies"] += 1
        return ReplyOutcome(verdict, counting.complete, counting.complete and not counting.pending)

    @staticmethod
    def _apply(counting: PollRound | VoteRound | DeliberationRound, envelope: Envelope, at: float) -> Verdict:
        if isinstance(counting, DeliberationRound):
            if envelope.kind == D.POSITION:
                return counting.answer(envelope.sender, D.parse_position(envelope), at=at)
            kind, value = P.parse_reply(envelope)
            if kind == P.ERROR:
                return counting.fail(envelope.sender, value, at=at)
            raise MalformedMessage(
                f"a {kind!r} reply to a deliberation from {envelope.sender!r}", reason="body", size=0
            )
        if envelope.kind == D.POSITION:
            raise MalformedMessage(f"a 'position' reply to a poll or vote from {envelope.sender!r}",
                                   reason="body", size=0)  # fmt: skip
        kind, value = P.parse_reply(envelope)
        if isinstance(counting, PollRound):
            if kind == P.ANSWER:
                return counting.answer(envelope.sender, value, at=at)
            if kind == P.ERROR:
                return counting.fail(envelope.sender, value, at=at)
            what = "poll"
        else:
            if kind == P.BALLOT:
                return counting.ballot(envelope.sender, value)
            if kind == P.ERROR:
                return counting.fail(envelope.sender, value)
            what = "vote"
        raise MalformedMessage(
            f"a {kind!r} reply to a {what} from {envelope.sender!r}", reason="body", size=0
        )

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
        deliberator = Deliberator(question, self.members, options=options, rule=rule or Majority(),
                                  rounds=rounds, until=until, anonymous=anonymous,
                                  key=key or normalise_stance, deliberation=deliberation_id)  # fmt: skip
        self._next_key += 1
        self._deliberations[self._next_key] = (deliberator, now)
        return self._next_key

    def deliberation_done(self, key: int) -> bool:
        """True when deliberation ``key`` needs no more rounds (see :meth:`close_deliberation`)."""
        return self._deliberations[key][0].done

    def open_deliberation_round(self, key: int, now: float) -> tuple[int, list[Send]]:
        """Open the next round of deliberation ``key``: the round's key and its ``deliberate``
        survey (none when nobody is asked). Replies go to :meth:`reply` as for polls."""
        deliberator, _ = self._deliberations[key]
        prompt = deliberator.open_round()
        current = deliberator.current
        assert current is not None
        self.counts["deliberation_rounds"] += 1
        active = _Round(current, now, prompt.question, deliberator.deliberation, deliberation=key)
        return self._open(active, D.DELIBERATE, prompt.to_wire())

    def close_deliberation_round(self, key: int, now: float) -> Round:
        """End round ``key`` (later replies are late) and return its record."""
        active = self._close(key)
        deliberator, _ = self._deliberations[active.deliberation]
        return deliberator.close_round(elapsed=now - active.start)

    def close_deliberation(self, key: int, now: float) -> tuple[Deliberation, list[Send]]:
        """Forget deliberation ``key``: its result, and the ``decision`` frame that tells every
        member (none when the last round has no decision)."""
        deliberator, start = self._deliberations.pop(key)
        for round_key in [k for k, active in self._rounds.items() if active.deliberation == key]:
            if not self._rounds[round_key].closed:  # abandoned mid-round: close it unrecorded
                del self._rounds[round_key]
        if deliberator.current is not None:
            deliberator.close_round(elapsed=now - start)
        if not deliberator.done:
            deliberator.stop()
        result = deliberator.result(elapsed=now - start)
        if result.decision is None:
            return result, []
        body = P.decision_body(result.deliberation, result.question, result.decision)
        return result, [Send(P.DECISION, body, Target.CONTROL, inline=self.inline)]

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
        return decision, Send(P.DECISION, body, Target.CONTROL, inline=self.inline)

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

    @property
    def rounds(self) -> int:
        """Rounds still held: open, or closed with their late replies still being read."""
        return len(self._rounds)
