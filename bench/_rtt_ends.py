"""The echo ends of the round trips (:mod:`bench._rtt`): one per variant, in a spawned child
(or, on inproc, a thread or a trio task of the measuring process), and the helpers both
ends share: payloads, TLS configurations, pynng sockets and their resolved addresses.

Each echo dials the measuring side's address and echoes in its variant's style until it
receives :data:`STOP` (bare frames), ``None`` (CBOR values) or the ``STOP`` message
(hotlines), or :data:`ECHO_LIFETIME_S` passes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pynng
import trio

import consensus
import patterns
from consensus.hotline import serve

from ._children import Conn

__all__ = ["ECHO_LIFETIME_S", "IO_TIMEOUT_MS", "STOP", "LocalEcho", "Tls", "client_tls", "echo", "make_payload",
           "pynng_pair", "resolve_pynng", "server_tls"]  # fmt: skip

STOP = b"stop"  # bare-frame variants: this frame (shorter than any payload) ends the echo loop
IO_TIMEOUT_MS = 10_000  # sync sockets: no single send/recv may hang longer than this
ECHO_LIFETIME_S = 120.0  # an orphaned echo gives up after this long
Tls = dict[str, str] | None


def make_payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def client_tls(tls: Tls) -> patterns.TLSConfig | None:
    if tls is None:
        return None
    return patterns.TLSConfig(mode=patterns.TLSMode.CLIENT, ca_file=tls["ca_file"],
                              server_name=tls.get("server_name"))  # fmt: skip


def server_tls(tls: Tls) -> patterns.TLSConfig | None:
    return None if tls is None else patterns.TLSConfig(mode=patterns.TLSMode.SERVER,
                                                       cert_key_file=tls["cert_key_file"])  # fmt: skip


def pynng_pair(tls: patterns.TLSConfig | None, **options: Any) -> Any:
    sock = pynng.Pair1(**options)
    if tls is not None:
        sock.tls_config = tls.to_pynng()
    return sock


def resolve_pynng(address: str, listener: Any) -> str:
    """The bound address of a pynng listener, with a port 0 resolved (tcp, ws, tls+tcp)."""
    if not address.startswith(("tcp://", "ws://", "tls+tcp://")) or ":0" not in address:
        return address
    port = listener.local_address.port
    port = ((port & 0xFF) << 8) | (port >> 8)  # SockAddr.port is in network byte order
    host, _, rest = address.rpartition(":0")
    return f"{host}:{port}{rest}"


# ===================================================================== echo ends (child, or here on inproc)
def _echo_pynng_sync(address: str, tls: Tls = None) -> None:
    with pynng_pair(client_tls(tls), recv_timeout=int(ECHO_LIFETIME_S * 1000),
                     send_timeout=IO_TIMEOUT_MS) as sock:  # fmt: skip
        sock.dial(address, block=True)
        while (data := sock.recv()) != STOP:
            sock.send(data)


async def _echo_pynng_trio(address: str, tls: Tls = None) -> None:
    with pynng_pair(client_tls(tls)) as sock, trio.move_on_after(ECHO_LIFETIME_S):
        sock.dial(address, block=True)
        while (data := await sock.arecv()) != STOP:
            await sock.asend(data)


async def _echo_pynng_floor(address: str, tls: Tls = None) -> None:
    with pynng_pair(client_tls(tls), send_timeout=IO_TIMEOUT_MS) as sock, trio.move_on_after(ECHO_LIFETIME_S):
        sock.dial(address, block=True)
        fd = sock.recv_fd
        while True:
            try:
                data = sock.recv(block=False)
            except pynng.TryAgain:
                await trio.lowlevel.wait_readable(fd)
                continue
            if data == STOP:
                return
            sock.send(data)


async def _echo_patterns_bytes(address: str, tls: Tls = None) -> None:
    async with patterns.Pair(dial=address, tls=client_tls(tls)) as line:
        with trio.move_on_after(ECHO_LIFETIME_S):
            while (data := await line.receive_bytes()) != STOP:
                await line.send_bytes(data)


async def _echo_patterns_cbor(address: str, tls: Tls = None) -> None:
    async with patterns.Pair(dial=address, tls=client_tls(tls)) as line:
        with trio.move_on_after(ECHO_LIFETIME_S):
            while (value := await line.receive()) is not None:
                await line.send(value)


async def _answer(value: Any) -> Any:
    return value


def _answer_plain(value: Any) -> Any:
    return value


SECRET = b"the bench's hotline secret"  # the sealed hotline rows (issue 13: the cost of a secret)


async def _echo_hotline(address: str, tls: Tls = None, plain: bool = False, sealed: bool = False,
                        path: str = "thread") -> None:  # fmt: skip
    """Dials; answers each ask with its value (``plain``: from a plain function, its answer sent
    as ``path`` says; ``sealed``: on a line with a secret), until it hears ``STOP``."""
    on_ask = _answer_plain if plain else _answer
    if path == "trio":  # this child's lines only: the reference row of the old path
        serve.ANSWER_FROM_THREAD = False
    async with consensus.hotline(dial=address, name="echo", on_ask=on_ask, tls=client_tls(tls),
                                 secret=SECRET if sealed else None) as line:  # fmt: skip
        with trio.move_on_after(ECHO_LIFETIME_S):
            while await line.receive() != STOP:
                pass


ASYNC_ECHOES: dict[str, Callable[[str, Tls], Any]] = {
    "pynng_trio": _echo_pynng_trio, "pynng_floor": _echo_pynng_floor, "patterns_bytes": _echo_patterns_bytes,
    "patterns_cbor": _echo_patterns_cbor, "hotline_ask": _echo_hotline,
    "hotline_plain": functools.partial(_echo_hotline, plain=True),
    "hotline_plain_trio": functools.partial(_echo_hotline, plain=True, path="trio"),
    "hotline_secret": functools.partial(_echo_hotline, sealed=True),
}  # fmt: skip


def echo(conn: Conn, key: str, address: str, tls: Tls) -> None:
    """The job of an echo child: echo in ``key``'s style until the stop frame."""
    if key == "pynng_sync":
        _echo_pynng_sync(address, tls)
    else:
        trio.run(ASYNC_ECHOES[key], address, tls)


class LocalEcho:
    """An inproc echo end in this process: a thread (pynng sync) or a task in the trio loop."""

    def __init__(self, key: str, address: str, nursery: trio.Nursery) -> None:
        self.name = f"inproc echo for {key}"
        self.thread: threading.Thread | None = None
        if key == "pynng_sync":
            self.thread = threading.Thread(target=_echo_pynng_sync, args=(address,), daemon=True)
            self.thread.start()
        else:
            nursery.start_soon(ASYNC_ECHOES[key], address, None)

    def check_alive(self) -> None:
        if self.thread is not None and not self.thread.is_alive():
            raise RuntimeError(f"{self.name} ended early")

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.join(5.0)
