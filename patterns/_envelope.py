"""The envelope: one message as it travels, its routing fields and its body (no codec here).

Its wire form, the CBOR map described in ``docs/wire-format.md``, is written and read by
:mod:`patterns._wire`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

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
        # field through object.__setattr__ (~1.1 µs here); a call per slot descriptor costs
        # ~0.6 µs. Here the object is briefly of its mutable twin (same slots, same layout),
        # whose plain attribute stores cost ~0.4 µs in all; it is frozen again before anyone
        # else holds it. A subclass (another layout) takes the descriptors' way.
        if type(self) is not Envelope:
            _set_fields(self, kind, sender, id, body, re, deadline, shm, size, weight, session)
            return
        _setattr(self, "__class__", _Received)
        twin: _Received = self  # type: ignore[assignment]  # (mypy cannot follow the class change)
        twin.kind = kind
        twin.sender = sender
        twin.id = id
        twin.body = body
        twin.re = re
        twin.deadline = deadline
        twin.shm = shm
        twin.size = size
        twin.weight = weight
        twin.session = session
        twin.__class__ = Envelope  # type: ignore[assignment]


class _Received:
    """:class:`Envelope`'s mutable twin: the same slots in the same order, so an instance
    can change class to and from it (what :meth:`Envelope.__init__` and :func:`received`
    do); never seen outside this module."""

    __slots__ = Envelope.__slots__
    kind: str
    sender: str
    id: int
    body: Any
    re: int | None
    deadline: float | None
    shm: tuple[Any, ...] | None
    size: int
    weight: int
    session: bytes | None

    def __init__(
        self, kind: str, sender: str, ident: int, body: Any, re: int | None, deadline: float | None, size: int
    ) -> None:
        self.kind = kind
        self.sender = sender
        self.id = ident
        self.body = body
        self.re = re
        self.deadline = deadline
        self.shm = None
        self.size = size
        self.weight = size
        self.session = None
        self.__class__ = Envelope  # type: ignore[assignment]  # the layouts are the same: frozen from here


received: Final = cast(Callable[[str, str, int, Any, "int | None", "float | None", int], Envelope], _Received)
"""``Envelope(kind, sender, id, body, re, deadline, None, size, size)`` for a decoder (a
frame of ``size`` bytes without ``shm``), a third cheaper (~0.25 µs): no defaults, no
check of the class."""

_setattr: Final = object.__setattr__  # (Envelope's own __setattr__ refuses every name)
_SETTERS: Final = tuple(Envelope.__dict__[field.name].__set__ for field in dataclasses.fields(Envelope))


def _set_fields(envelope: Envelope, *values: Any) -> None:
    for setter, value in zip(_SETTERS, values, strict=True):
        setter(envelope, value)
