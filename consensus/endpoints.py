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

(``inproc://name`` works like ipc, with the same suffixes.) ``ws://H:P/path`` (and
``wss://``) uses one port: the endpoints are ``ws://H:P/path/survey``, ``.../control``,
``.../mesh``, ``.../tasks`` and ``.../results``, which NNG's ws transport serves on one
listening port, told apart by URL path. ``survey`` carries polls and
votes (surveyor/respondent), ``control`` is a bus star around the host for joins,
heartbeats, leaves, roster updates and decisions, ``mesh`` is the host's node
of the room-wide bus on which everyone hears everyone, and ``tasks``/``results`` are
the push/pull pair of work sharing (:func:`work_endpoints`: a standalone dispatcher
given ``tcp://H:P`` uses P and P+1, given ``ipc:///path`` uses the two suffixes).

Each member also listens for the mesh: over tcp at an ephemeral port on the address
its control connection uses (so the host and the others can reach it), over ws at
``ws://L:0/mesh`` (its lines at paths under it: one port per member), over ipc at
``<path>.m-<random>``; ``join(..., listen=...)`` names that endpoint instead (a fixed
port a firewall can open; a wildcard host such as ``0.0.0.0`` is announced as the
address of the control connection). Room hotlines listen next to it, at an ephemeral
port or at the first free port of ``join(..., line_ports=...)``. The host tells every
member whom to dial.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

__all__ = [
    "Endpoints",
    "WorkEndpoints",
    "announced_address",
    "check_listen",
    "endpoints",
    "line_listen_addresses",
    "member_mesh_address",
    "port_range",
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


_WS_SCHEMES = ("ws", "wss")
_NAMES = ("survey", "control", "mesh", "tasks", "results")


def _split_ws(address: str) -> tuple[str, str, int, str]:
    """``ws://H:P/path`` as (scheme, H, P, "/path" or "")."""
    scheme, _, rest = address.partition("://")
    hostport, _, path = rest.partition("/")
    host, sep, port_text = hostport.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {address!r} needs an explicit port, like {scheme}://127.0.0.1:7000")
    return scheme, host, int(port_text), f"/{path}".rstrip("/")


def _ws_base(address: str) -> str:
    scheme, host, port, path = _split_ws(address)
    if port == 0:
        raise ValueError(f"room address {address!r}: the port must be 1..65535")
    return f"{scheme}://{host}:{port}{path}"


def endpoints(address: str) -> Endpoints:
    """Derive the host's endpoints from a room address (tcp, tls+tcp, ws, wss, ipc, inproc)."""
    scheme = address.partition("://")[0]
    if scheme in _WS_SCHEMES:  # one port: NNG serves each endpoint at its own URL path
        base = _ws_base(address)
        return Endpoints(*(f"{base}/{name}" for name in _NAMES))
    if scheme in ("tcp", "tcp4", "tcp6", "tls+tcp"):
        scheme, host, port = _split_tcp(address)
        return Endpoints(*(f"{scheme}://{host}:{port + offset}" for offset in range(5)))
    if scheme in ("ipc", "inproc"):
        return Endpoints(
            address, f"{address}.control", f"{address}.mesh", f"{address}.tasks", f"{address}.results"
        )
    raise ValueError(
        f"room address {address!r}: unsupported scheme {scheme!r} (use tcp://, ws://, ipc:// or inproc://)"
    )


def work_endpoints(address: str) -> WorkEndpoints:
    """A standalone dispatcher's two endpoints: tcp P and P+1, ws ``/tasks`` and ``/results``
    on one port, or ipc/inproc ``.tasks``/``.results``."""
    scheme = address.partition("://")[0]
    if scheme in _WS_SCHEMES:
        base = _ws_base(address)
        return WorkEndpoints(f"{base}/tasks", f"{base}/results")
    if scheme in ("tcp", "tcp4", "tcp6", "tls+tcp"):
        scheme, host, port = _split_tcp(address, used=2)
        return WorkEndpoints(f"{scheme}://{host}:{port}", f"{scheme}://{host}:{port + 1}")
    if scheme in ("ipc", "inproc"):
        return WorkEndpoints(f"{address}.tasks", f"{address}.results")
    raise ValueError(
        f"dispatcher address {address!r}: unsupported scheme {scheme!r} (use tcp://, ws://, ipc:// or inproc://)"
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


_WILDCARDS = frozenset({"", "*", "0.0.0.0", "[::]", "::", "[::0]"})
_TCP_SCHEMES = ("tcp", "tcp4", "tcp6", "tls+tcp")


def member_mesh_address(room_address: str, local_host: str | None, listen: str | None = None) -> str:
    """Where a member's mesh bus listens, given the host part of its control connection;
    ``listen`` (``join(..., listen=...)``) is used as given, once checked (a ws address
    with no path gets ``/mesh``: its lines listen at paths under it, on the same port)."""
    scheme = room_address.partition("://")[0]
    if listen is not None:
        return check_listen(room_address, listen)
    if scheme in ("ipc", "inproc"):
        return f"{room_address}.m-{secrets.token_hex(6)}"
    if scheme in _WS_SCHEMES:
        _, host, _, _ = _split_ws(room_address)
        return f"{scheme}://{local_host if local_host and local_host != '?' else host}:0/mesh"
    _, host, _ = _split_tcp(room_address)
    if local_host and local_host != "?":
        host = local_host
    return f"{scheme}://{host}:0"


def check_listen(room_address: str, listen: str) -> str:
    """``listen`` if a member of the room at ``room_address`` may listen there: the same
    transport family (the room's tcp or ws scheme with an explicit port, 0 for any; or ipc /
    inproc for an ipc or inproc room). Raises ValueError saying why not."""
    room_scheme, listen_scheme = room_address.partition("://")[0], listen.partition("://")[0]
    if room_scheme in _TCP_SCHEMES or room_scheme in _WS_SCHEMES:
        example = f"{room_scheme}://0.0.0.0:7410"
        if listen_scheme != room_scheme:
            raise ValueError(f"listen={listen!r}: a member of the room at {room_address!r} listens with "
                             f"{room_scheme}://, like {example}")  # fmt: skip
        if room_scheme in _WS_SCHEMES:
            scheme, host, number, path = _split_ws(listen)
            return f"{scheme}://{host}:{number}{path or '/mesh'}"
        port = listen.partition("://")[2].rpartition(":")[2]
        if not (port.isdigit() and int(port) <= 65535):
            raise ValueError(f"listen={listen!r} needs a port 0..65535 (0: any), like {example}")
        return listen
    if listen_scheme not in ("ipc", "inproc"):
        raise ValueError(f"listen={listen!r}: a member of the room at {room_address!r} listens with "
                         "ipc:// or inproc://")  # fmt: skip
    return listen


def announced_address(bound: str, local_host: str | None) -> str:
    """The address the room is told for a socket bound at ``bound``: a wildcard host
    (``0.0.0.0``, ``[::]``) becomes ``local_host``, the address of this member's control
    connection, which the host and other members can reach; anything else is unchanged."""
    scheme, sep, rest = bound.partition("://")
    if not sep or not (scheme in _TCP_SCHEMES or scheme in _WS_SCHEMES):
        return bound
    hostport, slash, path = rest.partition("/") if scheme in _WS_SCHEMES else (rest, "", "")
    host, _, port = hostport.rpartition(":")
    if host in _WILDCARDS and local_host and local_host != "?":
        return f"{scheme}://{local_host}:{port}{slash}{path}"
    return bound


def port_range(ports: range | str | None) -> range | None:
    """``join(..., line_ports=...)`` as a range: a ``range`` (``range(7420, 7430)``) or
    text ``"7420-7429"`` (both ends included) or ``"7420"``; None stays None (any port)."""
    if ports is None:
        return None
    if isinstance(ports, str):
        low, sep, high = ports.strip().partition("-")
        if not (low.strip().isdigit() and (not sep or high.strip().isdigit())):
            raise ValueError(f"line_ports={ports!r}: write a port range as text like '7420-7429'")
        ports = range(int(low), int(high if sep else low) + 1)
    if not isinstance(ports, range) or ports.step != 1 or len(ports) == 0:
        raise ValueError(f"line_ports={ports!r}: give a non-empty range of ports, like range(7420, 7430)")
    if not 0 < ports.start <= ports[-1] <= 65535:
        raise ValueError(f"line_ports={ports!r}: ports must be within 1..65535")
    return ports


def line_listen_addresses(mesh: str, nonce: str, ports: range | None = None) -> list[str]:
    """Where a room hotline may listen, next to the member's ``mesh`` bind address, in the
    order to try: ipc / inproc: the mesh address plus ``.l-`` and ``nonce``; ws: the mesh
    address plus ``/l-`` and ``nonce`` (the same port: ``ports`` is not needed); tcp: the
    same host at each port of ``ports``, or at port 0 (the system picks) when ``ports`` is None."""
    scheme, _, rest = mesh.partition("://")
    if scheme in ("ipc", "inproc"):
        return [f"{mesh}.l-{nonce}"]
    if scheme in _WS_SCHEMES:  # the mesh's own port, at a path of its own
        return [f"{mesh}/l-{nonce}"]
    host = rest.rpartition(":")[0]
    return [f"{scheme}://{host}:{port}" for port in (ports if ports is not None else (0,))]
