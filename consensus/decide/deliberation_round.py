"""One deliberation round as a sans-IO state machine: :class:`DeliberationRound`.

It keeps a :class:`~consensus.decide.poll.PollRound` for who is asked, who answered,
failed or left, and checks each position on top: the round it answers (a reply naming
another round is late: refused, counted, and the member keeps its place), the options
of a closed question, and the ``persuaded_by`` labels (resolved to member names;
labels naming nobody shown to that member, or the member itself, are dropped and
counted in ``ignored``). A position that fails a check counts as the member's failure
in this round (``Failure("InvalidPosition", ...)``), like a bad ballot in a vote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from consensus.decide.checks import describe
from consensus.decide.deliberation_count import StanceCount
from consensus.decide.poll import PollRound, Verdict
from consensus.decide.position import Position, normalise_stance
from consensus.decide.prompt import Prompt
from consensus.decide.rules import Rules, as_rules
from consensus.decide.stances import Key, Round, check_key, display_stances, tally_stances
from consensus.errors import InvalidPosition
from consensus.failure import Failure

__all__ = ["DeliberationRound"]


class DeliberationRound:
    """One round: who is asked, what they answered; checks every position it is given."""

    def __init__(
        self,
        prompt: Prompt,
        electorate: Mapping[str, float],
        *,
        labels: Mapping[str, str],
        options: Mapping[str, str] | None,
        key: Key,
        rule: Rules,
        joined: Iterable[str] = (),
    ) -> None:
        self.prompt = prompt
        self.number = prompt.round
        self.electorate = dict(electorate)
        self._labels = dict(labels)  # what a member may name in persuaded_by -> member name
        self._options = options
        self._key = key
        self._rule = rule
        self._joined = frozenset(joined)
        self._poll = PollRound(self.electorate)
        self._positions: dict[str, Position] = {}
        self._stances: dict[str, str] = {}
        self.ignored = 0
        try:
            rules = as_rules(rule)
        except (TypeError, ValueError):  # the tally says what is wrong with it, at the round's end
            self._count: StanceCount | None = None
        else:
            self._count = StanceCount.of(self.electorate, rules)

    @property
    def pending(self) -> frozenset[str]:
        return self._poll.pending

    @property
    def labels(self) -> Mapping[str, str]:
        """Label shown in the prompt -> member name (names themselves when not anonymous)."""
        return MappingProxyType(self._labels)

    @property
    def complete(self) -> bool:
        return self._poll.complete

    def answer(self, name: str, raw: Any, *, at: float | None = None) -> Verdict:
        """A member's reply: a :class:`Position`, its wire map, or bare stance text."""
        try:
            position = Position.from_wire(raw) if type(raw) is dict else Position.coerce(raw)
        except (InvalidPosition, TypeError, ValueError) as exc:
            return self._poll.fail(name, Failure("InvalidPosition", str(exc)), at=at)
        if position.round is not None and position.round != self.number:
            self._poll.rejected += 1  # late (or early): it must not take the member's place
            return Verdict.CLOSED
        if self._key is normalise_stance:  # (check_key's checks hold: a stance is never blank)
            stance = " ".join(position.stance.split()).casefold()
        else:
            try:
                stance = check_key(self._key, position.stance)
            except Exception as exc:  # noqa: BLE001 - a user's key failing on a peer's stance is counted
                return self._poll.fail(name, Failure("InvalidPosition", f"key= failed on the stance: {exc}"),
                                       at=at)  # fmt: skip
        if self._options is not None and stance not in self._options:
            reason = f"stance {describe(position.stance)} is none of the options {list(self._options.values())!r}"
            return self._poll.fail(name, Failure("InvalidPosition", reason), at=at)
        verdict = self._poll.answer(name, position, at=at)
        if verdict is Verdict.ACCEPTED:
            if position.persuaded_by:
                credited: list[str] = []
                for label in position.persuaded_by:
                    named = self._labels.get(label)
                    if named is None or named == name or named in credited:
                        self.ignored += 1  # nobody shown to this member under that label
                    else:
                        credited.append(named)
                position = position.credited(tuple(credited), self.number)  # names and round: valid
            elif position.round is None:
                position = position.credited((), self.number)
            # (else: nobody to credit and the round already set: the position is stored as it came)
            self._positions[name] = position
            self._stances[name] = stance
            if self._count is not None:
                self._count.add(name, stance)
        return verdict

    def fail(self, name: str, error: Failure, *, at: float | None = None) -> Verdict:
        """The member's handler failed, or the driver gave up on it (a timeout)."""
        return self._poll.fail(name, error, at=at)

    def left(self, name: str) -> None:
        self._poll.left(name)

    def finish(self) -> None:
        """Take no more replies (the round's deadline passed): later ones are late."""
        self._poll.finish()

    def close(self, *, elapsed: float) -> Round:
        """Finish the round (later replies are late) and return what it produced."""
        self._poll.finish()
        polled = self._poll.result(self.prompt.question, elapsed=elapsed)
        display = display_stances(self._positions, self._stances, self._options)
        listed = list(display.values()) if self._options is None else list(self._options.values())
        decision = None
        if listed and self._count is not None:  # counted as the replies came
            decision = self._count.decision(self._positions, self._stances, display, listed, errors=polled.errors,
                                            left=polled.left, elapsed=elapsed)  # fmt: skip
        if listed and decision is None:
            decision = tally_stances(self._positions, self._stances, display, options=self._options,
                                     rule=self._rule, electorate=self.electorate)  # fmt: skip
            if decision is not None:
                decision = dataclasses.replace(decision, errors=polled.errors, left=polled.left, elapsed=elapsed)
        return Round(
            number=self.number,
            expected=polled.expected,
            positions=MappingProxyType(self._positions),  # the round is finished: they never change
            stances=MappingProxyType(self._stances),
            display=MappingProxyType(display),
            missing=polled.missing,
            errors=polled.errors,
            left=polled.left,
            joined=self._joined,
            elapsed=elapsed,
            rejected=polled.rejected,
            ignored=self.ignored,
            decision=decision,
        )
