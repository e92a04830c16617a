"""One finished deliberation round (:class:`Round`) and how its stances are tallied.

Stances are compared by their *key* (by default :func:`normalise_stance`: case and
blanks do not matter). For a closed question (``options=``, text) a stance stands for
the option with the same key. For an open question the options of a round are its
distinct stances, each shown in the spelling most of its holders used (ties: the
spelling that arrived first), listed in key order, which is the order
``TieBreak.FIRST_LISTED`` follows. A round is tallied like a vote: each position is a
ballot for its stance with the position's confidence and reason, the electorate is
the members asked in that round with their weights.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from consensus.decide.ballot import Ballot
from consensus.decide.checks import describe
from consensus.decide.decision import Decision
from consensus.decide.position import MAX_STANCE_LENGTH, Position
from consensus.decide.rules import Rules
from consensus.decide.tally import tally
from consensus.failure import Failure

__all__ = ["Key", "Round", "check_key", "check_stance_options", "display_stances", "tally_stances"]

Key = Callable[[str], str]
"""Normalises a stance for comparison (``key=`` of a deliberation)."""

MAX_OPTIONS: Final = 64


@dataclass(frozen=True, slots=True)
class Round:
    """What one deliberation round produced.

    ``expected``: the members asked. ``positions``: the positions received, in arrival
    order (``persuaded_by`` holds member names, anonymous labels already resolved;
    ``round`` is set). ``stances``: each position's stance key. ``display``: each key
    as shown. ``missing``: members asked who neither gave a position nor failed
    (silent, or left: as in a poll); ``errors``: the failed ones; ``left``: those who
    went away. ``joined``: members asked for the first time. ``rejected``: replies
    refused (late, duplicate, not asked); ``ignored``: ``persuaded_by`` entries naming
    no one shown to that member. ``decision``: the round tallied under the
    deliberation's rule (``None`` for an open question nobody answered).
    """

    number: int
    expected: frozenset[str]
    positions: Mapping[str, Position]
    stances: Mapping[str, str]
    display: Mapping[str, str]
    missing: frozenset[str]
    errors: Mapping[str, Failure]
    left: frozenset[str]
    joined: frozenset[str]
    elapsed: float
    rejected: int
    ignored: int
    decision: Decision | None

    @property
    def outcome_key(self) -> str | None:
        """The key of the round's outcome, or None."""
        if self.decision is None or self.decision.outcome is None:
            return None
        for stance_key, shown in self.display.items():
            if shown == self.decision.outcome:
                return stance_key
        return None


def check_key(key: Key, stance: str) -> str:
    """``key(stance)``, checked: a key must give non-empty text (``TypeError``/``ValueError``)."""
    normal = key(stance)
    if not isinstance(normal, str):
        raise TypeError(f"key= gave {describe(normal)} for stance {describe(stance)}; a key must return text")
    if not normal:
        raise ValueError(f"key= gave empty text for stance {describe(stance)}")
    return normal


def check_stance_options(options: Sequence[str] | None, key: Key) -> dict[str, str] | None:
    """Each option of a closed question by its key (None for an open question)."""
    if options is None:
        return None
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
        raise TypeError(f"options must be a list of text options, got {describe(options)}")
    if not 1 <= len(options) <= MAX_OPTIONS:
        raise ValueError(f"a closed question needs 1..{MAX_OPTIONS} options, got {len(options)}")
    by_key: dict[str, str] = {}
    for option in options:
        if not isinstance(option, str) or not option.strip() or len(option) > MAX_STANCE_LENGTH:
            raise ValueError(
                f"option {describe(option)} is not a stance (text of 1..{MAX_STANCE_LENGTH} characters)"
            )
        normal = check_key(key, option)
        if normal in by_key:
            raise ValueError(f"options {by_key[normal]!r} and {option!r} are the same stance under key=")
        by_key[normal] = option
    return by_key


def display_stances(positions: Mapping[str, Position], stances: Mapping[str, str],
                    options: Mapping[str, str] | None) -> dict[str, str]:  # fmt: skip
    """Each stance key as shown: the option's text, else the most used spelling, in key order."""
    if options is not None:
        return {normal: options[normal] for normal in sorted(set(stances.values()))}
    first: dict[str, str] = {}  # key -> its first spelling: the one shown when it is the only one
    for member, position in positions.items():
        if first.setdefault(stances[member], position.stance) != position.stance:
            break
    else:
        return {normal: first[normal] for normal in sorted(first)}
    spellings: dict[str, Counter[str]] = {}
    for member, position in positions.items():
        spellings.setdefault(stances[member], Counter())[position.stance] += 1
    # Counter.most_common keeps first-seen order among equal counts.
    return {normal: spellings[normal].most_common(1)[0][0] for normal in sorted(spellings)}


def tally_stances(
    positions: Mapping[str, Position],
    stances: Mapping[str, str],
    display: Mapping[str, str],
    *,
    options: Mapping[str, str] | None,
    rule: Rules,
    electorate: Mapping[str, float],
) -> Decision | None:
    """The round's positions counted as ballots under ``rule`` (None: no options at all)."""
    listed = list(options.values()) if options is not None else list(display.values())
    if not listed:
        return None
    ballots = [
        (member, Ballot(display[stances[member]], position.confidence, position.reason))
        for member, position in positions.items()
    ]
    # Whole weights as int: the tally reads 1.0 as the int 1 all the same, through a Fraction
    # per member per round (the same decision, without building them).
    weights = {member: int(weight) if type(weight) is float and weight.is_integer() else weight
               for member, weight in electorate.items()}  # fmt: skip
    return tally(ballots, options=listed, rule=rule, electorate=weights)
