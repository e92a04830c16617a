"""The keys of a room with a secret: who may join, and who each frame comes from.

How a member gets in (``docs/security.md`` 3 has the full picture):

1. Before it knows the host, a member sends ``hello`` frames on the control bus sealed
   under its *join key*, derived from the room key and its key id: this proves it holds
   the secret without showing it. The hello carries the member's two public keys: an
   X25519 key (``kx``) and an Ed25519 key (``sign``).
2. The host answers with a ``beat`` sealed under its own epoch key (every member can
   check it; nobody without the secret can make one) carrying the host's public keys.
3. Both sides now derive the member's *session key* from X25519 (host key, member key),
   salted with the room key: only this member and the host know it, not the other
   members. Everything the member sends the host from then on (``join``, heartbeats,
   calls, survey replies) is sealed under it, and the host binds the session to the name
   the first ``join`` on it claims: the frames of that session speak for that name only.
4. On the mesh every frame is signed with the sender's Ed25519 key; the host publishes
   every member's public keys in the welcome and the roster.

Every key comes with a replay window (:class:`~consensus.trust.seal.ReplayWindow`).
"""

from __future__ import annotations

import functools
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consensus.trust.guard import Guard, Key
from consensus.trust.seal import MacSender, Scheme, SigSender
from consensus.trust.secret import Secret, key_id, prf, session_key

__all__ = ["HELLO", "PENDING", "HostKeys", "MemberKeys", "PublicKeys"]

HELLO: Final = "hello"  # member -> host (control), under the join key: {"kx", "sign"}
PENDING: Final = 1024
"""Hellos the host remembers before their member's first session frame (oldest dropped,
counted in ``room.statistics().hellos_dropped``)."""
SESSIONS: Final = 4096
"""Sessions the host keeps (oldest dropped first, never a present member's): those not yet
bound to a name, and those of members gone silent, so that a member stopped past its expiry
(SIGSTOP, a long pause) comes back under its session with its next heartbeat. Counted in
``room.statistics().sessions_dropped``."""

_RAW = (Encoding.Raw, PublicFormat.Raw)


def join_kid(kx: bytes) -> bytes:
    return key_id(b"join", kx)


def session_kid(kx: bytes, channel: bytes) -> bytes:
    return key_id(b"session " + channel, kx)


def sign_kid(sign: bytes) -> bytes:
    return key_id(b"sign", sign)


def session_token(kx: bytes) -> int:
    """A member's token in a room with a secret: its session's id, so a token shown to the
    other members is worth nothing without the session key."""
    return int.from_bytes(session_kid(kx, b"control"), "big") >> 1


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """What a peer publishes: its X25519 key (``kx``) and its Ed25519 key (``sign``), raw."""

    kx: bytes
    sign: bytes

    def __post_init__(self) -> None:
        if not (type(self.kx) is bytes and type(self.sign) is bytes and len(self.kx) == len(self.sign) == 32):
            raise ValueError("public keys are two 32-byte strings")

    def to_wire(self) -> list[bytes]:
        return [self.kx, self.sign]

    @classmethod
    def from_wire(cls, value: object) -> PublicKeys:
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError("public keys are a list [kx, sign]")
        return cls(value[0], value[1])


def _session_key(room: bytes, shared: bytes, member_kx: bytes, host_kx: bytes) -> bytes:
    return session_key(room, shared, b"nngc session" + member_kx + host_kx)


