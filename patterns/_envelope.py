"""The envelope: one message as it travels, its routing fields and its body (no codec here).

Its wire form, the CBOR map described in ``docs/wire-format.md``, is written and read by
:mod:`patterns._wire`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Envelope", "received"]


@dataclass(frozen=True, slots=True, init=False)  # __init__ below: the generated one is slow
class Envelope:
    """One message as it travels: routing fields plus a CBOR-able ``body``.

    The fields are the wire's, as sent and received: ``deadline`` is the ``dl`` key,
    seconds since the Unix epoch (the codec reads no clock). What the sockets hand to
    applications converts it once to trio's clock (:attr:`IncomingSurvey.deadline`).
    ``shm`` holds the references in their wire form; in a decoded body each use of one
    is a :class:`~patterns.shm.ShmRef` until the receiving socket attaches it.
    """

    kind: str
    sender: str
    id: int
    body: Any = None
    re: int | None = None
    deadline: float | None = None
    shm: tuple[Any, ...] | None = None
    size: int = dataclasses.field(default=0, compare=False, repr=False)
    """Length in bytes of the frame it was decoded from (0 for one built here): not on
    the wire, not compared."""
    weight: int = dataclasses.field(default=0, compare=False, repr=False)
    """What the decoded envelope holds in memory, estimated in bytes (0 for one built
    here): the frame's length plus 64 per CBOR item and 176 more per array or map (just
    the frame's length when it was decoded without ``measure``: see :func:`decode`). Not
    on the wire, not compared; what a queue of received messages budgets (a 3-byte
    CBOR map is a 232-byte dict)."""
    session: bytes | None = dataclasses.field(default=None, compare=False, repr=False)
    """The key the frame was sealed with, when the receiving socket has a guard (a room
    secret): see :class:`patterns._guard.Opened`. Not on the wire, not compared."""

    def __init__(
        self, kind: str, sender: str, id: int, body: Any = None, re: int | None = None,
        deadline: float | None = None, shm: tuple[Any, ...] | None = None, size: int = 0, weight: int = 0,
        session: bytes | None = None,
    ) -> None:  # fmt: skip
        # Every frame sent or received builds one. A frozen dataclass's own __init__ sets each
        # field through object.__setattr__ (~1.1 µs here, ~1.9 µs with keywords); the slots'
        # descriptors set them directly (~0.8 µs). Still frozen: assignment raises as before.
        _set_kind(self, kind)
        _set_sender(self, sender)
        _set_id(self, id)
        _set_body(self, body)
        _set_re(self, re)
        _set_deadline(self, deadline)
        _set_shm(self, shm)
        _set_size(self, size)
        _set_weight(self, weight)
        _set_session(self, session)


def received(kind: str, sender: str, ident: int, body: Any, re: int | None, deadline: float | None,
             size: int) -> Envelope:  # fmt: skip
    """A decoded frame of ``size`` bytes without shared memory (its ``weight`` is its size)."""
    return Envelope(kind, sender, ident, body, re, deadline, None, size, size)


_SETTERS: Final = tuple(Envelope.__dict__[field.name].__set__ for field in dataclasses.fields(Envelope))
_set_kind, _set_sender, _set_id, _set_body, _set_re, _set_deadline, _set_shm, _set_size = _SETTERS[:8]
_set_weight, _set_session = _SETTERS[8:]
