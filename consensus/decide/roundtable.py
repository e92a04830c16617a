"""The result of a deliberation: :class:`Deliberation`, its summaries and its report.

Everything here is derived from the finished rounds (pure code):

``final``
    Each member's last position (members who never gave one are absent), whether its
    stance differs from the member's first stance (``changed``) and that first stance.
``decision`` / ``outcome``
    The final round tallied under the rule (see :mod:`consensus.decide.stances`).
``agreement``
    In the final round: how many members hold the leading stance (the outcome, else the
    stance most members hold, ties to the first in key order) of the members asked.
``counterpoint``
    The strongest dissent in the final round: among the other stances, the one with the
    highest confidence-weighted support (the sum of weight * confidence of its holders;
    ties: more holders, then key order), with the reason and answer of its most
    confident holder (ties: name order) that gave a reason.
``influence``
    Who was named as persuasive by whom, over all rounds: persuader -> members who named
    it (in order of first naming).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from consensus.decide.decision import Decision
from consensus.decide.position import Position
from consensus.decide.stances import Round

__all__ = ["Agreement", "Counterpoint", "Deliberation", "FinalPosition"]

_REPORT_WIDTH = 160


@dataclass(frozen=True, slots=True)
class FinalPosition:
    """A member's last position, and whether it changed its mind since its first."""

    member: str
    position: Position
    round: int
    changed: bool
    changed_from: str | None
    """The first stance, when ``changed``; else None."""


@dataclass(frozen=True, slots=True)
class Agreement:
    """``count`` of the ``of`` members asked in the final round hold ``stance``."""

    stance: str | None
    count: int
    of: int

    def __str__(self) -> str:
        return f"{self.count} of {self.of}"


@dataclass(frozen=True, slots=True)
class Counterpoint:
    """The strongest dissenting stance of the final round."""

    stance: str
    members: tuple[str, ...]
    support: float
    reason: str | None
    answer: str | None
    by: str | None
    """The member whose reason and answer are quoted (None when none gave a reason)."""