class HostKeys:
    """The host's side: its epoch keys, the hellos it heard, each member's session."""

    def __init__(self, secret: Secret) -> None:
        self._room = secret.room_key
        self._kx = X25519PrivateKey.generate()
        self._sign = Ed25519PrivateKey.generate()
        self.public = PublicKeys(
            self._kx.public_key().public_bytes(*_RAW), self._sign.public_key().public_bytes(*_RAW)
        )
        self.control = Guard(self._epoch_sender(), learn=self._learn_control, what="host's control socket")
        self.survey = Guard(self._epoch_sender(), learn=self._learn_session, what="host's survey socket")
        self.mesh = Guard(SigSender(sign_kid(self.public.sign), self._sign), what="host's mesh socket")
        # by control session kid: a hello's keys, and its session key once derived (a frame
        # came under it; the session opens only when one checks out: _opened)
        self._pending: OrderedDict[bytes, tuple[PublicKeys, bytes | None]] = OrderedDict()
        # control kid -> keys, name, session key; oldest first (a bind moves it to the end)
        self._sessions: OrderedDict[bytes, tuple[PublicKeys, str | None, bytes]] = OrderedDict()
        self._names: dict[str, bytes] = {}  # name -> control kid of the session that holds it
        self._present: set[str] = set()  # names in the room now (retired ones keep their session)
        self.hellos_dropped = 0  # hellos forgotten past PENDING before their session opened
        self.sessions_dropped = 0  # sessions dropped past SESSIONS (not leaves nor refused joins)

    def _epoch_sender(self) -> MacSender:
        kid = secrets.token_bytes(8)
        return MacSender(kid, prf(self._room, b"host", kid))

    # ------------------------------------------------------------------ joining
    def _learn_control(self, kid: bytes) -> Key | None:
        pending = self._pending.get(kid)
        if pending is not None:  # a forged frame under it fails its tag and leaves the hello pending
            keys, session = pending
            if session is None:  # (derived once: an X25519 exchange)
                shared = self._kx.exchange(X25519PublicKey.from_public_bytes(keys.kx))
                session = _session_key(self._room, shared, keys.kx, self.public.kx)
                self._pending[kid] = (keys, session)
            return Key(kid, Scheme.MAC, prf(session, b"control"), learned=functools.partial(self._opened, keys, session))
        # Anything else may be a joiner's hello: its key follows from its id and the secret.
        return Key(kid, Scheme.MAC, prf(self._room, b"join", kid), kinds=frozenset({HELLO}))

    def _learn_session(self, kid: bytes) -> Key | None:
        return None  # survey replies come only under sessions the control socket opened

    def hello(self, kid: bytes | None, keys: PublicKeys) -> bool:
        """A hello arrived under ``kid``: remember its keys (False: the keys are not that kid's)."""
        if kid != join_kid(keys.kx):
            return False
        control = session_kid(keys.kx, b"control")
        if control not in self._sessions:
            known = self._pending.get(control)
            self._pending[control] = known if known is not None and known[0] == keys else (keys, None)
            self._pending.move_to_end(control)
            if len(self._pending) > PENDING:
                self._pending.popitem(last=False)
                self.hellos_dropped += 1
        return True

    def _opened(self, keys: PublicKeys, session: bytes, control: Key) -> None:
        """The first frame under a joiner's control session was accepted: the session opens."""
        self._pending.pop(control.kid, None)
        self._sessions[control.kid] = (keys, None, session)
        self._evict()

    def _evict(self) -> None:
        """Past :data:`SESSIONS`, drop the oldest sessions of nobody present."""
        excess = len(self._sessions) - SESSIONS
        for kid, (_, owner, _) in list(self._sessions.items()):
            if excess <= 0:
                return
            if owner not in self._present:
                self._drop(kid)
                self.sessions_dropped += 1
                excess -= 1

    # ------------------------------------------------------------------ names
    def may_speak_for(self, kid: bytes | None, name: str, token: int, *, joining: bool = False) -> bool:
        """Does the session ``kid`` speak for ``name`` (with the token it was given)? A new
        session takes a name with its first ``join`` (``joining``), once welcomed (:meth:`bind`)."""
        if kid is None or kid not in self._sessions:
            return False
        keys, owner, _ = self._sessions[kid]
        return session_token(keys.kx) == token and (owner == name or (owner is None and joining))

    def bind(self, kid: bytes, name: str) -> None:
        """The session ``kid`` joined as ``name``: its frames speak for ``name`` only, on
        every socket (the mesh included)."""
        keys, owner, session = self._sessions[kid]
        assert owner in (None, name), "a session is bound once"
        old = self._names.get(name)
        if old is not None and old != kid:
            self.forget(name)
        self._sessions[kid] = (keys, name, session)
        self._sessions.move_to_end(kid)
        self._names[name] = kid
        self._present.add(name)
        control = self.control.find(kid)
        if control is not None:  # it is: the join that binds came under it
            control.owner = name
            self.control.add(control)
        survey = session_kid(keys.kx, b"survey")
        if self.survey.find(survey) is None:  # once per session: a replay window is not reset
            self.survey.add(Key(survey, Scheme.MAC, prf(session, b"survey"), owner=name))
        sign = sign_kid(keys.sign)
        if self.mesh.find(sign) is None:
            self.mesh.add(Key(sign, Scheme.SIG, Ed25519PublicKey.from_public_bytes(keys.sign), owner=name))

    def forget(self, name: str) -> None:
        """``name`` left the room (a leave, or another session took the name): its keys go."""
        kid = self._names.get(name)
        if kid is not None:
            self._drop(kid)

    def refused(self, kid: bytes | None) -> None:
        """The join under the session ``kid`` was refused: a session bound to no name goes at
        once (a flood of refused joins leaves nothing behind)."""
        if kid is not None and kid in self._sessions and self._sessions[kid][1] is None:
            self._drop(kid)

    def retire(self, name: str) -> None:
        """``name`` is no longer in the room (silent, or its connection closed), but may come
        back under the same session: it keeps its control key, and speaks for its name again
        once re-admitted (:meth:`bind`). The oldest retired sessions go first (:data:`SESSIONS`)."""
        self._present.discard(name)  # out of the roster's keys; its session stays, as it was

    def _drop(self, kid: bytes) -> None:
        keys, owner, _ = self._sessions.pop(kid)
        if owner is not None and self._names.get(owner) == kid:
            del self._names[owner]
            self._present.discard(owner)
        self.control.drop(kid)
        self.survey.drop(session_kid(keys.kx, b"survey"))
        self.mesh.drop(sign_kid(keys.sign))

    def roster_keys(self) -> dict[str, list[bytes]]:
        """The public keys of every member present, for the welcome and the roster."""
        return {name: self._sessions[self._names[name]][0].to_wire() for name in sorted(self._present)}


