"""The guard hook: what a socket asks before it decodes a frame, and after it encodes one.

A socket built with ``guard=`` hands every received frame to :meth:`Guard.open` *before*
the CBOR decoder sees a byte of it, and every frame it sends to :meth:`Guard.seal` after
encoding. The pattern layer knows no keys and no cryptography: a guard is any object of
this shape; the room credential of :mod:`consensus.trust` is the one this toolkit ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["FirstOpened", "Guard", "Opened"]


@dataclass(frozen=True, slots=True, init=False)  # __init__ below: the generated one is slow
class Opened:
    """A frame that passed its guard: the bytes to decode and who may have sent them.

    ``session`` names the key the frame was sealed with (copied to
    :attr:`Envelope.session`); ``owner``, when set, is the only sender name that session
    speaks for; ``kinds``, when set, the only message kinds it may send. The socket checks
    both after decoding and refuses the frame as ``"impersonation"`` or ``"kind"``; a
    :class:`FirstOpened` it accepts whole, it then tells (``accepted``)."""

    payload: bytes
    session: bytes
    owner: str | None = None
    kinds: frozenset[str] | None = None

    def __init__(self, payload: bytes, session: bytes, owner: str | None = None,
                 kinds: frozenset[str] | None = None) -> None:  # fmt: skip
        # One per sealed frame received. The generated __init__ of a frozen dataclass sets each
        # field through object.__setattr__; the slots' own descriptors set them in half the time
        # (as Envelope's). Still frozen: assignment raises as before.
        _set_payload(self, payload)
        _set_session(self, session)
        _set_owner(self, owner)
        _set_kinds(self, kinds)


@dataclass(frozen=True, slots=True)
class FirstOpened(Opened):
    """An :class:`Opened` frame under a key its guard met with it: ``accepted`` is called by
    the socket once the frame is fully accepted, and the guard keeps the key, and acts on
    it, only then, so that a frame refused for its key's limits teaches it nothing. (Not a
    field of every :class:`Opened`: a frozen dataclass sets each field with a call, for
    every frame received; only a first frame needs this one.)"""

    accepted: Callable[[], None] = field(kw_only=True)


_set_payload, _set_session, _set_owner, _set_kinds = (Opened.__dict__[name].__set__
                                                      for name in ("payload", "session", "owner", "kinds"))  # fmt: skip


class Guard(Protocol):
    """Seals what a socket sends and opens what it receives (see the module docstring)."""

    @property
    def overhead(self) -> int:
        """Bytes a sealed frame adds to the encoded one (the socket keeps room for them)."""
        ...

    def seal(self, frame: bytes, kind: str) -> bytes:
        """The frame as it goes on the wire (``kind``: the envelope's, to pick a key)."""
        ...

    def open(self, frame: bytes) -> Opened:
        """Check a received frame; raises :class:`~patterns.errors.Unauthenticated`."""
        ...

    def reseal(self, frame: bytes, kind: str) -> bytes | None:
        """``frame``, which this guard sealed earlier and which has not gone yet, sealed again
        when the key :meth:`seal` would pick for ``kind`` now is not the one it was sealed
        with; None when it is (the frame goes as it is)."""
        ...
