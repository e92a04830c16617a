"""The :class:`Decision` value: what a vote decided, and its wire form.

A decision travels from the host to every member (kind ``"decision"``), so
:meth:`Decision.from_wire` validates everything a peer could get wrong and raises
:class:`InvalidDecision` (never anything else) for a bad shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from consensus.decide.ballot import Ballot, check_options, describe, select
from consensus.errors import InvalidBallot, InvalidDecision
from consensus.failure import Failure

__all__ = ["Decision"]

_WIRE_KEYS: Final = frozenset({
    "outcome", "options", "tally", "ballots", "missing", "abstained", "rejected", "rejected_count",
    "quorum_met", "tie", "tied", "rule", "electorate_weight", "participating_weight",
})  # fmt: skip


_OPTIONAL_KEYS: Final = frozenset({"errors", "left", "elapsed", "vote"})
"""Keys a sender may leave out (a bare tally has no errors, departures or timing)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of a tally. ``outcome`` is the winning option, or ``None``.

    ``tally`` maps every option (in ``options`` order) to its tallied weight;
    ``ballots`` holds the accepted ballots (abstentions included) in the order they
    were accepted; ``rejected`` maps a voter to one reason per rejected ballot and
    ``rejected_count`` is the number of rejected ballots.
    """

    outcome: Any | None
    tally: Mapping[Any, float]
    ballots: Mapping[str, Ballot]
    missing: frozenset[str]
    abstained: frozenset[str]
    rejected: Mapping[str, tuple[str, ...]]
    rejected_count: int
    quorum_met: bool
    tie: bool
    tied: tuple[Any, ...]
    rule: str
    electorate_weight: float
    participating_weight: float
    options: tuple[Any, ...]
    errors: Mapping[str, Failure] = field(default_factory=lambda: MappingProxyType({}))
    left: frozenset[str] = frozenset()
    elapsed: float = 0.0
    vote: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """A CBOR-able map (text keys; options and choices passed through as they are)."""
        return {
            "outcome": self.outcome,
            "options": list(self.options),
            "tally": [float(self.tally[option]) for option in self.options],
            "ballots": {voter: ballot.to_wire() for voter, ballot in self.ballots.items()},
            "missing": sorted(self.missing),
            "abstained": sorted(self.abstained),
            "rejected": {voter: list(reasons) for voter, reasons in self.rejected.items()},
            "rejected_count": self.rejected_count,
            "quorum_met": self.quorum_met,
            "tie": self.tie,
            "tied": list(self.tied),
            "rule": self.rule,
            "electorate_weight": self.electorate_weight,
            "participating_weight": self.participating_weight,
            "errors": {voter: error.to_wire() for voter, error in self.errors.items()},
            "left": sorted(self.left),
            "elapsed": self.elapsed,
            "vote": self.vote,
        }

    @classmethod
    def from_wire(cls, obj: object) -> Decision:
        """Validate an untrusted, CBOR-decoded decision; raises :class:`InvalidDecision`."""
        if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
            raise InvalidDecision(f"a decision must be a map with text keys, got {describe(obj)}")
        if not _WIRE_KEYS <= obj.keys() <= _WIRE_KEYS | _OPTIONAL_KEYS:
            missing = sorted(_WIRE_KEYS - obj.keys())
            extra = sorted(obj.keys() - _WIRE_KEYS - _OPTIONAL_KEYS)[:5]
            raise InvalidDecision(f"decision has missing keys {missing} and unknown keys {extra}")
        try:
            options, index = check_options(_wire_list(obj, "options"))
        except (TypeError, ValueError) as exc:
            raise InvalidDecision(f"decision 'options' rejected: {exc}") from exc

        def option(value: object, what: str) -> Any:
            found = select(options, index, value)
            if found is None:
                raise InvalidDecision(f"decision {what} {describe(value)} is not one of the options")
            return options[found]

        weights = _wire_list(obj, "tally")
        if len(weights) != len(options):
            raise InvalidDecision(f"decision 'tally' has {len(weights)} weights for {len(options)} options")
        ballots, rejected, count = obj["ballots"], obj["rejected"], obj["rejected_count"]
        if not isinstance(ballots, dict) or not all(isinstance(voter, str) for voter in ballots):
            raise InvalidDecision("decision 'ballots' must be a map from voter names to ballots")
        try:
            accepted = {voter: Ballot.from_wire(ballot) for voter, ballot in ballots.items()}
        except InvalidBallot as exc:
            raise InvalidDecision(f"decision 'ballots' holds a bad ballot: {exc}") from exc
        if not isinstance(rejected, dict) or not all(
            isinstance(voter, str) and isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)
            for voter, reasons in rejected.items()
        ):
            raise InvalidDecision("decision 'rejected' must map voter names to arrays of reasons")
        if type(count) is not int or not 0 <= count < 2**63:
            raise InvalidDecision(f"decision 'rejected_count' must be a count, got {describe(count)}")
        for key, kind in (("quorum_met", bool), ("tie", bool), ("rule", str)):
            if type(obj[key]) is not kind:
                raise InvalidDecision(f"decision {key!r} must be a {kind.__name__}, got {describe(obj[key])}")
        return cls(
            outcome=None if obj["outcome"] is None else option(obj["outcome"], "'outcome'"),
            tally=MappingProxyType({o: _wire_weight(w, "'tally' entry") for o, w in zip(options, weights)}),
            ballots=MappingProxyType(accepted),
            missing=_wire_names(obj, "missing"),
            abstained=_wire_names(obj, "abstained"),
            rejected=MappingProxyType({voter: tuple(reasons) for voter, reasons in rejected.items()}),
            rejected_count=count,
            quorum_met=obj["quorum_met"],
            tie=obj["tie"],
            tied=tuple(option(value, "'tied' entry") for value in _wire_list(obj, "tied")),
            rule=obj["rule"],
            electorate_weight=_wire_weight(obj["electorate_weight"], "'electorate_weight'"),
            participating_weight=_wire_weight(obj["participating_weight"], "'participating_weight'"),
            options=options,
            errors=MappingProxyType(_wire_errors(obj.get("errors", {}))),
            left=_wire_names(obj, "left") if "left" in obj else frozenset(),
            elapsed=_wire_weight(obj.get("elapsed", 0.0), "'elapsed'"),
            vote=_wire_vote(obj.get("vote")),
        )


def _wire_list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj[key]
    if not isinstance(value, list):
        raise InvalidDecision(f"decision {key!r} must be an array, got {describe(value)}")
    return value


def _wire_names(obj: dict[str, Any], key: str) -> frozenset[str]:
    names = _wire_list(obj, key)
    if not all(isinstance(name, str) for name in names):
        raise InvalidDecision(f"decision {key!r} must be an array of voter names")
    return frozenset(names)


def _wire_weight(value: object, what: str) -> float:
    if type(value) not in (int, float):
        raise InvalidDecision(f"decision {what} must be a number, got {describe(value)}")
    assert isinstance(value, (int, float))
    try:
        weight = float(value)
    except OverflowError:  # an integer beyond float range (a bignum)
        weight = math.inf
    if not (math.isfinite(weight) and weight >= 0):
        raise InvalidDecision(f"decision {what} must be a finite number >= 0, got {describe(value)}")
    return weight


def _wire_errors(value: object) -> dict[str, Failure]:
    if not isinstance(value, dict):
        raise InvalidDecision(f"decision 'errors' must be a map, got {describe(value)}")
    errors = {}
    for voter, error in value.items():
        if not (
            isinstance(voter, str)
            and isinstance(error, dict)
            and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)
        ):
            raise InvalidDecision("decision 'errors' must map voter names to {type, message} maps")
        errors[voter] = Failure(error["type"], error["message"])
    return errors


def _wire_vote(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value < 2**64:
        raise InvalidDecision(f"decision 'vote' must be an unsigned 64-bit id, got {describe(value)}")
    return value
