"""A deliberation as a sans-IO state machine: the :class:`Deliberator` (its rounds are
:class:`~consensus.decide.deliberation_round.DeliberationRound` objects).

Members deliberate in rounds. In round 1 every member answers on its own; in rounds
2..n every member is shown the others' positions of the previous round (labelled
``"P1"``, ``"P2"``, ... instead of names when ``anonymous``) and answers again. The
deliberation ends after ``rounds`` rounds, or earlier when an ``until=`` predicate
holds after a round (see :mod:`consensus.decide.until`), or when no members remain.

The driver runs it like a poll, round after round::

    deliberator = Deliberator(question, members, options=None, rule=Plurality(), rounds=3,
                              until=[unanimous])
    while not deliberator.done:
        prompt = deliberator.open_round()          # send prompt_for(name) to each expected member
        ...  deliberator.answer(name, body, at=t) / fail(name, failure) / left(name) / join(name)
        ...  until deliberator.complete or the round's deadline
        deliberator.close_round(elapsed=t)
    result = deliberator.result(elapsed=total)

Nothing here reads a clock or a socket. A member that joins takes part from the next
round; a member that leaves is counted as ``left`` in the open round and not asked again.
A reply whose ``round`` names another round is late: refused (``Verdict.CLOSED``) and
counted, without taking the member's place in this round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from consensus.decide.checks import describe
from consensus.decide.deliberation_round import DeliberationRound
from consensus.decide.poll import Verdict
from consensus.decide.position import MAX_NAME_LENGTH, MAX_ROUND, normalise_stance
from consensus.decide.prompt import MAX_SEEN, Prompt, Seen
from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Majority, Rules, as_rules, chain_name
from consensus.decide.stances import Key, Round, check_stance_options
from consensus.decide.tally import tally
from consensus.decide.until import Until, predicate_name
from consensus.failure import Failure

__all__ = ["DeliberationRound", "Deliberator", "Phase"]  # DeliberationRound re-exported

_MAJORITY: Final = Majority()


class Phase(Enum):
    """Where a :class:`Deliberator` is."""

    READY = "ready"  # no round open: open_round() starts the next one
    ASKING = "asking"  # a round is open: feed it answers, failures and departures
    DONE = "done"  # finished: result()


def _check_members(members: Mapping[str, float] | Iterable[str]) -> dict[str, float]:
    if isinstance(members, (str, bytes)) or not isinstance(members, Iterable):
        raise TypeError(f"members must map names to weights or list names, got {describe(members)}")
    pairs = members.items() if isinstance(members, Mapping) else [(name, 1.0) for name in members]
    checked: dict[str, float] = {}
    for name, weight in pairs:
        _check_name(name)
        if name in checked:
            raise ValueError(f"members lists {name!r} twice")
        checked[name] = _check_weight(name, weight)
    return checked


def _check_name(name: object) -> None:
    # Names are shown as labels in prompts, which carry at most MAX_NAME_LENGTH characters.
    if not isinstance(name, str):
        raise TypeError(f"member {describe(name)} is not a name (text)")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise ValueError(f"member name {describe(name)} is not 1..{MAX_NAME_LENGTH} characters long")


def _check_weight(name: str, weight: object) -> float:
    if type(weight) is bool or not isinstance(weight, (int, float)):
        raise TypeError(f"weight of {name!r} must be a number, got {describe(weight)}")
    if not weight >= 0 or weight == float("inf"):
        raise ValueError(f"weight of {name!r} is {weight!r}; weights must be finite and >= 0")
    return float(weight)


def _check_until(until: Until | Sequence[Until] | None) -> tuple[Until, ...]:
    if until is None:
        return ()
    listed = (until,) if callable(until) else tuple(until)
    for each in listed:
        if not callable(each):
            raise TypeError(f"until= takes predicates (callables of the rounds so far), got {describe(each)}")
    return listed


class Deliberator:
    """The whole deliberation: membership, rounds, prompts and when to stop."""

    def __init__(
        self,
        question: Any,
        members: Mapping[str, float] | Iterable[str],
        *,
        options: Sequence[str] | None = None,
        rule: Rules = _MAJORITY,
        rounds: int = 3,
        until: Until | Sequence[Until] | None = None,
        anonymous: bool = False,
        key: Key = normalise_stance,
        deliberation: int = 0,
    ) -> None:
        if type(rounds) is not int or not 1 <= rounds < MAX_ROUND:
            raise ValueError(f"rounds must be a number of rounds >= 1, got {describe(rounds)}")
        if type(anonymous) is not bool:
            raise TypeError(f"anonymous must be True or False, got {describe(anonymous)}")
        if not callable(key):
            raise TypeError(f"key= must be a function from stance text to text, got {describe(key)}")
        if type(deliberation) is not int or not 0 <= deliberation < 2**64:
            raise ValueError(f"deliberation id must be an unsigned 64-bit integer, got {describe(deliberation)}")
        self.question = question
        self.rules = as_rules(rule)
        self.rule = rule
        self.max_rounds = rounds
        self.until = _check_until(until)
        self.anonymous = anonymous
        self.key: Callable[[str], str] = key
        self.deliberation = deliberation
        self._options = check_stance_options(options, key)
        self.options = None if self._options is None else tuple(self._options.values())
        self._members = _check_members(members)
        for each in self.rules:  # a bad rule must fail here, not when a round is tallied
            if each.status_quo is not None and self.options is None:
                raise ValueError(f"{each.name} has a status_quo, which needs a closed question (options=)")
        if self.options is not None:
            tally([], options=self.options, rule=rule, electorate=self._members)
        self._asked: set[str] = set()  # everyone asked in some round (to name who joined)
        self._rounds: list[Round] = []
        self._round: DeliberationRound | None = None
        self._phase = Phase.READY if self._members else Phase.DONE
        self.stopped_by: str | None = None if self._members else "no members"
        self.converged_at: int | None = None
        self.late = 0  # replies while no round was open

    # -- state ------------------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def done(self) -> bool:
        return self._phase is Phase.DONE

    @property
    def rounds(self) -> tuple[Round, ...]:
        return tuple(self._rounds)

    @property
    def members(self) -> Mapping[str, float]:
        """The members who will be asked in the next round, with their weights."""
        return MappingProxyType(dict(self._members))

    @property
    def current(self) -> DeliberationRound | None:
        """The open round, if any."""
        return self._round

    @property
    def pending(self) -> frozenset[str]:
        return frozenset() if self._round is None else self._round.pending

    @property
    def complete(self) -> bool:
        """True when the open round has every reply it can get (False with no round open)."""
        return self._round is not None and self._round.complete

    # -- membership -------------------------------------------------------------------------

    def join(self, name: str, weight: float = 1.0) -> bool:
        """A member arrives; it is asked from the next round on. False if already a member."""
        _check_name(name)
        checked = _check_weight(name, weight)
        if name in self._members or self.done:
            return False
        self._members[name] = checked
        return True

    def left(self, name: str) -> None:
        """A member went away (left, crashed, expired): not asked again, ``left`` in the open round."""
        self._members.pop(name, None)
        if self._round is not None:
            self._round.left(name)

    # -- a round ----------------------------------------------------------------------------

    def open_round(self) -> Prompt:
        """Start the next round and return its prompt (every position of the previous round)."""
        if self._phase is not Phase.READY:
            raise RuntimeError(f"cannot open a round: the deliberation is {self._phase.value}")
        number = len(self._rounds) + 1
        seen, labels = self._shown()
        prompt = Prompt(self.question, number, self.options, self.anonymous, seen, self.deliberation)
        joined = set(self._members) - self._asked if self._rounds else set()
        self._asked |= self._members.keys()
        self._round = DeliberationRound(prompt, self._members, labels=labels, options=self._options,
                                        key=self.key, rule=self.rule, joined=joined)  # fmt: skip
        self._phase = Phase.ASKING
        return prompt

    def _shown(self) -> tuple[tuple[Seen, ...], dict[str, str]]:
        """The previous round's positions as shown, and label -> member name."""
        if not self._rounds:
            return (), {}
        last = self._rounds[-1]
        if not self.anonymous:
            names = sorted(last.positions)[:MAX_SEEN]
            shown = Seen.checked  # (names and "P<n>" labels are checked already)
            return tuple(shown(name, last.positions[name]) for name in names), {name: name for name in names}
        # Ordered by content, so neither order nor label says who is who.
        def content(name: str) -> tuple[str, str, str, str, float]:
            p = last.positions[name]
            return (last.stances[name], p.stance, p.answer or "", p.reason or "", p.confidence)

        names = sorted(last.positions, key=content)[:MAX_SEEN]
        labels = {f"P{at}": name for at, name in enumerate(names, 1)}
        return tuple(Seen.checked(label, last.positions[name]) for label, name in labels.items()), labels

    @property
    def prompt(self) -> Prompt | None:
        """The open round's prompt, showing every position of the previous round."""
        return None if self._round is None else self._round.prompt

    def prompt_for(self, name: str) -> Prompt:
        """The open round's prompt as ``name`` should see it: without its own position."""
        if self._round is None:
            raise RuntimeError("no round is open")
        prompt = self._round.prompt
        if not self.anonymous:
            return prompt.others(name, None)
        own = next((label for label, member in self._round.labels.items() if member == name), None)
        return dataclasses.replace(prompt, positions=tuple(s for s in prompt.positions if s.label != own))

    def answer(self, name: str, raw: Any, *, at: float | None = None) -> Verdict:
        if self._round is None:
            self.late += 1
            return Verdict.CLOSED
        return self._round.answer(name, raw, at=at)

    def fail(self, name: str, error: Failure, *, at: float | None = None) -> Verdict:
        if self._round is None:
            self.late += 1
            return Verdict.CLOSED
        return self._round.fail(name, error, at=at)

    def close_round(self, *, elapsed: float) -> Round:
        """Close the open round (``elapsed``: its duration) and decide whether to go on."""
        if self._round is None:
            raise RuntimeError(f"no round is open: the deliberation is {self._phase.value}")
        finished = self._round.close(elapsed=elapsed)
        self._rounds.append(finished)
        self._round = None
        self._phase = Phase.READY
        rounds = tuple(self._rounds)
        for predicate in self.until:
            try:
                holds = bool(predicate(rounds))
            except Exception as exc:  # noqa: BLE001 - a user's predicate must not kill the driver
                self._finish(f"until={predicate_name(predicate)} failed: {Failure.from_exception(exc)}")
                return finished
            if holds:
                self.converged_at = finished.number
                self._finish(predicate_name(predicate))
                return finished
        if finished.number >= self.max_rounds:
            self._finish("rounds")
        elif not self._members:
            self._finish("no members")
        return finished

    def stop(self, reason: str = "stopped") -> None:
        """End the deliberation before its last round (the driver's overall deadline)."""
        if self._round is not None:
            raise RuntimeError("close the open round before stopping")
        if not self.done:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        self._phase = Phase.DONE
        self.stopped_by = reason

    def result(self, *, elapsed: float = 0.0) -> Deliberation:
        """The deliberation so far (normally once :attr:`done`)."""
        if self._round is not None:
            raise RuntimeError("close the open round before asking for the result")
        return Deliberation(
            question=self.question,
            options=self.options,
            rule=chain_name(self.rules),
            anonymous=self.anonymous,
            rounds=tuple(self._rounds),
            stopped_by=self.stopped_by or "stopped",
            converged_at=self.converged_at,
            elapsed=elapsed,
            deliberation=self.deliberation,
        )
