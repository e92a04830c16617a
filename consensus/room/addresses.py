"""Which addresses members can dial: the check of a ``mesh`` (and a line offer's ``address``).

A join whose mesh is not dialable is refused, not counted as malformed (``docs/rooms.md``
2.2, 3.2); :mod:`consensus.room.protocol` re-exports :func:`dialable` for its parsers and
for the host's and members' protocols.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["dialable", "not_a_members"]

_MESH_SCHEMES: Final = ("tcp", "tcp4", "tcp6", "tls+tcp", "ws", "wss", "ipc", "inproc")


def dialable(address: str) -> str | None:
    """Why ``address`` is not one members can dial, or None when it is.

    Dialable means: ``scheme://rest`` with a scheme of a room (tcp, tcp4, tcp6, tls+tcp,
    ws, wss, ipc, inproc), a non-empty printable rest, and for the tcp and ws schemes a
    port 1..65535 after the last colon (of the part before the path, for ws). Whether
    something listens there is not checked."""
    scheme, sep, rest = address.partition("://")
    if not sep or not rest or not address.isprintable():
        return f"{address[:80]!r} is not of the form scheme://address"
    if scheme not in _MESH_SCHEMES:
        return f"{address[:80]!r} has the scheme {scheme!r}; a mesh uses one of {', '.join(_MESH_SCHEMES)}"
    port = (rest.partition("/")[0] if scheme in ("ws", "wss") else rest).rpartition(":")[2]
    if scheme not in ("ipc", "inproc") and not (port.isdigit() and 0 < int(port) < 65536):
        return f"{address[:80]!r} has no port 1..65535"
    return None


def not_a_members(mesh: str, own: Mapping[str, str]) -> str | None:
    """Why a joiner's ``mesh`` is not a member's address (the end of a refusal's reason), or
    None when it is: not dialable, or one of the host's own endpoints ``own`` (by name)."""
    why = dialable(mesh)
    if why is not None:
        return f"is not one members can dial: {why}"
    for endpoint, address in own.items():
        if mesh == address:
            return f"is this host's {endpoint} endpoint, not a member's"
    return None
