"""The host's member calls and directed messages, a part of :class:`~consensus.room.host_protocol.HostProtocol`.

:class:`Calls` (the protocol's ``calls``) decides whether a member's call (a poll, vote or
deliberation it asks the host to run, docs/rooms.md 2.6) runs, writes the frame that brings
its result or refusal back, and keeps the host's directed messages (``room.ask`` /
``room.send``, 2.8): their frames, their answers, and those lost with their member. It
shares the protocol's roster and counters; pure, as the protocol is.
"""

from __future__ import annotations

from consensus.decide.decision import Decision
from consensus.decide.poll import PollResult
from consensus.decide.roundtable import Deliberation
from consensus.room import calls as C
from consensus.room import direct as X
from consensus.room.events import CallRequested, DirectAnswered, DirectLost, Output, Send, Target, Why
from consensus.room.roster import Roster

__all__ = ["Calls"]


class Calls:
    """Members' calls running, and the host's directed asks waiting for their answer."""

    def __init__(self, room: str, roster: Roster, counts: dict[str, int], *, member_calls: bool) -> None:
        self._room = room
        self._roster = roster
        self._counts = counts  # the protocol's counters
        self.member_calls = member_calls  # False: members may not ask the host to poll or vote
        self._running: set[tuple[str, int, int]] = set()  # calls running: (name, token, call id)
        self._directs = X.DirectAsks()

    @property
    def _inline(self) -> bool:  # (as HostProtocol.inline: a member present takes no references)
        return not self._roster.refs

    # ------------------------------------------------------------------ member calls
    def on_call(self, call: C.Call) -> list[Output]:
        """A member's call, from a speaker that may speak for ``call.name``."""
        record = self._roster.get(call.name)
        if record is None or record.token != call.token:
            return self.refused(call, f"{call.name!r} is not a member of this room (join first)")
        running = (call.name, call.token, call.call_id)
        if running in self._running:
            return []  # the same call again: it is running, its result will come
        if not self.member_calls:
            return self.refused(
                call, "this room takes no polls, votes or deliberations from members (member_calls=False)"
            )
        if call.problem:
            return self.refused(call, call.problem)
        self._running.add(running)
        self._counts["calls"] += 1
        return [CallRequested(call)]

    def refused(self, call: C.Call, reason: str) -> list[Output]:
        """Refuse ``call`` (also when opening its round failed): the frame that tells the caller."""
        self._running.discard((call.name, call.token, call.call_id))
        self._counts["refused_calls"] += 1
        body = C.result_body(call.name, call.token, call.call_id, refused=reason)
        return [Send(C.RESULT, body, Target.CONTROL, inline=self._inline)]

    def result(self, call: C.Call, result: PollResult | Decision | Deliberation) -> list[Output]:
        """The call ran: the frame that brings its result to the caller."""
        self._running.discard((call.name, call.token, call.call_id))
        if isinstance(result, PollResult):
            body = C.result_body(call.name, call.token, call.call_id, poll=result)
        elif isinstance(result, Deliberation):
            body = C.result_body(call.name, call.token, call.call_id, deliberation=result)
        else:
            body = C.result_body(call.name, call.token, call.call_id, decision=result)
        return [Send(C.RESULT, body, Target.CONTROL, inline=self._inline)]

    # ------------------------------------------------------------------ directed messages
    def direct_frame(self, name: str, value: object, *, reply: bool,
                     timeout: float | None = None) -> tuple[int, Send]:  # fmt: skip
        """A message for member ``name`` only (``reply``: an ask, answered within ``timeout``):
        its id and the frame. Raises ``LookupError`` when no member has that name and
        ``ValueError`` for a bad timeout."""
        if reply and (timeout is None or type(timeout) not in (int, float) or not 0 < timeout <= X.MAX_DIRECT_TIMEOUT):
            raise ValueError(f"timeout must be a number of seconds in (0, {X.MAX_DIRECT_TIMEOUT:g}], got {timeout!r}")
        record = self._roster.get(name)
        if record is None:
            present = ", ".join(self._roster.participants + self._roster.observers) or "nobody"
            raise LookupError(f"no member named {name!r} in the room {self._room!r} (present: {present})")
        ident = self._directs.open(name, record.token)
        if not reply:
            self._directs.forget(ident)  # a send waits for nothing
        self._counts["directs"] += 1
        body = X.direct_body(name, record.token, ident, value, reply=reply, timeout=timeout if reply else None)
        return ident, Send(X.DIRECT, body, Target.CONTROL, inline=self._inline)

    def forget_direct(self, direct_id: int) -> None:
        """The asker stopped waiting for ask ``direct_id``: a later answer is late."""
        self._directs.forget(direct_id)

    def on_direct_reply(self, reply: X.DirectReply) -> list[Output]:
        """A member's answer to a directed ask, from a speaker that may speak for ``reply.name``."""
        if not self._directs.answer(reply):
            self._counts["late_replies"] += 1
            return []
        return [DirectAnswered(reply)]

    def gone(self, names: list[str], why: Why) -> list[Output]:
        """``names`` left the room: the directed asks waiting for them are lost."""
        out: list[Output] = []
        for ident, name in self._directs.asked(set(names)):
            self._directs.forget(ident)
            out.append(DirectLost(ident, name, why.value))
        return out
