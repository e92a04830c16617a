"""How one room address becomes the host's per-pattern endpoints (pure).

A room is given one address; the host listens at five endpoints derived from it:

==========  =========================  ============================
endpoint    ``tcp://H:P``              ``ipc:///path/room``
==========  =========================  ============================
survey      ``tcp://H:P``              ``ipc:///path/room``
control     ``tcp://H:P+1``            ``ipc:///path/room.control``
mesh        ``tcp://H:P+2``            ``ipc:///path/room.mesh``
tasks       ``tcp://H:P+3``            ``ipc:///path/room.tasks``
results     ``tcp://H:P+4``            ``ipc:///path/room.results``
==========  =========================  ============================

(``inproc://name`` works like ipc, with the same suffixes.) ``survey`` carries polls and
votes (surveyor/respondent), ``control`` is a bus star around the host for joins,
heartbeats, leaves, roster updates and decisions, ``mesh`` is the host's node
of the room-wide bus on which everyone hears everyone, and ``tasks``/``results`` are
the push/pull pair of work sharing (:func:`work_endpoints`: a standalone dispatcher
given ``tcp://H:P`` uses P and P+1, given ``ipc:///path`` uses the two suffixes).

Each member also listens for the mesh: over tcp at an ephemeral port on the address
its control connection uses (so the host and the others can reach it), over ipc at
``<path>.m-<random>``. The host tells every member whom to dial.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

__all__ = [
    "Endpoints",
    "WorkEndpoints",
    "endpoints",
    "member_mesh_address",
    "resolve_work_endpoints",
    "work_endpoints",
]


@dataclass(frozen=True, slots=True)
class WorkEndpoints:
    tasks: str  # the dispatcher pushes tasks here
    results: str  # workers push claims and results here


@dataclass(frozen=True, slots=True)
class Endpoints:
    survey: str
    control: str
    mesh: str
    tasks: str
    results: str

    @property
    def work(self) -> WorkEndpoints:
        return WorkEndpoints(self.tasks, self.results)


def _split_tcp(address: str, used: int = 5) -> tuple[str, str, int]:
    scheme, _, rest = address.partition("://")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"room address {address!r} needs an explicit port, like tcp://127.0.0.1:7000")
    port = int(port_text)
    if not 0 < port <= 65536 - used:
        raise ValueError(f"address {address!r}: port must be 1..{65536 - used} (P to P+{used - 1} are used)")
    return scheme, host, port


def endpoints(address: str) -> Endpoints:
    """Derive the host's endpoints from a room address (tcp, ws, tls+tcp, ipc, inproc)."""
    scheme = address.partition("://")[0]
    if scheme in ("tcp", "tcp4", "tcp6", "tls+tcp", "ws", "wss"):
        if scheme in ("ws", "wss"):
            raise ValueError(f"room address {address!r}: use tcp:// or ipc:// for rooms")
        scheme, host, port = _split_tcp(address)
        return Endpoints(*(f"{scheme}://{host}:{port + offset}" for offset in range(5)))
    if scheme in ("ipc", "inproc"):
        return Endpoints(
            address, f"{address}.control", f"{address}.mesh", f"{address}.tasks", f"{address}.results"
        )
    raise ValueError(
        f"room address {address!r}: unsupported scheme {scheme!r} (use tcp://, ipc:// or inproc://)"
    )


def work_endpoints(address: str) -> WorkEndpoints:
    """A standalone dispatcher's two endpoints: tcp P and P+1, or ipc/inproc ``.tasks``/``.results``."""
    scheme = address.partition("://")[0]
    if scheme in ("tcp", "tcp4", "tcp6", "tls+tcp"):
        scheme, host, port = _split_tcp(address, used=2)
        return WorkEndpoints(f"{scheme}://{host}:{port}", f"{scheme}://{host}:{port + 1}")
    if scheme in ("ipc", "inproc"):
        return WorkEndpoints(f"{address}.tasks", f"{address}.results")
    raise ValueError(
        f"dispatcher address {address!r}: unsupported scheme {scheme!r} (use tcp://, ipc:// or inproc://)"
    )


def resolve_work_endpoints(address: str | None, tasks: str | None, results: str | None) -> WorkEndpoints:
    """One address to derive both endpoints from, or both given explicitly."""
    if address is not None and tasks is None and results is None:
        return work_endpoints(address)
    if address is None and tasks is not None and results is not None:
        return WorkEndpoints(tasks, results)
    raise ValueError(
        f"give either one address or both tasks= and results= (got address={address!r}, "
        f"tasks={tasks!r}, results={results!r})"
    )


def member_mesh_address(room_address: str, local_host: str | None) -> str:
    """Where a member's mesh bus listens, given the host part of its control connection."""
    scheme = room_address.partition("://")[0]
    if scheme in ("ipc", "inproc"):
        return f"{room_address}.m-{secrets.token_hex(6)}"
    _, host, _ = _split_tcp(room_address)
    if local_host and local_host != "?":
        host = local_host
    return f"{scheme}://{host}:0"
