"""The socket lifecycle shared by every pattern: open, listen, dial, close, statistics.

Subclasses pick the pynng protocol (``_protocol``) and add their own I/O: the
readiness-driven waiting (non-blocking NNG calls, then ``wait_readable`` on NNG's
pollable descriptors) is :mod:`patterns._fd`'s, sending :mod:`patterns._stream`'s and
receiving :mod:`patterns._receiving`'s.
:class:`BaseSocket` is made of two mixins besides: :class:`~patterns._framing.Framing`
(encode and seal, open and decode, shared memory) and
:class:`~patterns._connections.Connections` (NNG's pipe callbacks, the peers).

The sockets own every side effect of the wire: NNG I/O, the clock (deadlines are
converted between the wire's wall clock and trio's clock where a socket hands a value
to the application), and shared memory (:mod:`patterns._framing`).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import secrets
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

import pynng
import trio

from patterns._connections import Connections
from patterns._framing import Framing
from patterns._gaps import GAP_MIN
from patterns._guard import Guard
from patterns._nng import TLSConfig, listen_with_tls, seconds_to_ms, translate
from patterns._peers import PeerSet
from patterns._stats import SocketStatistics
from patterns._wire import DEFAULT_MAX_ITEMS, DEFAULT_MAX_MESSAGE_SIZE
from patterns.errors import Closed
from patterns.shm.beacon import Beacons
from patterns.shm.codec import SharedMemory

__all__ = ["Addresses", "BaseSocket"]

Addresses = str | Sequence[str] | None

_LIVE: weakref.WeakSet[BaseSocket] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    # Registered after pynng's own atexit hook (pynng is imported first), so it runs
    # before nng_fini(): every socket still open is closed while NNG is alive.
    for sock in list(_LIVE):
        sock._close_nng()


def _as_list(addresses: Addresses, what: str) -> list[str]:
    if addresses is None:
        return []
    if isinstance(addresses, str):
        return [addresses]
    result = list(addresses)
    for address in result:
        if not isinstance(address, str):
            raise TypeError(f"{what} addresses must be strings, got {address!r}")
    return result


class BaseSocket(Framing, Connections):
    """Lifecycle, addresses and peer tracking common to all NNG patterns.

    Use as an async context manager; it opens on entry and closes on exit.
    Options are in seconds. ``max_message_size`` bounds every frame in both
    directions (NNG drops a larger incoming frame and the pipe that carried it).
    ``max_items`` bounds the CBOR data items of a received frame (default 65,536):
    a frame with more is refused before anything is built, ``MalformedMessage`` with
    ``reason="items"``, counted in ``statistics().malformed`` like every rejected frame.
    ``guard`` (see :mod:`patterns._guard`) seals every frame sent and opens every frame
    received before it is decoded; what it refuses is counted as ``unauthenticated``.
    ``admit``, when given, is called on NNG's thread with each new connection's remote
    address before the connection carries a frame; False closes it at once.
    """

    _protocol: ClassVar[str]

    def __init__(
        self,
        *,
        listen: Addresses = None,
        dial: Addresses = None,
        name: str = "",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        reconnect_min: float = 0.05,
        reconnect_max: float = 1.0,
        tls: TLSConfig | None = None,
        shared_memory: SharedMemory | bool = True,
        max_items: int = DEFAULT_MAX_ITEMS,
        guard: Guard | None = None,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        if max_message_size <= 0:
            raise ValueError(f"max_message_size must be positive, got {max_message_size!r}")
        if type(max_items) is not int or max_items < 1:
            raise ValueError(f"max_items must be a positive integer, got {max_items!r}")
        if reconnect_max < reconnect_min:
            raise ValueError(f"reconnect_max ({reconnect_max}) is below reconnect_min ({reconnect_min})")
        self.name = name
        self.max_message_size = max_message_size
        self.max_items = max_items
        self._listen = _as_list(listen, "listen")
        self._dial = _as_list(dial, "dial")
        self._reconnect_ms = (
            seconds_to_ms(reconnect_min, what="reconnect_min"),
            seconds_to_ms(reconnect_max, what="reconnect_max"),
        )
        self._tls = tls
        if isinstance(shared_memory, bool):
            shared_memory = SharedMemory(enabled=shared_memory)
        elif not isinstance(shared_memory, SharedMemory):
            raise TypeError(f"shared_memory must be a bool or a patterns.SharedMemory, got {shared_memory!r}")
        self.shared_memory = shared_memory
        self._beacons = Beacons(shared_memory.directory) if shared_memory.enabled else None
        # A body holding no buffer this large needs no placement and no splicing (``common_frame``).
        self._placed_limit = min(GAP_MIN, shared_memory.threshold) if shared_memory.enabled else GAP_MIN
        self._sock: Any = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._closed = False
        self._bound: list[str] = []
        self._dialers: dict[str, Any] = {}
        self.peers_state = PeerSet()
        self._ids = itertools.count(secrets.randbits(62))
        self._sent = self._received = self._bytes_sent = self._bytes_received = 0
        self._malformed = self._stray = 0
        self._malformed_reasons: dict[str, int] = {}
        self.guard = guard
        self._unauthenticated: dict[str, int] = {}
        self._admit = admit

    # ----------------------------------------------------------------- lifecycle
    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._sock is not None else "not opened")
        dialing = self._dialers if self._sock is not None else self._dial
        where = ", ".join(self._bound + [f"dial {a}" for a in dialing]) or "no address"
        label = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__name__}{label} {state}, {where}>"

    async def __aenter__(self) -> Self:
        self.open()
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def open(self) -> None:
        """Create the NNG socket, then listen and dial. Called by ``async with``."""
        if self._sock is not None or self._closed:
            raise Closed(f"{self!r} can only be opened once")
        self._token = trio.lowlevel.current_trio_token()
        factory = getattr(pynng, self._protocol)
        try:
            sock = factory(
                recv_max_size=self.max_message_size,
                reconnect_time_min=self._reconnect_ms[0],
                reconnect_time_max=self._reconnect_ms[1],
                **self._factory_options(),
            )
        except pynng.NNGException as exc:
            raise translate(exc, operation=f"opening a {self._protocol} socket", state=repr(self)) from exc
        self._sock = sock
        _LIVE.add(self)
        if self._admit is not None:
            sock.add_pre_pipe_connect_cb(self._pipe_arriving)
        sock.add_post_pipe_connect_cb(self._pipe_added)
        sock.add_post_pipe_remove_cb(self._pipe_removed)
        try:
            if self._tls is not None:
                sock.tls_config = self._tls.to_pynng()
            self._setup(sock)
            for address in self._listen:
                self.listen(address)
            for address in self._dial:
                self.dial(address)
        except BaseException:
            self._close_nng()
            raise

    def _factory_options(self) -> dict[str, Any]:
        return {}

    def _setup(self, sock: Any) -> None:
        """Hook for subclasses: runs after the socket exists, before listen/dial."""

    def _require_open(self, operation: str) -> Any:
        if self._closed:
            raise Closed(f"{operation} failed: {self!r} is closed")
        if self._sock is None:
            raise Closed(f"{operation} on {self!r}: open it first with 'async with'")
        return self._sock

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the socket: tasks blocked on it wake with :class:`Closed`. Idempotent."""
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Synchronous form of :meth:`aclose` (safe to call more than once)."""
        if self._closed:
            return
        self._closed = True
        self._wake_waiters()
        self._close_nng()
        self.peers_state.clear()
        if self._beacons is not None:
            self._beacons.close()

    def _wake_waiters(self) -> None:
        """Hook (trio side): wake tasks parked on this socket before it closes."""

    def _close_nng(self) -> None:
        """Close the NNG socket. Safe outside trio (it runs at exit too)."""
        self._closed = True
        _LIVE.discard(self)
        if self._sock is not None:
            self._sock.close()  # pynng's close is idempotent
            # pynng's Socket.__del__ calls nng_close again; if the object is collected
            # after nng_fini() (at interpreter exit) that call can bring NNG back up
            # mid-shutdown. Without its handle, pynng's close is a no-op.
            with contextlib.suppress(AttributeError):
                del self._sock._socket

    # ----------------------------------------------------------------- addresses
    def listen(self, address: str, *, tls: TLSConfig | None = None) -> str:
        """Listen at ``address``; returns the bound address (tcp port 0 resolved).

        ``tls``: a server configuration for this listener only, when the socket's own
        (``tls=`` at construction) is a client's, for its dialers (a mesh that does both)."""
        sock = self._require_open(f"listen({address!r})")
        try:
            listener = sock.listen(address) if tls is None else listen_with_tls(sock, address, tls, where=self)
        except pynng.NNGException as exc:
            raise translate(exc, operation=f"listen({address!r})", state=repr(self)) from exc
        bound = address
        if (
            address.startswith(("tcp://", "tcp4://", "tcp6://", "ws://", "tls+tcp://", "wss://"))
            and ":0" in address
        ):
            try:
                port = listener.local_address.port
                port = ((port & 0xFF) << 8) | (port >> 8)  # SockAddr.port is in network byte order
                host, _, rest = address.rpartition(":0")
                bound = f"{host}:{port}{rest}"
            except pynng.NNGException:
                pass
        self._bound.append(bound)
        return bound

    def dial(self, address: str) -> None:
        """Dial ``address`` in the background: quiet, retried until a peer is there."""
        sock = self._require_open(f"dial({address!r})")
        if address in self._dialers:
            return
        try:
            self._dialers[address] = sock.dial(address, block=False)
        except pynng.NNGException as exc:
            raise translate(exc, operation=f"dial({address!r})", state=repr(self)) from exc

    def undial(self, address: str) -> None:
        """Stop dialing ``address`` and drop the connection made by that dialer, if any."""
        dialer = self._dialers.pop(address, None)
        if dialer is not None and not self._closed:
            try:
                dialer.close()
            except (pynng.NNGException, KeyError):  # already gone with its socket
                pass

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses this socket listens at, with any tcp port 0 resolved."""
        return tuple(self._bound)

    # ----------------------------------------------------------------- peers
    # ----------------------------------------------------------------- accounting
    def next_id(self) -> int:
        """A fresh envelope id for a message this socket sends (unique per socket, 64-bit)."""
        return next(self._ids) & 0xFFFF_FFFF_FFFF_FFFF

    def _surveys_open(self) -> int:
        return 0

    def statistics(self) -> SocketStatistics:
        """A frozen snapshot of this socket's counters."""
        peers = self.peers_state
        return SocketStatistics(
            protocol=self._protocol,
            peers=len(peers),
            peers_connected_total=peers.connected_total,
            peers_disconnected_total=peers.disconnected_total,
            messages_sent=self._sent,
            messages_received=self._received,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            malformed=self._malformed,
            malformed_reasons=tuple(sorted(self._malformed_reasons.items())),
            unauthenticated=sum(self._unauthenticated.values()),
            unauthenticated_reasons=tuple(sorted(self._unauthenticated.items())),
            stray=self._stray,
            surveys_open=self._surveys_open(),
            closed=self._closed,
        )
