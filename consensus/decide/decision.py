"""The :class:`Decision` value: what a vote decided, and its wire form.

A decision travels from the host to every member (kind ``"decision"``), so
:meth:`Decision.from_wire` validates everything a peer could get wrong and raises
:class:`InvalidDecision` (never anything else) for a bad shape.

A decision keeps its ``electorate`` (each member's weight), so that
:meth:`Decision.recount` can count the same ballots under another rule (or a fallback
of rules, see :mod:`consensus.decide.rules`); ``decided_by`` names the rule that
decided. Both travel as optional keys that a sender leaves out when they say nothing
new (every weight 1, a single rule), so older receivers keep reading those decisions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from consensus.decide.ballot import Ballot, check_options, select
from consensus.decide.checks import describe
from consensus.decide.count import Count
from consensus.decide.rules import Rules, as_rules, chain_name, top_options
from consensus.decide.signing import Verification, verify
from consensus.errors import InvalidBallot, InvalidDecision
from consensus.failure import Failure

__all__ = ["Decision"]

_WIRE_KEYS: Final = frozenset({
    "outcome", "options", "tally", "ballots", "missing", "abstained", "rejected", "rejected_count",
    "quorum_met", "tie", "tied", "rule", "electorate_weight", "participating_weight",
})  # fmt: skip


_OPTIONAL_KEYS: Final = frozenset({"errors", "left", "elapsed", "vote", "electorate", "decided_by"})
"""Keys a sender may leave out (a bare tally has no errors, departures or timing; see
:meth:`Decision.to_wire` for ``electorate`` and ``decided_by``)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The result of a tally. ``outcome`` is the winning option, or ``None``.

    ``tally`` maps every option (in ``options`` order) to its tallied weight;
    ``ballots`` holds the accepted ballots (abstentions included) in the order they
    were accepted; ``rejected`` maps a voter to one reason per rejected ballot and
    ``rejected_count`` is the number of rejected ballots. ``electorate`` maps each
    member to its weight (``None`` when unknown: a decision built by hand, or received
    from an older sender with unequal weights); ``decided_by`` names the rule whose
    outcome this is (``None`` without an outcome), which differs from ``rule`` only
    for a fallback.
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
    electorate: Mapping[str, float] | None = None
    decided_by: str | None = None

    def verify(self, keys: Mapping[str, bytes] | None = None) -> Verification:
        """Check the signatures of the ballots, offline (see :mod:`consensus.decide.signing`):
        a :class:`~consensus.decide.signing.Verification` whose ``ok`` is True when every
        ballot is signed and checks out; with ``keys`` (voter name -> the Ed25519 public key
        trusted for it, 32 bytes), each by its voter's trusted key."""
        return verify(self.vote, self.options, self.ballots, keys)

    @classmethod
    def from_count(cls, count: Count) -> Decision:
        """The decision of ``count`` as it stands (see :func:`~consensus.decide.tally.tally`)."""
        at, outcome = count.decider()
        weights = count.weights(at)
        tied = top_options(weights)
        options = count.options
        return cls(
            outcome=None if outcome is None else options[outcome],
            tally=MappingProxyType({option: float(weight) for option, weight in zip(options, weights)}),
            ballots=MappingProxyType(dict(count.accepted)),
            missing=frozenset(count.members.keys() - count.accepted.keys()),
            abstained=frozenset(voter for voter, ballot in count.accepted.items() if ballot.abstains),
            rejected=MappingProxyType({voter: tuple(reasons) for voter, reasons in count.rejected.items()}),
            rejected_count=sum(len(reasons) for reasons in count.rejected.values()),
            quorum_met=count.quorum_met,
            tie=bool(tied),
            tied=tuple(options[index] for index in tied),
            rule=chain_name(count.rules),
            electorate_weight=float(count.total),
            participating_weight=float(count.present),
            options=options,
            electorate=MappingProxyType({name: float(weight) for name, weight in count.members.items()}),
            decided_by=None if outcome is None else count.rules[at].name,
        )

    def recount(self, rule: Rules) -> Decision:
        """The same accepted ballots counted under ``rule`` (a rule or a fallback list).

        The electorate, its weights and the quorum verdict stay (turnout does not depend
        on the rule), as do rejections, errors, departures and timing: the result equals
        a fresh :func:`~consensus.decide.tally.tally` of the original ballots under
        ``rule``. Raises ``ValueError`` when the decision does not know its electorate,
        or a rule's ``status_quo`` is not an option.
        """
        rules = as_rules(rule)
        if self.electorate is None:
            raise ValueError(
                "this decision does not carry its electorate's weights (built by hand, or sent by an "
                "older peer with unequal weights), so it cannot be recounted"
            )
        count = Count(options=self.options, rule=rules, electorate=self.electorate)
        for voter, ballot in self.ballots.items():
            count.add(voter, ballot)  # all accepted, in a decision from tally()
        at, outcome = count.decider(met=self.quorum_met)
        weights = count.weights(at)
        tied = top_options(weights)
        options = count.options
        return dataclasses.replace(
            self,
            outcome=None if outcome is None else options[outcome],
            tally=MappingProxyType({option: float(weight) for option, weight in zip(options, weights)}),
            tie=bool(tied),
            tied=tuple(options[index] for index in tied),
            rule=chain_name(rules),
            decided_by=None if outcome is None else rules[at].name,
        )

    def to_wire(self) -> dict[str, Any]:
        """A CBOR-able map (text keys; options and choices passed through as they are).

        ``electorate`` (a map from member names to weights) is sent unless a receiver can
        derive it: every weight 1 and the members are those with ballots or missing.
        ``decided_by`` is sent unless it is ``rule`` (with an outcome) or null (without).
        """
        wire = {
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
        if self.electorate is not None and self.electorate != _derived_electorate(
            self.ballots.keys() | self.missing, self.electorate_weight
        ):
            wire["electorate"] = dict(self.electorate)
        if self.decided_by != (None if self.outcome is None else self.rule):
            wire["decided_by"] = self.decided_by
        return wire

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
            electorate=_wire_electorate(obj, accepted.keys() | _wire_names(obj, "missing")),
            decided_by=_wire_decided_by(obj),
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


def _derived_electorate(names: frozenset[str] | set[str], electorate_weight: float) -> Mapping[str, float] | None:
    """The electorate a receiver assumes without an ``electorate`` key (None: unknown)."""
    if float(len(names)) != electorate_weight:
        return None  # unequal weights, sent by a peer that did not say which
    return {name: 1.0 for name in names}


def _wire_electorate(obj: dict[str, Any], names: frozenset[str] | set[str]) -> Mapping[str, float] | None:
    if "electorate" not in obj:
        derived = _derived_electorate(names, _wire_weight(obj["electorate_weight"], "'electorate_weight'"))
        return None if derived is None else MappingProxyType(dict(derived))
    value = obj["electorate"]
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise InvalidDecision(f"decision 'electorate' must map member names to weights, got {describe(value)}")
    if value.keys() != names:
        raise InvalidDecision("decision 'electorate' must list exactly the members with ballots or missing")
    return MappingProxyType({name: _wire_weight(weight, "'electorate' weight") for name, weight in value.items()})


def _wire_decided_by(obj: dict[str, Any]) -> str | None:
    if "decided_by" not in obj:
        return None if obj["outcome"] is None else str(obj["rule"])
    value = obj["decided_by"]
    if value is not None and not isinstance(value, str):
        raise InvalidDecision(f"decision 'decided_by' must be a rule name or null, got {describe(value)}")
    return value
