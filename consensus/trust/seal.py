"""The sealed frame: what a frame of a room with a secret looks like on the wire.

::

    0      2        3          11          19                     19+T
    | ff53 | scheme | key id   | sequence  | tag (T bytes)        | CBOR envelope ... |
            1 = MAC (T = 16: keyed BLAKE2b of everything but the tag)
            3 = SIG (T = 96: an Ed25519 signature of the header and the payload's
                     BLAKE2b-256 digest, then that digest)

A signed frame carries its payload's digest so that the signature is checked before the
payload is hashed: a made-up signature is refused at the cost of one verification, whatever
the frame's size, and only a frame its key's holder signed costs a pass over its payload.
(Scheme 2, a signature over the same digest left out of the frame, is retired: a frame of
it is refused as an unknown scheme.)

The first byte, ``0xff``, is CBOR's "break" and never starts an envelope, so a sealed
frame can never be mistaken for a plain one. The key id (8 bytes) names the key; the
sequence number (big-endian, from 1) is strictly new for the key: :class:`ReplayWindow`
accepts each number once, and nothing older than the last :data:`WINDOW` numbers.
Everything here is pure: bytes in, bytes or a verdict out.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from patterns import Unauthenticated

__all__ = ["HEADER", "MAGIC", "WINDOW", "MacSender", "ReplayWindow", "Scheme", "Sealed", "SigSender", "mac_state", "parse"]

MAGIC: Final = b"\xffS"
HEADER: Final = struct.Struct(">2sB8sQ")  # magic, scheme, key id, sequence: 19 bytes
WINDOW: Final = 1024
"""How far back a sequence number may come late (frames of one key sent by concurrent
tasks may be reordered by that much); older ones are refused as replays."""


class Scheme(IntEnum):
    MAC = 1
    SIG = 3


_SIGNATURE: Final = 64
_DIGEST: Final = 32
TAG_SIZE: Final = {Scheme.MAC: 16, Scheme.SIG: _SIGNATURE + _DIGEST}
_MAC: Final = int(Scheme.MAC)
_pack: Final = HEADER.pack


def _refuse(reason: str, detail: str, size: int) -> Unauthenticated:
    return Unauthenticated(f"refused a frame of {size} bytes: {detail}", reason=reason, size=size)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A parsed sealed frame (nothing verified yet)."""

    scheme: Scheme
    kid: bytes
    seq: int
    header: memoryview  # with the payload, what the tag covers
    tag: bytes
    payload_at: int
    frame: bytes


def parse(frame: bytes) -> Sealed:
    """Split a sealed frame; raises :class:`Unauthenticated` ``"format"`` when it is none."""
    size = len(frame)
    if size < HEADER.size or frame[:2] != MAGIC:
        raise _refuse("format", "it is not sealed (does the sender know this room's secret?)", size)
    _, scheme, kid, seq = HEADER.unpack_from(frame)
    if scheme not in TAG_SIZE:
        raise _refuse("format", f"unknown seal scheme {scheme}", size)
    tag_size = TAG_SIZE[Scheme(scheme)]
    at = HEADER.size + tag_size
    if size < at:
        raise _refuse("format", "it is shorter than its seal", size)
    view = memoryview(frame)
    header = view[: HEADER.size]  # the tag sits between header and payload
    return Sealed(Scheme(scheme), kid, seq, header, bytes(view[HEADER.size : at]), at, frame)


def mac_state(key: bytes) -> hashlib.blake2b:
    """A keyed BLAKE2b-128 state for ``key``, nothing hashed yet: copy it per frame (a copy
    costs half of setting one up from the key)."""
    return hashlib.blake2b(key=key, digest_size=16)


def _mac(key: bytes, header: bytes | memoryview, payload: bytes | memoryview) -> bytes:
    h = hashlib.blake2b(key=key, digest_size=16)
    h.update(header)
    h.update(payload)
    return h.digest()


def check_mac(key: bytes, sealed: Sealed) -> bool:
    expected = _mac(key, sealed.header, memoryview(sealed.frame)[sealed.payload_at :])
    return hmac.compare_digest(expected, sealed.tag)