class MemberKeys:
    """A member's side: its own keys, the host's, and the other members' public keys."""

    def __init__(self, secret: Secret, name: str) -> None:
        self._room = secret.room_key
        self.name = name
        self._kx = X25519PrivateKey.generate()
        self._sign = Ed25519PrivateKey.generate()
        self.public = PublicKeys(
            self._kx.public_key().public_bytes(*_RAW), self._sign.public_key().public_bytes(*_RAW)
        )
        self.token = session_token(self.public.kx)
        join = join_kid(self.public.kx)
        self.control = Guard(learn=self._learn_host, what=f"member {name!r}'s control socket")
        self.control.by_kind[HELLO] = MacSender(join, prf(self._room, b"join", join))
        self.survey = Guard(learn=self._learn_host, what=f"member {name!r}'s survey socket")
        self.mesh = Guard(
            SigSender(sign_kid(self.public.sign), self._sign), what=f"member {name!r}'s mesh socket"
        )
        self.host: PublicKeys | None = None
        self._peers: dict[str, PublicKeys] = {}

    @property
    def ready(self) -> bool:
        """True once the host's keys are known: the member can send its join."""
        return self.host is not None

    def hello_body(self) -> dict[str, bytes]:
        return {"kx": self.public.kx, "sign": self.public.sign}

    def _learn_host(self, kid: bytes) -> Key | None:
        return Key(kid, Scheme.MAC, prf(self._room, b"host", kid))  # any epoch of the host

    def host_keys(self, keys: PublicKeys) -> bool:
        """The host announced ``keys`` (in a beat): True when they are new (a first host, or a
        restarted one), and the session keys changed with them."""
        if keys == self.host:
            return False
        if self.host is not None:
            self.mesh.drop(sign_kid(self.host.sign))
        self.host = keys
        shared = self._kx.exchange(X25519PublicKey.from_public_bytes(keys.kx))
        session = _session_key(self._room, shared, self.public.kx, keys.kx)
        self.control.sender = MacSender(session_kid(self.public.kx, b"control"), prf(session, b"control"))
        self.survey.sender = MacSender(session_kid(self.public.kx, b"survey"), prf(session, b"survey"))
        self.mesh.add(Key(sign_kid(keys.sign), Scheme.SIG, Ed25519PublicKey.from_public_bytes(keys.sign)))
        return True

    def roster(self, keys: dict[str, PublicKeys], *, complete: bool = True) -> None:
        """The members' public keys as the host published them: mesh frames are checked against them.
        ``complete=False`` (a welcome, which may name the joiner only): add, drop nobody."""
        for name, old in list(self._peers.items()):
            if (complete or name in keys) and keys.get(name) != old:
                self.mesh.drop(sign_kid(old.sign))
                del self._peers[name]
        for name, new in keys.items():
            if name == self.name or name in self._peers:
                continue
            self._peers[name] = new
            public = Ed25519PublicKey.from_public_bytes(new.sign)
            self.mesh.add(Key(sign_kid(new.sign), Scheme.SIG, public, owner=name))

    def peer(self, name: str) -> PublicKeys | None:
        return self._peers.get(name)

    def pair_key(self, name: str) -> bytes | None:
        """The key only this member and ``name`` hold (None: ``name``'s keys are not known):
        the base of the lines between them (:class:`~consensus.trust.line.LineKeys`)."""
        peer = self._peers.get(name)
        if peer is None:
            return None
        shared = self._kx.exchange(X25519PublicKey.from_public_bytes(peer.kx))
        low, high = sorted((self.public.kx, peer.kx))
        return session_key(self._room, shared, b"nngc pair" + low + high)
