"""The guard of one socket: which keys it seals with, which it accepts, and their windows.

A :class:`Guard` is the object :mod:`patterns` calls before decoding a received frame
and after encoding one to send (the :class:`patterns.Guard` shape). It is pure: the keys
are put in and taken out by the protocol object that owns the conversation
(:class:`~consensus.trust.room.HostKeys`, :class:`~consensus.trust.room.MemberKeys`).
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from hmac import compare_digest
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.trust.seal import (
    HEADER,
    MAGIC,
    TAG_SIZE,
    WINDOW,
    MacSender,
    ReplayWindow,
    Scheme,
    SigSender,
    check_sig,
    mac_state,
    parse,
)
from patterns import EncodeError, FirstOpened, Opened, Unauthenticated

__all__ = ["LEARNED", "Guard", "Key"]

_HEAD: Final = HEADER.size
_MAC_AT: Final = 35  # where a MAC-sealed frame's payload begins: header (19) + tag (16)
_MAC: Final = int(Scheme.MAC)  # (an int compares in a third of the time an enum member takes)
_COPY_FIRST: Final = 4096
"""A MAC-sealed frame up to this size has its payload copied out before the tag is checked
(its copy is needed once it checks out); a larger one is hashed in place, so that a forged
one costs no copy."""
LEARNED: Final = 4096
"""Keys a guard derives on first sight (a host's epoch key, a joiner's key) that it keeps,
newest first: past that many, the oldest go (with their replay windows)."""

Sender = MacSender | SigSender


@dataclass(slots=True)
class Key:
    """A key a guard accepts: ``secret`` checks the tag (a MAC key or an Ed25519 public key);
    ``owner`` and ``kinds`` limit what frames under it may claim (see :class:`patterns.Opened`).
    ``secret`` and ``scheme`` are fixed once made: ``mac`` is derived from them (a new key
    is a new ``Key``; ``owner`` may be set later, when a joiner's name is known)."""

    kid: bytes
    scheme: Scheme
    secret: bytes | Ed25519PublicKey
    owner: str | None = None
    kinds: frozenset[str] | None = None
    window: ReplayWindow = field(default_factory=ReplayWindow)
    learned: Callable[[Key], None] | None = None  # called once a frame under a learned key is accepted
    # A MAC key's keyed BLAKE2b state, copied per frame: setting one up from the key costs
    # twice as much as copying it (0.4 against 0.2 µs).
    mac: hashlib.blake2b | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.scheme is Scheme.MAC and isinstance(self.secret, bytes):
            self.mac = mac_state(self.secret)


class Guard:
    """Seals with ``sender`` (or a sender chosen by kind) and opens frames under known keys.

    ``learn``, when given, is asked for a key id the guard does not hold; a key it
    returns is kept only once a frame under it is fully accepted: its tag and replay window
    here, then the key's limits (``owner``, ``kinds``) in the socket, which calls
    :attr:`patterns.FirstOpened.accepted` (so forged frames cost one derivation each and leave
    nothing behind, and a frame of a kind the key may not send teaches the guard nothing)."""

    def __init__(self, sender: Sender | None = None, *, learn: Callable[[bytes], Key | None] | None = None,
                 what: str = "socket") -> None:  # fmt: skip
        self.sender = sender
        self.by_kind: dict[str, Sender] = {}
        self.keys: dict[bytes, Key] = {}
        self._learn = learn
        self._learned: OrderedDict[bytes, Key] = OrderedDict()
        self._what = what

    # The same for every sender, so sizes stay predictable; an attribute, read once per frame sent.
    overhead: Final[int] = HEADER.size + max(TAG_SIZE.values())

    def seal(self, frame: bytes, kind: str) -> bytes:
        sender = self.by_kind.get(kind, self.sender)
        if sender is None:
            raise EncodeError(f"the {self._what} holds no key to send a {kind!r} frame with yet "
                              "(the room's keys are not agreed: is the host there?)")  # fmt: skip
        return sender.seal(frame)

    def reseal(self, frame: bytes, kind: str) -> bytes | None:
        """``frame`` (sealed here, not sent yet) sealed again from its payload when the sender
        for ``kind`` is no longer the one whose key id it carries (a line's new session):
        the peer would refuse the old seal. None when it still is, or no sender is set."""
        sender, sealed = self.by_kind.get(kind, self.sender), parse(frame)
        if sender is None or sealed.kid == sender.kid:
            return None
        return sender.seal(bytes(memoryview(frame)[sealed.payload_at :]))

    def add(self, key: Key) -> None:
        self.keys[key.kid] = key

    def find(self, kid: bytes) -> Key | None:
        """The key ``kid`` if this guard holds it (given or learned)."""
        return self.keys.get(kid) or self._learned.get(kid)

    def drop(self, kid: bytes) -> None:
        self.keys.pop(kid, None)
        self._learned.pop(kid, None)

    def open(self, frame: bytes) -> Opened:
        size = len(frame)
        if size < _MAC_AT or frame[:2] != MAGIC:  # every frame comes here: the checks are inline
            parse(frame)  # raises the precise "format" refusal
        _, scheme, kid, seq = HEADER.unpack_from(frame)
        key = self.keys.get(kid) or self._learned.get(kid)
        fresh = False
        if key is None:
            if self._learn is not None:
                key, fresh = self._learn(kid), True
            if key is None:
                raise Unauthenticated(f"refused a frame of {size} bytes: sealed with a key this {self._what} "
                                      "does not know", reason="key", size=size)  # fmt: skip
        mac = key.mac
        if scheme == _MAC and mac is not None:
            mac = mac.copy()
            mac.update(frame[:_HEAD])
            payload: bytes | memoryview = frame[_MAC_AT:] if size <= _COPY_FIRST else memoryview(frame)[_MAC_AT:]
            mac.update(payload)
            good = compare_digest(mac.digest(), frame[_HEAD:_MAC_AT])
        else:
            sealed = parse(frame)
            good = sealed.scheme is key.scheme and not isinstance(key.secret, bytes) and check_sig(key.secret, sealed)
            payload = memoryview(frame)[sealed.payload_at :]
        if not good:
            raise Unauthenticated(f"refused a frame of {size} bytes: its seal does not match "
                                  "(a wrong secret, or an altered frame)", reason="tag", size=size)  # fmt: skip
        window = key.window
        if seq == window.top + 1:  # the next in order (most frames): ReplayWindow.accept's, inline
            window.seen[seq % WINDOW] = 1
            window.top = seq
        elif not window.accept(seq):
            raise Unauthenticated(f"refused a frame of {size} bytes: sequence number {seq} "
                                  "was already seen or is too old (a replay)", reason="replay", size=size)  # fmt: skip
        if fresh:  # kept only once the socket accepted the frame whole (its key's limits too)
            return FirstOpened(payload if type(payload) is bytes else bytes(payload), kid, key.owner, key.kinds,
                               accepted=functools.partial(self._keep, key))  # fmt: skip
        return Opened(payload if type(payload) is bytes else bytes(payload), kid, key.owner, key.kinds)

    def _keep(self, key: Key) -> None:
        """A frame under the learned ``key`` was fully accepted: hold the key, say it was learned."""
        self._learned[key.kid] = key
        if len(self._learned) > LEARNED:
            self._learned.popitem(last=False)
        if key.learned is not None:
            key.learned(key)
