"""A reference to a range of a shared-memory segment, and its strict wire form.

A segment is a file named ``nngc.<owner pid>.<32 lowercase hex>`` in the segment
directory (``/dev/shm`` unless configured). A reference names the segment, carries the
segment's 16-byte random *token* (a capability: the token is not in the file name, so
listing the directory is not enough to attach), and the byte range of the payload it
stands for. On the wire it is a CBOR array of four items::

    [name: text, token: bytes(16), offset: uint, length: uint]

Decoding (:meth:`ShmRef.from_wire`) is strict: anything else raises
:class:`~patterns.BadReference`, never another exception. A name that could reach
outside the segment directory (a separator, ``..``, anything off the pattern) is
rejected here, before any file is opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from patterns.errors import BadReference

__all__ = ["MAX_SEGMENT_SIZE", "NAME_PREFIX", "TOKEN_SIZE", "ShmRef", "check_name", "make_name"]

NAME_PREFIX: Final = "nngc."
"""Every segment of this toolkit has a file name starting with this."""

TOKEN_SIZE: Final = 16
"""Bytes in a segment's token."""

MAX_SEGMENT_SIZE: Final = 2**48
"""Largest payload a segment may hold or a reference may describe, in bytes (256 TiB)."""

_MAX_PID: Final = 2**32 - 1
_MAX_NAME_LENGTH: Final = len(NAME_PREFIX) + 10 + 1 + 32
_NAME: Final = re.compile(r"nngc\.([1-9][0-9]{0,9})\.([0-9a-f]{32})")


def make_name(pid: int, suffix_hex: str) -> str:
    """The file name of a segment owned by ``pid`` with the random ``suffix_hex``."""
    name = f"{NAME_PREFIX}{pid}.{suffix_hex}"
    check_name(name)
    return name


def check_name(name: object) -> int:
    """Return the owner pid encoded in a segment ``name``; raise BadReference if it is not one."""
    if not isinstance(name, str):
        raise BadReference(
            f"a segment name must be text, got {type(name).__name__}", name=None, reason="name"
        )
    if len(name) > _MAX_NAME_LENGTH:
        raise BadReference(
            f"segment name of {len(name)} characters is longer than {_MAX_NAME_LENGTH}",
            name=None,
            reason="name",
        )
    match = _NAME.fullmatch(name)
    if match is None:
        raise BadReference(
            f"segment name {name!r} is not of the form nngc.<pid>.<32 lowercase hex>",
            name=None,
            reason="name",
        )
    pid = int(match.group(1))
    if pid > _MAX_PID:
        raise BadReference(f"segment name {name!r} holds pid {pid} > {_MAX_PID}", name=None, reason="name")
    return pid


def _check_size(name: str, what: str, value: object) -> None:
    if type(value) is not int:  # bool is an int subclass and is refused too
        raise BadReference(
            f"reference to {name!r}: {what} must be an unsigned integer, got {type(value).__name__}",
            name=name,
            reason="shape",
        )
    if not 0 <= value <= MAX_SEGMENT_SIZE:
        raise BadReference(
            f"reference to {name!r}: {what} {value} is outside 0..{MAX_SEGMENT_SIZE}",
            name=name,
            reason="range",
        )


@dataclass(frozen=True, slots=True)
class ShmRef:
    """``length`` bytes at ``offset`` in the payload of segment ``name``, whose token is ``token``.

    Construction checks every field (:class:`~patterns.BadReference` otherwise), so a
    ``ShmRef`` in hand is always well formed; whether the segment exists and matches is
    only known when it is attached.
    """

    name: str
    token: bytes
    offset: int
    length: int

    def __post_init__(self) -> None:
        check_name(self.name)
        if type(self.token) is not bytes:
            raise BadReference(
                f"reference to {self.name!r}: token must be bytes, got {type(self.token).__name__}",
                name=self.name,
                reason="shape",
            )
        if len(self.token) != TOKEN_SIZE:
            raise BadReference(
                f"reference to {self.name!r}: token of {len(self.token)} bytes, expected {TOKEN_SIZE}",
                name=self.name,
                reason="token",
            )
        _check_size(self.name, "offset", self.offset)
        _check_size(self.name, "length", self.length)
        if self.offset + self.length > MAX_SEGMENT_SIZE:
            raise BadReference(
                f"reference to {self.name!r}: range {self.offset}+{self.length} ends past {MAX_SEGMENT_SIZE}",
                name=self.name,
                reason="range",
            )

    @property
    def owner_pid(self) -> int:
        """The pid of the process that made the segment (as encoded in its name)."""
        return check_name(self.name)

    @property
    def end(self) -> int:
        """The payload offset just past the referenced range."""
        return self.offset + self.length

    def to_wire(self) -> list[Any]:
        """``[name, token, offset, length]``: the CBOR-ready form."""
        return [self.name, self.token, self.offset, self.length]

    @classmethod
    def from_wire(cls, obj: object) -> ShmRef:
        """Decode :meth:`to_wire`'s form strictly; raise BadReference for anything else."""
        if not isinstance(obj, list | tuple):
            raise BadReference(
                f"a shared-memory reference must be an array, got {type(obj).__name__}",
                name=None,
                reason="shape",
            )
        if len(obj) != 4:
            raise BadReference(
                f"a shared-memory reference is an array of 4 items, got {len(obj)}",
                name=None,
                reason="shape",
            )
        name, token, offset, length = obj
        return cls(name, token, offset, length)
