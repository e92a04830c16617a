"""One member's position in a deliberation: the :class:`Position` value and its wire form.

A position is a short ``stance`` (what the member holds, compared between members with
a *key*, see :func:`normalise_stance`), and optionally the full ``answer``, the
``reason`` behind it, how sure the member is (``confidence`` in [0, 1]), the members
(or, in an anonymous deliberation, the labels) whose argument ``persuaded_by`` it, and
the deliberation ``round`` it answers. Positions built in this process are checked by
the constructor (``TypeError``/``ValueError``: programmer errors); positions arriving
from peers go through :meth:`Position.from_wire`, which raises :class:`InvalidPosition`.

Wire form (a CBOR map with text keys; unknown keys are refused)::

    stance        text     required  1..MAX_STANCE_LENGTH characters, not only blanks
    answer        text     optional  at most MAX_ANSWER_LENGTH characters (null = none)
    reason        text     optional  at most MAX_REASON_LENGTH characters (null = none)
    confidence    number   optional  finite, 0 <= confidence <= 1 (default 1)
    persuaded_by  [text]   optional  at most MAX_PERSUADERS distinct names or labels,
                                     each 1..MAX_NAME_LENGTH characters (default [])
    round         uint     optional  the round answered, 1 <= round < 2**32 (null = unknown)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from consensus.decide.ballot import MAX_REASON_LENGTH
from consensus.decide.checks import check_confidence, check_text, check_wire_map, describe, wire_confidence
from consensus.errors import InvalidPosition

__all__ = [
    "MAX_ANSWER_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PERSUADERS",
    "MAX_STANCE_LENGTH",
    "InvalidPosition",
    "Position",
    "normalise_stance",
]

MAX_STANCE_LENGTH: Final = 200
"""Longest ``stance``, in characters: a stance is a short label, the ``answer`` says more."""
MAX_ANSWER_LENGTH: Final = 8000
"""Longest ``answer``, in characters."""
MAX_PERSUADERS: Final = 32
"""Most entries in ``persuaded_by``."""
MAX_NAME_LENGTH: Final = 128
"""Longest entry of ``persuaded_by``, in characters."""
MAX_ROUND: Final = 2**32
_WIRE_KEYS: Final = frozenset({"stance", "answer", "reason", "confidence", "persuaded_by", "round"})


def normalise_stance(stance: str) -> str:
    """The default stance key: case- and whitespace-insensitive (``" Use  NATS"`` -> ``"use nats"``)."""
    return " ".join(stance.split()).casefold()


@dataclass(frozen=True, slots=True)
class Position:
    """What one member holds after a round. ``persuaded_by`` is kept as a tuple."""

    stance: str
    answer: str | None = None
    reason: str | None = None
    confidence: float = 1.0
    persuaded_by: tuple[str, ...] = ()
    round: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stance, str):
            raise TypeError(f"stance must be text, got {describe(self.stance)}")
        if not self.stance.strip():
            raise ValueError("stance is empty: say in a few words what you hold")
        if len(self.stance) > MAX_STANCE_LENGTH:
            raise ValueError(
                f"stance of {len(self.stance)} characters is longer than {MAX_STANCE_LENGTH}; "
                "put the details in answer="
            )
        check_text(self.answer, "answer", MAX_ANSWER_LENGTH)
        check_text(self.reason, "reason", MAX_REASON_LENGTH)
        object.__setattr__(self, "confidence", check_confidence(self.confidence))
        object.__setattr__(self, "persuaded_by", _check_persuaders(self.persuaded_by))
        if self.round is not None:
            if type(self.round) is not int:
                raise TypeError(f"round must be a round number or None, got {describe(self.round)}")
            if not 1 <= self.round < MAX_ROUND:
                raise ValueError(f"round {describe(self.round)} is not in 1..2**32-1")

    def credited(self, persuaded_by: tuple[str, ...], round: int | None) -> Position:
        """This position with ``persuaded_by`` and ``round`` replaced, *without* the
        constructor's checks: for a round's own bookkeeping (``persuaded_by`` resolved to
        member names, ``round`` set; nothing else changes), where every value is already
        checked. Cheaper than ``dataclasses.replace``, which checks every field again."""
        made = object.__new__(Position)
        for field, value in (("stance", self.stance), ("answer", self.answer), ("reason", self.reason),
                             ("confidence", self.confidence), ("persuaded_by", persuaded_by), ("round", round)):  # fmt: skip
            object.__setattr__(made, field, value)
        return made

    def to_wire(self) -> dict[str, Any]:
        """The CBOR-able map for this position (keys left at their default are left out)."""
        wire: dict[str, Any] = {"stance": self.stance, "confidence": self.confidence}
        if self.answer is not None:
            wire["answer"] = self.answer
        if self.reason is not None:
            wire["reason"] = self.reason
        if self.persuaded_by:
            wire["persuaded_by"] = list(self.persuaded_by)
        if self.round is not None:
            wire["round"] = self.round
        return wire

    @classmethod
    def from_wire(cls, obj: object) -> Position:
        """Validate an untrusted, CBOR-decoded position; raises :class:`InvalidPosition`."""
        obj = check_wire_map(obj, "position", _WIRE_KEYS, InvalidPosition)
        if "stance" not in obj:
            raise InvalidPosition(f"position has no 'stance' (keys: {sorted(obj)})")
        confidence = wire_confidence(obj, "position", InvalidPosition)
        persuaded_by = obj.get("persuaded_by", [])
        if not isinstance(persuaded_by, list):
            raise InvalidPosition(f"position 'persuaded_by' must be an array of names, got {describe(persuaded_by)}")
        round_ = obj.get("round")
        if round_ is not None and type(round_) is not int:
            raise InvalidPosition(f"position 'round' must be a round number or null, got {describe(round_)}")
        try:
            return cls(
                stance=obj["stance"],
                answer=obj.get("answer"),
                reason=obj.get("reason"),
                confidence=confidence,
                persuaded_by=tuple(persuaded_by),
                round=round_,
            )
        except (TypeError, ValueError) as exc:
            raise InvalidPosition(f"invalid position: {exc}") from exc

    @classmethod
    def coerce(cls, value: object) -> Position:
        """A position from whatever a handler returned.

        A :class:`Position` passes through, a ``dict`` is read with :meth:`from_wire`
        (raising :class:`InvalidPosition`), text is the stance itself; anything else is a
        ``TypeError``.
        """
        if isinstance(value, Position):
            return value
        if isinstance(value, dict):
            return cls.from_wire(value)
        if isinstance(value, str):
            return cls(stance=value)
        raise TypeError(f"a deliberation handler must return a Position, a map or text, got {describe(value)}")


def _check_persuaders(names: object) -> tuple[str, ...]:
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple, frozenset, set)):
        raise TypeError(f"persuaded_by must be a list of names, got {describe(names)}")
    listed = tuple(sorted(names)) if isinstance(names, (set, frozenset)) else tuple(names)
    if len(listed) > MAX_PERSUADERS:
        raise ValueError(f"persuaded_by names {len(listed)} members; at most {MAX_PERSUADERS}")
    for name in listed:
        if not isinstance(name, str):
            raise TypeError(f"persuaded_by entry {describe(name)} is not a name (text)")
        if not 1 <= len(name) <= MAX_NAME_LENGTH:
            raise ValueError(f"persuaded_by entry {describe(name)} is not 1..{MAX_NAME_LENGTH} characters")
    if len(set(listed)) != len(listed):
        raise ValueError(f"persuaded_by names someone twice: {list(listed)!r}")
    return listed
