"""A member's long-lived signing key: its :class:`Identity`.

An identity is an Ed25519 key pair. A member that joins with one signs every ballot it
casts (:mod:`consensus.decide.signing` says what is signed), so a recorded
:class:`~consensus.Decision` can be checked later, by anyone who knows the members' public
keys, with ``decision.verify(keys)``. Keep the private key in a file only its owner can
read (:meth:`Identity.save` writes it so); share :attr:`Identity.public` freely.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from consensus.decide.ballot import Ballot, Signature
from consensus.decide.signing import ballot_message

__all__ = ["Identity"]


class Identity:
    """An Ed25519 signing key. Build one with :meth:`generate` or :meth:`load`."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public: bytes = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        """The public key, 32 bytes: what others put in ``decision.verify({name: key})``."""

    def __repr__(self) -> str:
        return f"Identity(public={self.public.hex()})"

    @classmethod
    def generate(cls) -> Identity:
        """A new random identity."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """The identity saved at ``path`` (a PEM private key, as :meth:`save` writes)."""
        try:
            key = load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot load an identity from {os.fspath(path)!r}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{os.fspath(path)!r} holds a {type(key).__name__}, not an Ed25519 key")  # noqa: TRY004 - a bad file is a ValueError, as above
        return cls(key)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the private key to ``path`` (PEM), readable by its owner only."""
        data = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)

    def sign_ballot(self, ballot: Ballot, *, vote: int, options: tuple[Any, ...], voter: str) -> Ballot:
        """``ballot`` cast by ``voter`` in vote ``vote`` among ``options``, signed."""
        ballot = Ballot(ballot.choice, ballot.confidence, ballot.reason, vote)
        value = self._key.sign(ballot_message(options, voter, ballot))
        return Ballot(ballot.choice, ballot.confidence, ballot.reason, vote, Signature(self.public, value))
