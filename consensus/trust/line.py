"""The keys of one hotline end: a greeting key, then a session key bound to both ends.

Each end (a :class:`LineKeys`, one per hotline object) has a random key id. Its ``hello``
frames (the line's greeting, sent first on every connection) are sealed under a key derived
from the *base* key and its id; the other end derives the same key from the id (and the
base key, which a stranger does not hold). From both ids both ends derive the session: one
key per direction. A line sends nothing else before it has agreed the session, so every
ask, reply and message travels under it, which a recorded session cannot replay into (a
restarted end has a new id, hence new keys).

A hello that checks out is authentic but may be old: recorded from an earlier run of the
peer and replayed. So a hello is not what agrees the session: the line's protocol calls
:meth:`LineKeys.agree` only for a hello that *echoes* the nonce this end drew for the
connection (each hello carries the nonce of the hello it answers, under the seal), which
no recording made before that connection can (``docs/security.md`` 3.5).

The base key is the secret's for :func:`consensus.hotline` with ``secret=``; for a line
between two members of a room it is their pairwise key (X25519 of their session keys, see
:meth:`consensus.trust.room.MemberKeys.pair_key`), which the other members do not know.
"""

from __future__ import annotations

import hashlib
import secrets

from consensus.trust.guard import Guard, Key
from consensus.trust.seal import MacSender, Scheme
from consensus.trust.secret import prf

__all__ = ["LineKeys"]

HELLO = "hello"  # consensus.hotline.frames.HELLO (not imported: trust sits below the hotline)
GREETING = frozenset({HELLO, "ping", "pong"})  # what may go under the greeting key: no payload


class LineKeys:
    """One end's keys. ``listener``: which end this is (the two derive the same session).
    ``peer``: the name the other end's frames must carry (None: any)."""

    def __init__(
        self, base: bytes, *, listener: bool, peer: str | None = None, what: str = "hotline"
    ) -> None:
        self._base = base
        self._listener = listener
        self._peer_name = peer
        self.kid = secrets.token_bytes(8)
        self.guard = Guard(learn=self._learn, what=what)
        greeting = MacSender(self.kid, prf(base, b"line hello", self.kid))
        self.guard.by_kind = dict.fromkeys(GREETING, greeting)  # heartbeats may start before the hello
        self._peer_session: bytes | None = None
        self.peer_kid: bytes | None = None  # the peer's key id the session is agreed with

    def _learn(self, kid: bytes) -> Key | None:
        if kid == self.kid:
            return None  # our own frame, reflected: never the peer's
        key = prf(self._base, b"line hello", kid)
        return Key(kid, Scheme.MAC, key, owner=self._peer_name, kinds=frozenset({HELLO}))

    def agree(self, peer_kid: bytes) -> bool:
        """Agree the session with the peer whose key id is ``peer_kid`` (its hello checked out
        and echoed this end's nonce for the connection: the caller checked that) and seal with it from now on. False
        when the session is already the one with that peer (nothing changes)."""
        if peer_kid == self.peer_kid:
            return False
        self.peer_kid = peer_kid
        listener, dialer = (self.kid, peer_kid) if self._listener else (peer_kid, self.kid)
        session = prf(self._base, b"line session", listener + dialer)
        mine, theirs = (b"listener", b"dialer") if self._listener else (b"dialer", b"listener")
        if self._peer_session is not None:
            self.guard.drop(self._peer_session)  # the peer restarted: its old session is over
        self._peer_session = _kid(session, theirs)
        self.guard.sender = MacSender(_kid(session, mine), prf(session, mine))
        self.guard.by_kind = {HELLO: self.guard.by_kind[HELLO]}  # heartbeats too go under the session now
        self.guard.add(Key(self._peer_session, Scheme.MAC, prf(session, theirs), owner=self._peer_name))
        return True


def _kid(session: bytes, side: bytes) -> bytes:
    return hashlib.blake2b(side, key=session, digest_size=8).digest()
