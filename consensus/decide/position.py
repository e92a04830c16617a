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
        return _made(self.stance, self.answer, self.reason, self.confidence, persuaded_by, round)

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
        if cls is Position and type(obj) is dict and obj.keys() <= _WIRE_KEYS:
            made = _read(obj)  # the common reply: every field of its exact type and in range
            if made is not None:
                return made
        return cls._checked(obj)

    @classmethod
    def _checked(cls, obj: object) -> Position:
        """:meth:`from_wire` field by field: the reason a map is refused (or a valid map with
        fields of other types, text subclasses say, read as the constructor reads them)."""
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


_ABSENT: Final = object()
_new = object.__new__
_set = object.__setattr__


def _made(stance: str, answer: str | None, reason: str | None, confidence: float, persuaded_by: tuple[str, ...],
          round: int | None) -> Position:  # fmt: skip
    """A position of values already checked, built without the constructor's checks."""
    made = _new(Position)
    _set(made, "stance", stance)
    _set(made, "answer", answer)
    _set(made, "reason", reason)
    _set(made, "confidence", confidence)
    _set(made, "persuaded_by", persuaded_by)
    _set(made, "round", round)
    return made


def _read(obj: dict[str, Any]) -> Position | None:
    """The position of a wire map with known keys whose every field is of its exact wire type
    and within its limits, checked in one pass (no second construction, no helper calls);
    None for any other map, which :meth:`Position._checked` then refuses with its reason (or
    reads, if its fields are of other types the constructor takes). It accepts exactly the
    maps those checks accept with such fields, and builds the same position: a reply costs
    about a third of the checks done step by step (``docs/deliberation.md`` section 9)."""
    get = obj.get
    stance, answer, reason = get("stance"), get("answer"), get("reason")
    if type(stance) is not str or len(stance) > MAX_STANCE_LENGTH or not stance.strip():
        return None
    if answer is not None and (type(answer) is not str or len(answer) > MAX_ANSWER_LENGTH):
        return None
    if reason is not None and (type(reason) is not str or len(reason) > MAX_REASON_LENGTH):
        return None
    confidence = get("confidence", 1.0)
    if type(confidence) is int and 0 <= confidence <= 1:
        confidence = float(confidence)
    elif type(confidence) is not float or not 0.0 <= confidence <= 1.0:  # NaN fails the range too
        return None
    round_ = get("round")
    if round_ is not None and (type(round_) is not int or not 1 <= round_ < MAX_ROUND):
        return None
    persuaded_by = get("persuaded_by", _ABSENT)
    if persuaded_by is _ABSENT:
        return _made(stance, answer, reason, confidence, (), round_)
    if type(persuaded_by) is not list or len(persuaded_by) > MAX_PERSUADERS:
        return None
    for name in persuaded_by:
        if type(name) is not str or not 1 <= len(name) <= MAX_NAME_LENGTH:
            return None
    if len(set(persuaded_by)) != len(persuaded_by):
        return None
    return _made(stance, answer, reason, confidence, tuple(persuaded_by), round_)


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
