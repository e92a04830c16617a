"""A naive reference deliberation, written from docs/deliberation.md only, for the property tests.

It shares no code with ``consensus.decide`` (the tests compare the two): plain dicts and
loops, one round at a time. Stances are compared with the default key (case and blanks
ignored). Slow and simple on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def key(stance: str) -> str:
    return " ".join(stance.split()).lower()


@dataclass
class RefPosition:
    stance: str
    confidence: float
    reason: str | None
    answer: str | None
    persuaded_by: list[str]


@dataclass
class RefRound:
    number: int
    expected: set[str]
    joined: set[str]
    labels: dict[str, str]  # label -> member, as shown in this round's prompt
    order: list[str] = field(default_factory=list)  # members in arrival order of their positions
    positions: dict[str, RefPosition] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)
    rejected: int = 0
    ignored: int = 0
    outcome_key: str | None = None  # filled in by the test (from a tally of the display stances)

    def pending(self) -> set[str]:
        return self.expected - set(self.positions) - self.errors - self.left

    def stances(self) -> dict[str, str]:
        return {member: key(self.positions[member].stance) for member in self.order}

    def display(self, options: list[str] | None) -> dict[str, str]:
        if options is not None:
            by_key = {key(option): option for option in options}
            return {k: by_key[k] for k in sorted(set(self.stances().values()))}
        shown: dict[str, str] = {}
        for k in sorted(set(self.stances().values())):
            spellings = [self.positions[m].stance for m in self.order if key(self.positions[m].stance) == k]
            best = spellings[0]
            for spelling in spellings:
                if spellings.count(spelling) > spellings.count(best):
                    best = spelling
            shown[k] = best
        return shown


class RefDeliberation:
    def __init__(self, members: list[str], *, options: list[str] | None, anonymous: bool, rounds: int,
                 until: list[str]) -> None:  # fmt: skip
        self.members = list(members)
        self.options = options
        self.anonymous = anonymous
        self.max_rounds = rounds
        self.until = until
        self.asked: set[str] = set()
        self.rounds: list[RefRound] = []
        self.done = not members
        self.stopped_by = "no members" if not members else None
        self.converged_at: int | None = None

    def open(self) -> RefRound:
        number = len(self.rounds) + 1
        expected = set(self.members)
        joined = expected - self.asked if self.rounds else set()
        self.asked |= expected
        labels: dict[str, str] = {}
        if self.rounds:
            last = self.rounds[-1]
            if self.anonymous:
                def content(m: str) -> tuple[Any, ...]:
                    p = last.positions[m]
                    return (key(p.stance), p.stance, p.answer or "", p.reason or "", p.confidence)

                for at, member in enumerate(sorted(last.positions, key=content), 1):
                    labels[f"P{at}"] = member
            else:
                labels = {m: m for m in sorted(last.positions)}
        current = RefRound(number, expected, joined, labels)
        self.rounds.append(current)
        return current

    def answer(self, name: str, position: RefPosition, tag: int | None) -> None:
        current = self.rounds[-1]
        if tag is not None and tag != current.number:
            current.rejected += 1
            return
        if self.options is not None and key(position.stance) not in {key(o) for o in self.options}:
            self.fail(name)
            return
        if name not in current.pending():
            current.rejected += 1
            return
        credited = []
        for label in position.persuaded_by:
            who = current.labels.get(label)
            if who is None or who == name or who in credited:
                current.ignored += 1
            else:
                credited.append(who)
        current.positions[name] = RefPosition(position.stance, position.confidence, position.reason,
                                              position.answer, credited)  # fmt: skip
        current.order.append(name)

    def fail(self, name: str) -> None:
        current = self.rounds[-1]
        if name in current.pending():
            current.errors.add(name)
        else:
            current.rejected += 1

    def leave(self, name: str) -> None:
        if name in self.members:
            self.members.remove(name)
        current = self.rounds[-1] if self.rounds else None
        if current is not None and name in current.pending():
            current.left.add(name)

    def join(self, name: str) -> None:
        if name not in self.members:
            self.members.append(name)

    def close(self) -> None:
        number = self.rounds[-1].number
        for name in self.until:
            if PREDICATES[name](self.rounds):
                self.done, self.stopped_by, self.converged_at = True, name, number
                return
        if number >= self.max_rounds:
            self.done, self.stopped_by = True, "rounds"
        elif not self.members:
            self.done, self.stopped_by = True, "no members"


# -- the stop predicates, naively --------------------------------------------------------------


def ref_unanimous(rounds: list[RefRound]) -> bool:
    last = rounds[-1]
    if set(last.positions) != last.expected - last.left or not last.positions:
        return False
    return len({key(p.stance) for p in last.positions.values()}) == 1


def ref_no_change(rounds: list[RefRound]) -> bool:
    if len(rounds) < 2:
        return False
    for member, position in rounds[-1].positions.items():
        previous = [r.positions[member] for r in rounds[:-1] if member in r.positions]
        if previous and key(previous[-1].stance) != key(position.stance):
            return False
    return True


def ref_decided(rounds: list[RefRound]) -> bool:
    return len(rounds) >= 2 and rounds[-1].outcome_key is not None and rounds[-1].outcome_key == rounds[-2].outcome_key


PREDICATES = {"unanimous": ref_unanimous, "no_change": ref_no_change, "decided": ref_decided}


# -- the summaries, naively ----------------------------------------------------------------------


def ref_leading(last: RefRound) -> str | None:
    if last.outcome_key is not None:
        return last.outcome_key
    counts: dict[str, int] = {}
    for position in last.positions.values():
        counts[key(position.stance)] = counts.get(key(position.stance), 0) + 1
    best = None
    for k in sorted(counts):
        if best is None or counts[k] > counts[best]:
            best = k
    return best


def ref_agreement(last: RefRound) -> tuple[str | None, int, int]:
    leading = ref_leading(last)
    agreeing = [m for m, p in last.positions.items() if key(p.stance) == leading]
    return leading, len(agreeing), len(last.expected)


def ref_counterpoint(last: RefRound, weights: dict[str, float]) -> tuple[str, list[str], float, str | None] | None:
    leading = ref_leading(last)
    groups: dict[str, list[str]] = {}
    for member in last.order:
        k = key(last.positions[member].stance)
        if k != leading:
            groups.setdefault(k, []).append(member)
    if not groups:
        return None
    scored = []
    for k, members in groups.items():
        support = sum(weights[m] * last.positions[m].confidence for m in members)
        scored.append((-support, -len(members), k))
    scored.sort()
    k = scored[0][2]
    members = groups[k]
    reasoned = sorted((m for m in members if last.positions[m].reason),
                      key=lambda m: (-last.positions[m].confidence, m))  # fmt: skip
    reason = last.positions[reasoned[0]].reason if reasoned else None
    return k, sorted(members), -scored[0][0], reason


def ref_influence(rounds: list[RefRound]) -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for r in rounds:
        for member in r.order:
            for persuader in r.positions[member].persuaded_by:
                named.setdefault(persuader, [])
                if member not in named[persuader]:
                    named[persuader].append(member)
    return named


def ref_final(rounds: list[RefRound]) -> dict[str, tuple[str, bool]]:
    """member -> (last stance key, changed since the first)."""
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for r in rounds:
        for member in r.order:
            first.setdefault(member, key(r.positions[member].stance))
            last[member] = key(r.positions[member].stance)
    return {m: (last[m], last[m] != first[m]) for m in last}
