"""When a deliberation may stop early: the ``until=`` predicates (pure functions).

A predicate takes the rounds finished so far (oldest first, never empty) and returns
True to stop. A deliberation given several predicates stops when any of them holds.
Users may pass their own callables of the same shape.

``unanimous``
    Every member asked in the last round gave a position there (members who left
    excepted), there is at least one, and all hold the same stance (by key). A member
    that failed or stayed silent keeps the deliberation going.
``no_change``
    From the second round on: every member with a position in the last round held the
    same stance in its previous position (a member's first position changes nothing).
``decided``
    From the second round on: the last two rounds, tallied under the rule, have the
    same outcome (by key), and it is not None: the outcome is decided and stable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from consensus.decide.stances import Round

__all__ = ["Until", "decided", "no_change", "predicate_name", "unanimous"]

Until = Callable[[Sequence[Round]], bool]
"""A stop predicate: the rounds so far -> stop now?"""


def unanimous(rounds: Sequence[Round]) -> bool:
    """True when every position of the last round holds one stance."""
    if not rounds:
        return False
    last = rounds[-1]
    return last.positions.keys() == last.expected - last.left and len(set(last.stances.values())) == 1


def no_change(rounds: Sequence[Round]) -> bool:
    """True when no member's stance changed in the last round (needs two rounds)."""
    if len(rounds) < 2:
        return False
    for member, stance in rounds[-1].stances.items():
        for earlier in reversed(rounds[:-1]):
            if member in earlier.stances:
                if earlier.stances[member] != stance:
                    return False
                break
    return True


def decided(rounds: Sequence[Round]) -> bool:
    """True when the last two rounds have the same outcome, which is not None."""
    if len(rounds) < 2:
        return False
    outcome = rounds[-1].outcome_key
    return outcome is not None and rounds[-2].outcome_key == outcome


def predicate_name(predicate: Until) -> str:
    """How a predicate is named in ``Deliberation.stopped_by``."""
    name = getattr(predicate, "__name__", None)
    return name if isinstance(name, str) else type(predicate).__name__
