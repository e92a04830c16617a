"""Signed ballots: what a voter signs, and checking a decision's signatures offline.

A member that joins with an identity (``join(..., identity=consensus.Identity...)``) signs
each ballot it casts. The signed message is the canonical CBOR encoding of::

    ["nngc ballot v1", vote id (the ballot's), [options...], voter name, choice, confidence, reason]

so a signature cannot be moved to another vote, another option list, another voter or
another choice. The ballot carries the public key and the signature (:class:`Signature`);
the host refuses a ballot whose signature does not check out, and the :class:`Decision`
keeps them, so anyone holding a recorded decision can check it later
(:meth:`Decision.verify`), against the public keys they trust for each name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.decide.ballot import Ballot

__all__ = ["Verification", "ballot_message", "signature_problem", "verify"]

TAG: Final = "nngc ballot v1"


def ballot_message(options: tuple[Any, ...], voter: str, ballot: Ballot) -> bytes:
    """The bytes a voter signs for ``ballot`` (in the vote ``ballot.vote``) among ``options``."""
    record = [TAG, ballot.vote, list(options), voter, ballot.choice, ballot.confidence, ballot.reason]
    return cbor2.dumps(record, canonical=True)


def signature_problem(vote: int | None, options: tuple[Any, ...], voter: str, ballot: Ballot) -> str | None:
    """Why ``ballot``'s signature does not check out (None: it does, or there is none)."""
    signature = ballot.signature
    if signature is None:
        return None
    if ballot.vote is None or (vote is not None and ballot.vote != vote):
        return f"{voter!r}'s signed ballot was cast in vote {ballot.vote}, not in this one ({vote})"
    try:
        Ed25519PublicKey.from_public_bytes(signature.key).verify(
            signature.value, ballot_message(options, voter, ballot)
        )
    except (InvalidSignature, ValueError):
        return f"the signature of {voter!r}'s ballot does not match it (altered, or signed for another vote)"
    except (TypeError, cbor2.CBOREncodeError):  # a choice with no canonical form cannot be signed
        return f"{voter!r}'s ballot has no canonical form to check a signature against"
    return None


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify` found. ``ok``: every ballot is signed, every signature checks out,
    and (when keys were given) each by the key trusted for its voter."""

    signed: frozenset[str]
    unsigned: frozenset[str]
    invalid: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ok(self) -> bool:
        return not self.unsigned and not self.invalid

    def __str__(self) -> str:
        if self.ok:
            return f"all {len(self.signed)} ballots are signed and check out"
        parts = [f"{len(self.signed)} signed and valid"]
        if self.unsigned:
            parts.append(f"unsigned: {', '.join(sorted(self.unsigned))}")
        parts += [f"{voter}: {why}" for voter, why in sorted(self.invalid.items())]
        return "; ".join(parts)


def verify(vote: int | None, options: tuple[Any, ...], ballots: Mapping[str, Ballot],
           keys: Mapping[str, bytes] | None = None) -> Verification:  # fmt: skip
    """Check every ballot's signature; with ``keys`` (voter name -> trusted public key, 32
    bytes), also that each voter signed with its trusted key."""
    signed, unsigned, invalid = set(), set(), {}
    for voter, ballot in ballots.items():
        if ballot.signature is None:
            unsigned.add(voter)
            continue
        problem = signature_problem(vote, options, voter, ballot)
        if problem is None and keys is not None and keys.get(voter) != ballot.signature.key:
            problem = f"{voter!r} signed with a key that is not the one trusted for it"
        if problem is None:
            signed.add(voter)
        else:
            invalid[voter] = problem
    return Verification(frozenset(signed), frozenset(unsigned), MappingProxyType(invalid))
