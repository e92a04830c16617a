"""One voter's answer to a vote: the :class:`Ballot` value and its wire form (pure code).

A ballot names a ``choice`` (``None`` means *abstain*), how sure the voter is
(``confidence`` in [0, 1]), an optional free-text ``reason`` and, when known, the id
of the ``vote`` it answers. Ballots built in this process are checked by the
constructor (``TypeError``/``ValueError``: programmer errors); ballots arriving from
peers go through :meth:`Ballot.from_wire`, which raises :class:`InvalidBallot`.

Wire form (a CBOR map with text keys; unknown keys are refused)::

    choice      any      required  the chosen option, or null to abstain
    confidence  number   optional  finite, 0 <= confidence <= 1 (default 1)
    reason      text     optional  at most MAX_REASON_LENGTH characters (null = none)
    vote        uint     optional  id of the vote answered, < 2**64 (null = unknown)
    sig         array    optional  [key, signature]: the voter's Ed25519 public key (32 bytes)
                                   and its signature (64 bytes) of this ballot in this vote
                                   (:mod:`consensus.decide.signing`); checked by the host
                                   and by :meth:`Decision.verify`

Also here: which option a choice selects (:func:`select`, used by the tally). Options
are text, bytes, numbers or booleans, never ``None`` or NaN, distinct as dict keys;
a choice selects the option it equals (``1.0`` selects ``1``), except that booleans
only select booleans (CBOR keeps ``true`` and ``1`` apart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from consensus.decide.checks import check_confidence, check_text, check_wire_map, describe, wire_confidence
from consensus.errors import InvalidBallot

__all__ = ["MAX_REASON_LENGTH", "Ballot", "Signature"]

MAX_REASON_LENGTH: Final = 2000
"""Longest ``reason`` a ballot may carry, in characters."""

_MAX_VOTE_ID: Final = 2**64
_WIRE_KEYS: Final = frozenset({"choice", "confidence", "reason", "vote", "sig"})
_OPTION_TYPES: Final = (str, bytes, int, float)


@dataclass(frozen=True, slots=True)
class Signature:
    """A voter's Ed25519 signature of its ballot: the public ``key`` (32 bytes) and the
    signature ``value`` (64 bytes). Whether it checks out is :mod:`consensus.decide.signing`'s."""

    key: bytes
    value: bytes

    def __post_init__(self) -> None:
        if not (type(self.key) is bytes and len(self.key) == 32 and type(self.value) is bytes
                and len(self.value) == 64):  # fmt: skip
            raise ValueError("a ballot signature is a 32-byte public key and a 64-byte signature")


@dataclass(frozen=True, slots=True)
class Ballot:
    """One voter's answer. ``choice=None`` abstains; ``confidence`` is kept as a float."""

    choice: Any | None
    confidence: float = 1.0
    reason: str | None = None
    vote: int | None = None
    signature: Signature | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "confidence", check_confidence(self.confidence))
        check_text(self.reason, "reason", MAX_REASON_LENGTH)
        if self.vote is not None:
            if type(self.vote) is not int:
                raise TypeError(f"vote must be an integer id or None, got {describe(self.vote)}")
            if not 0 <= self.vote < _MAX_VOTE_ID:
                raise ValueError(f"vote id {describe(self.vote)} is not in 0..2**64-1")

    @property
    def abstains(self) -> bool:
        """True when the ballot makes no choice (``choice is None``)."""
        return self.choice is None

    def to_wire(self) -> dict[str, Any]:
        """The CBOR-able map for this ballot (``choice`` is passed through as it is)."""
        wire: dict[str, Any] = {"choice": self.choice, "confidence": self.confidence}
        if self.reason is not None:
            wire["reason"] = self.reason
        if self.vote is not None:
            wire["vote"] = self.vote
        if self.signature is not None:
            wire["sig"] = [self.signature.key, self.signature.value]
        return wire

    @classmethod
    def from_wire(cls, obj: object) -> Ballot:
        """Validate an untrusted, CBOR-decoded ballot; raises :class:`InvalidBallot`."""
        obj = check_wire_map(obj, "ballot", _WIRE_KEYS, InvalidBallot)
        if "choice" not in obj:
            raise InvalidBallot(f"ballot has no 'choice' (keys: {sorted(obj)}); use null to abstain")
        confidence = wire_confidence(obj, "ballot", InvalidBallot)
        reason = obj.get("reason")
        vote = obj.get("vote")
        if reason is not None and not isinstance(reason, str):
            raise InvalidBallot(f"ballot 'reason' must be text or null, got {describe(reason)}")
        if vote is not None and type(vote) is not int:
            raise InvalidBallot(f"ballot 'vote' must be an unsigned integer id or null, got {describe(vote)}")
        sig = obj.get("sig")
        try:
            signature = None
            if sig is not None:
                if not (isinstance(sig, list) and len(sig) == 2):
                    raise ValueError(f"'sig' must be [key, signature], got {describe(sig)}")
                signature = Signature(sig[0], sig[1])
            return cls(choice=obj["choice"], confidence=confidence, reason=reason, vote=vote, signature=signature)
        except (TypeError, ValueError) as exc:
            raise InvalidBallot(f"invalid ballot: {exc}") from exc

    @classmethod
    def coerce(cls, value: object) -> Ballot:
        """A ballot from whatever a handler returned.

        A :class:`Ballot` passes through, a ``dict`` is read with :meth:`from_wire`
        (raising :class:`InvalidBallot`), anything else is the choice itself.
        """
        if isinstance(value, Ballot):
            return value
        if isinstance(value, dict):
            return cls.from_wire(value)
        return cls(choice=value)


# -- which option a choice selects (used by the tally) ---------------------------------------


def check_options(options: Sequence[Any]) -> tuple[tuple[Any, ...], dict[Any, int]]:
    """The options as a tuple, and each option's index (keys compare like dict keys)."""
    if isinstance(options, (str, bytes, bytearray)) or not isinstance(options, Sequence):
        raise TypeError(f"options must be a list or tuple of options, got {describe(options)}")
    listed = tuple(options)
    if not listed:
        raise ValueError("options is empty: a vote needs at least one option")
    index: dict[Any, int] = {}
    for position, option in enumerate(listed):
        if option is None:
            raise ValueError("None cannot be an option: a None choice means abstain")
        if not isinstance(option, _OPTION_TYPES):
            raise ValueError(  # noqa: TRY004 - the contract: a bad option list is a ValueError
                f"option {describe(option)} at position {position} is not text, bytes, a number "
                "or a boolean (options travel as CBOR and must come back equal and hashable)"
            )
        if isinstance(option, float) and math.isnan(option):
            raise ValueError(f"option nan at position {position} never equals any choice")
        if option in index:
            first = listed[index[option]]
            raise ValueError(f"options list {describe(first)} and {describe(option)}, which are equal")
        index[option] = position
    return listed, index


def select(options: tuple[Any, ...], index: Mapping[Any, int], choice: object) -> int | None:
    """Index of the option ``choice`` selects, or None (booleans only select booleans)."""
    try:
        position = index.get(choice)
    except TypeError:  # unhashable choice (a list or map from a peer)
        return None
    if position is None or (type(choice) is bool) != (type(options[position]) is bool):
        return None
    return position