def _digest(payload: bytes | memoryview) -> bytes:
    return hashlib.blake2b(payload, digest_size=_DIGEST).digest()


def check_sig(public: Ed25519PublicKey, sealed: Sealed) -> bool:
    """The signature first (cheap, whatever the size), the payload's digest only after it."""
    signature, digest = sealed.tag[:_SIGNATURE], sealed.tag[_SIGNATURE:]
    try:
        public.verify(signature, bytes(sealed.header) + digest)
    except InvalidSignature:
        return False
    return hmac.compare_digest(_digest(memoryview(sealed.frame)[sealed.payload_at :]), digest)


class MacSender:
    """Seals frames under one symmetric key (``kid``), numbering them from 1."""

    scheme: Final = Scheme.MAC
    overhead: Final = HEADER.size + TAG_SIZE[Scheme.MAC]

    def __init__(self, kid: bytes, key: bytes) -> None:
        self.kid, self._seq = kid, 0
        self._mac = mac_state(key)

    def seal(self, payload: bytes) -> bytes:
        self._seq += 1
        header = _pack(MAGIC, _MAC, self.kid, self._seq)
        mac = self._mac.copy()
        mac.update(header)
        mac.update(payload)
        return b"".join((header, mac.digest(), payload))


class SigSender:
    """Signs frames with one Ed25519 key (``kid``): anyone holding the public key can check
    them, nobody else can make them (the members' mesh, where every member reads everyone)."""

    scheme: Final = Scheme.SIG
    overhead: Final = HEADER.size + TAG_SIZE[Scheme.SIG]

    def __init__(self, kid: bytes, key: Ed25519PrivateKey) -> None:
        self.kid, self._key, self._seq = kid, key, 0

    def seal(self, payload: bytes) -> bytes:
        self._seq += 1
        header = HEADER.pack(MAGIC, Scheme.SIG, self.kid, self._seq)
        digest = _digest(payload)
        return b"".join((header, self._key.sign(header + digest), digest, payload))


class ReplayWindow:
    """Accepts each sequence number once, and none older than :data:`WINDOW` behind the newest.

    ``top`` is the newest number accepted, ``seen`` one byte per number of the window, at its
    number modulo :data:`WINDOW`. A reader may take the next number in order itself, as
    :meth:`accept` would (``seen[seq % WINDOW] = 1``, then ``top = seq``): a guard does, a call
    less per frame."""

    __slots__ = ("seen", "top")

    # An in-order number (the common case: the newest plus one) sets one byte, where a bitmap in
    # one int shifted and masked a 1024-bit number per frame (twice the time: bench/README.md, a
    # poll with a secret).
    def __init__(self) -> None:
        self.top = 0  # the newest number accepted
        self.seen = bytearray(WINDOW)  # 1: the number top - WINDOW < n <= top at n % WINDOW was seen

    def accept(self, seq: int) -> bool:
        top = self.top
        if seq > top:
            if seq == top + 1:  # its byte held top + 1 - WINDOW's, now out of the window
                self.seen[seq % WINDOW] = 1
            else:
                self._skip(top, seq)
            self.top = seq
            return True
        if seq <= 0 or top - seq >= WINDOW or self.seen[seq % WINDOW]:
            return False
        self.seen[seq % WINDOW] = 1
        return True

    def _skip(self, top: int, seq: int) -> None:
        """The window moves from ``top`` to ``seq`` past numbers not seen: their bytes cleared."""
        seen = self.seen
        if seq - top >= WINDOW:
            seen[:] = bytes(WINDOW)
        elif seq - top == 2:  # one number skipped (a frame late or lost): the common jump
            seen[(top + 1) % WINDOW] = 0
        else:  # top + 1 .. seq - 1: one or two slices (it wraps), not a byte at a time (a key's
            # holder picks its numbers: one jumping by WINDOW - 1 a frame made each cost ~30 µs)
            start, end = (top + 1) % WINDOW, seq % WINDOW
            if start <= end:
                seen[start:end] = bytes(end - start)
            else:
                seen[start:] = bytes(WINDOW - start)
                seen[:end] = bytes(end)
        seen[seq % WINDOW] = 1
