"""A room's credential: the shared secret, and the keys derived from it.

The secret itself never travels and never appears in a repr. What the room derives from
it is a 32-byte *room key* (scrypt, so a captured frame does not make guessing a weak
secret cheap) and, from that, one key per purpose (keyed BLAKE2b as the PRF).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["ENV_SECRET", "Secret", "as_secret", "key_id", "prf", "session_key"]

ENV_SECRET: Final = "NNGC_SECRET"
"""The environment variable :meth:`Secret.from_env` reads by default."""

_SALT: Final = b"nng-consensus room secret v1"
MIN_LENGTH: Final = 1


@functools.lru_cache(maxsize=16)
def _stretch(secret: bytes) -> bytes:
    # ~40 ms and 16 MiB once per secret and process: cheap for a room, dear for a guesser.
    return hashlib.scrypt(secret, salt=_SALT, n=2**14, r=8, p=1, dklen=32)


def prf(key: bytes, label: bytes, data: bytes = b"", size: int = 32) -> bytes:
    """A key for ``label`` (and ``data``) derived from ``key``: keyed BLAKE2b."""
    return hashlib.blake2b(label + b"\0" + data, key=key, digest_size=size).digest()


def key_id(label: bytes, data: bytes) -> bytes:
    """A public 8-byte key id for ``label`` and ``data`` (a public key, or two)."""
    return hashlib.blake2b(label + b"\0" + data, digest_size=8).digest()


def session_key(room: bytes, shared: bytes, info: bytes) -> bytes:
    """The 32-byte key two ends derive from their X25519 ``shared`` secret, salted with the
    room key: HKDF-SHA256 with ``info`` naming the conversation and both public keys."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=room, info=info).derive(shared)


@dataclass(frozen=True, slots=True)
class Secret:
    """The credential of a room (or a hotline, or a dispatcher): bytes or text, never empty.

    Give the same secret to the host and to every member. Build one from a value
    (``Secret(b"...")``, or pass bytes/str where ``secret=`` is accepted), from a file
    (:meth:`from_file`: its content, one trailing newline stripped) or from an
    environment variable (:meth:`from_env`), so it never has to appear on a command line.
    A good secret is long and random: ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
    """

    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise TypeError(f"a secret is bytes, got {type(self.value).__name__}")
        if len(self.value) < MIN_LENGTH:
            raise ValueError("a secret cannot be empty")

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secret:
        """The secret held in the file at ``path`` (one trailing newline stripped)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the secret file {os.fspath(path)!r}: {exc.strerror}") from exc
        data = data[:-1] if data.endswith(b"\n") else data
        if not data:
            raise ValueError(f"the secret file {os.fspath(path)!r} is empty")
        return cls(data)

    @classmethod
    def from_env(cls, name: str = ENV_SECRET) -> Secret:
        """The secret in the environment variable ``name`` (default ``NNGC_SECRET``)."""
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"the environment variable {name} holds no secret")
        return cls(value.encode())

    @property
    def room_key(self) -> bytes:
        """The 32-byte key everything else is derived from (never sent)."""
        return _stretch(self.value)


def as_secret(value: Secret | bytes | str | None) -> Secret | None:
    """What a ``secret=`` argument means: None (no secret), or a :class:`Secret`."""
    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value.encode())
    if isinstance(value, bytes):
        return Secret(value)
    raise TypeError(f"secret must be bytes, str or consensus.Secret, got {type(value).__name__}")
