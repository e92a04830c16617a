"""The position checks as they were before the one-pass reading (session 9), kept as the
reference the property tests compare :meth:`Position.from_wire` and
:meth:`DeliberationRound.answer` with: field by field, every value through the
constructor, and each accepted position rebuilt with its round and its ``persuaded_by``
resolved to member names; the round tallied at its end (session 10 counts as replies come)."""

from __future__ import annotations

import dataclasses
from typing import Any

from consensus.decide.checks import check_wire_map, describe, wire_confidence
from consensus.decide.deliberation_round import DeliberationRound
from consensus.decide.poll import Verdict
from consensus.decide.position import Position
from consensus.decide.stances import check_key
from consensus.errors import InvalidPosition
from consensus.failure import Failure

_WIRE_KEYS = frozenset({"stance", "answer", "reason", "confidence", "persuaded_by", "round"})


def from_wire(obj: object) -> Position:
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
        return Position(
            stance=obj["stance"],
            answer=obj.get("answer"),
            reason=obj.get("reason"),
            confidence=confidence,
            persuaded_by=tuple(persuaded_by),
            round=round_,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidPosition(f"invalid position: {exc}") from exc


def coerce(value: object) -> Position:
    if isinstance(value, Position):
        return value
    if isinstance(value, dict):
        return from_wire(value)
    if isinstance(value, str):
        return Position(stance=value)
    raise TypeError(f"a deliberation handler must return a Position, a map or text, got {describe(value)}")


class ReferenceRound(DeliberationRound):
    """A :class:`DeliberationRound` whose ``answer`` is the one before session 9, and whose
    decision is tallied from scratch at the round's end, as before session 10 (no running count)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count = None

    def answer(self, name: str, raw: Any, *, at: float | None = None) -> Verdict:
        try:
            position = coerce(raw)
        except (InvalidPosition, TypeError, ValueError) as exc:
            return self._poll.fail(name, Failure("InvalidPosition", str(exc)), at=at)
        if position.round is not None and position.round != self.number:
            self._poll.rejected += 1
            return Verdict.CLOSED
        try:
            stance = check_key(self._key, position.stance)
        except Exception as exc:  # noqa: BLE001
            return self._poll.fail(name, Failure("InvalidPosition", f"key= failed on the stance: {exc}"), at=at)
        if self._options is not None and stance not in self._options:
            reason = f"stance {describe(position.stance)} is none of the options {list(self._options.values())!r}"
            return self._poll.fail(name, Failure("InvalidPosition", reason), at=at)
        verdict = self._poll.answer(name, position, at=at)
        if verdict is Verdict.ACCEPTED:
            credited: list[str] = []
            for label in position.persuaded_by:
                named = self._labels.get(label)
                if named is None or named == name or named in credited:
                    self.ignored += 1
                else:
                    credited.append(named)
            self._positions[name] = dataclasses.replace(position, persuaded_by=tuple(credited), round=self.number)
            self._stances[name] = stance
        return verdict