@dataclass(frozen=True, slots=True)
class Deliberation:
    """A finished deliberation: its rounds and everything derived from them."""

    question: Any
    options: tuple[str, ...] | None
    rule: str
    anonymous: bool
    rounds: tuple[Round, ...]
    stopped_by: str
    """Why it ended: an ``until=`` predicate's name, ``"rounds"``, ``"no members"`` or ``"stopped"``."""
    converged_at: int | None
    """The round after which an ``until=`` predicate held, else None."""
    elapsed: float = 0.0
    deliberation: int = 0

    # -- derived ------------------------------------------------------------------------

    @property
    def final(self) -> Mapping[str, FinalPosition]:
        first: dict[str, tuple[str, str]] = {}  # member -> (stance key, as shown)
        last: dict[str, tuple[Round, Position]] = {}
        for each in self.rounds:
            for member, position in each.positions.items():
                first.setdefault(member, (each.stances[member], each.display[each.stances[member]]))
                last[member] = (each, position)
        final = {}
        for member, (each, position) in last.items():
            changed = each.stances[member] != first[member][0]
            final[member] = FinalPosition(member, position, each.number, changed,
                                          first[member][1] if changed else None)  # fmt: skip
        return MappingProxyType(final)

    @property
    def decision(self) -> Decision | None:
        return self.rounds[-1].decision if self.rounds else None

    @property
    def outcome(self) -> str | None:
        decision = self.decision
        return None if decision is None else decision.outcome

    def _leading(self) -> str | None:
        """The key of the final round's leading stance."""
        if not self.rounds:
            return None
        last = self.rounds[-1]
        if last.outcome_key is not None:
            return last.outcome_key
        counts = Counter(last.stances.values())
        return min(counts, key=lambda key: (-counts[key], key), default=None)

    @property
    def agreement(self) -> Agreement:
        if not self.rounds:
            return Agreement(None, 0, 0)
        last, leading = self.rounds[-1], self._leading()
        count = sum(1 for stance in last.stances.values() if stance == leading)
        return Agreement(None if leading is None else last.display[leading], count, len(last.expected))

    @property
    def counterpoint(self) -> Counterpoint | None:
        if not self.rounds:
            return None
        last, leading = self.rounds[-1], self._leading()
        weights = last.decision.electorate if last.decision is not None else None
        holders: dict[str, list[str]] = {}
        for member, stance in last.stances.items():
            if stance != leading:
                holders.setdefault(stance, []).append(member)
        if not holders:
            return None

        def support(stance: str) -> float:
            return sum((1.0 if weights is None else weights.get(member, 1.0)) * last.positions[member].confidence
                       for member in holders[stance])  # fmt: skip

        stance = min(holders, key=lambda key: (-support(key), -len(holders[key]), key))
        reasoned = [member for member in holders[stance] if last.positions[member].reason]
        by = min(reasoned, key=lambda member: (-last.positions[member].confidence, member), default=None)
        quoted = None if by is None else last.positions[by]
        return Counterpoint(last.display[stance], tuple(sorted(holders[stance])), support(stance),
                            None if quoted is None else quoted.reason, None if quoted is None else quoted.answer,
                            by)  # fmt: skip

    @property
    def influence(self) -> Mapping[str, tuple[str, ...]]:
        named: dict[str, list[str]] = {}
        for each in self.rounds:
            for member, position in each.positions.items():
                for persuader in position.persuaded_by:
                    if member not in named.setdefault(persuader, []):
                        named[persuader].append(member)
        return MappingProxyType({persuader: tuple(members) for persuader, members in named.items()})

    # -- views ----------------------------------------------------------------------------

    def summary(self) -> str:
        """One sentence: where it ended, who persuaded whom to pivot, who dissented."""
        parts = []
        outcome, rounds = self.outcome, len(self.rounds)
        if outcome is not None and self.converged_at is not None:
            parts.append(f"converged on {outcome} in round {self.converged_at}")
        elif outcome is not None:
            parts.append(f"{outcome} under {self.rule} after {rounds} round{'s' * (rounds != 1)}")
        else:
            parts.append(f"no outcome under {self.rule} after {rounds} round{'s' * (rounds != 1)}")
        final = self.final
        for persuader, members in self.influence.items():
            pivoted = [member for member in members if member in final and final[member].changed]
            if pivoted:
                parts.append(f"{persuader} persuaded {_and(pivoted)} to pivot")
        leading = self._leading()
        if self.rounds and leading is not None:
            dissenters = sorted(m for m, stance in self.rounds[-1].stances.items() if stance != leading)
            if len(dissenters) == 1:
                parts.append(f"{dissenters[0]} the lone dissenter")
            elif dissenters:
                parts.append(f"{_and(dissenters)} dissented")
        return "; ".join(parts) + "."

    def __str__(self) -> str:
        agreement = self.agreement
        lines = [f"Question: {_cut(str(self.question))}"]
        answer = self.outcome if self.outcome is not None else agreement.stance
        if answer is None:
            lines.append("Answer: none (no positions)")
        else:
            label = "" if self.outcome is not None else " (no outcome; the leading stance)"
            lines.append(f"Answer: {answer}{label} ({agreement} members agreed)")
        counterpoint = self.counterpoint
        if counterpoint is not None:
            because = f": {_cut(counterpoint.reason)}" if counterpoint.reason else ""
            lines.append(f"Counterpoint: {counterpoint.stance}{because}")
        final = self.final
        lines.append("Member responses:")
        width = max((len(member) + (len(" (changed mind)") if f.changed else 0) for member, f in final.items()),
                    default=0)  # fmt: skip
        for member, entry in final.items():
            tag = f"{member} (changed mind)" if entry.changed else member
            position = entry.position
            text = position.answer or position.stance
            quoted = f'  "{_cut(position.reason, 200)}"' if position.reason else ""
            lines.append(f"  {tag:<{width}}  Answer: {_cut(text)}{quoted}")
        lines.append(f"Final summary: {self.summary()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the question is passed through as it is)."""
        agreement, counterpoint = self.agreement, self.counterpoint
        decision = self.decision
        return {
            "question": self.question,
            "options": None if self.options is None else list(self.options),
            "rule": self.rule,
            "anonymous": self.anonymous,
            "deliberation": self.deliberation,
            "rounds": [_round_dict(each) for each in self.rounds],
            "final": {
                member: {"position": f.position.to_wire(), "round": f.round, "changed": f.changed,
                         "changed_from": f.changed_from}
                for member, f in self.final.items()
            },
            "outcome": self.outcome,
            "decision": None if decision is None else decision.to_wire(),
            "agreement": {"stance": agreement.stance, "count": agreement.count, "of": agreement.of},
            "counterpoint": None if counterpoint is None else {
                "stance": counterpoint.stance, "members": list(counterpoint.members),
                "support": counterpoint.support, "reason": counterpoint.reason,
                "answer": counterpoint.answer, "by": counterpoint.by,
            },
            "influence": {persuader: list(members) for persuader, members in self.influence.items()},
            "converged_at": self.converged_at,
            "stopped_by": self.stopped_by,
            "elapsed": self.elapsed,
        }


def _round_dict(each: Round) -> dict[str, Any]:
    return {
        "number": each.number,
        "expected": sorted(each.expected),
        "positions": {member: position.to_wire() for member, position in each.positions.items()},
        "stances": dict(each.stances),
        "missing": sorted(each.missing),
        "errors": {member: error.to_wire() for member, error in each.errors.items()},
        "left": sorted(each.left),
        "joined": sorted(each.joined),
        "elapsed": each.elapsed,
        "rejected": each.rejected,
        "ignored": each.ignored,
        "outcome": None if each.decision is None else each.decision.outcome,
    }


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _cut(text: str | None, limit: int = _REPORT_WIDTH) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
