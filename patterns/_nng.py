"""The boundary with pynng: error translation, TLS settings, and C-level option calls.

Every pynng call in this package that can fail goes through :func:`translate` (or
catches and maps itself), so no pynng exception reaches a caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, NoReturn

import pynng

from patterns.errors import (
    AddressError,
    AddressInUse,
    Closed,
    ConnectionRefused,
    ConsensusError,
    MessageTooLarge,
    Timeout,
    TLSError,
    TransportError,
    WouldBlock,
)

__all__ = [
    "TLSConfig", "TLSMode", "body_view", "message_from_parts", "raise_for", "receive_message_nowait",
    "seconds_to_ms", "send_message_nowait", "translate",
]  # fmt: skip


def translate(exc: BaseException, *, operation: str, state: str) -> ConsensusError:
    """Map a pynng exception to this toolkit's tree; the caller raises it ``from exc``.

    ``operation`` names what was attempted (with its input, e.g. the address) and
    ``state`` the socket it was attempted on, so the message says both.
    """
    detail = f"{operation} on {state}: {exc}"
    errno = getattr(exc, "errno", None)
    match exc:
        case pynng.Closed():
            return Closed(f"{operation} failed: {state} is closed")
        case pynng.Timeout():
            return Timeout(f"{operation} timed out on {state}")
        case pynng.TryAgain():
            return WouldBlock(f"{operation} would block on {state}")
        case pynng.AddressInUse():
            return AddressInUse(detail, errno=errno)
        case pynng.AddressInvalid() | pynng.NotSupported() | pynng.NoEntry() | pynng.InvalidOperation():
            return AddressError(detail, errno=errno)
        case pynng.ConnectionRefused():
            return ConnectionRefused(detail, errno=errno)
        case pynng.CryptoError() | pynng.AuthenticationError():
            return TLSError(detail, errno=errno)
        case pynng.MessageTooLarge():
            return MessageTooLarge(detail)
        case _:
            return TransportError(detail, errno=errno)


def raise_for(err: int, *, operation: str, where: object) -> NoReturn:
    """Raise this toolkit's error for NNG's non-zero error code ``err`` from a C call
    made for ``operation`` on ``where`` (a socket: its repr is the state named)."""
    try:
        pynng.check_err(err)
    except pynng.NNGException as exc:
        raise translate(exc, operation=operation, state=repr(where)) from exc
    raise AssertionError(f"NNG error code {err} raised nothing")  # check_err raises for any non-zero code


def receive_message_nowait(sock: Any, out: Any, *, operation: str, where: object) -> Any | None:
    """A non-blocking ``nng_recvmsg`` on the pynng socket ``sock`` into ``out`` (an
    ``nng_msg **``): the message, which the caller frees, or None when none is queued."""
    err = pynng.lib.nng_recvmsg(sock.socket, out, pynng.lib.NNG_FLAG_NONBLOCK)
    if not err:
        return out[0]
    if err == pynng.lib.NNG_EAGAIN:
        return None
    raise_for(err, operation=operation, where=where)


def message_from_parts(parts: Any, size: int, out: Any, *, operation: str, where: object) -> Any:
    """A new ``nng_msg`` holding ``parts`` (bytes and byte buffers, ``size`` bytes in all)
    one after another: each copied once, straight into NNG's message (``nng_send`` would
    copy a joined frame: two copies of a large buffer). The caller sends or frees it."""
    err = pynng.lib.nng_msg_alloc(out, size)
    if err:
        raise_for(err, operation=operation, where=where)
    msg = out[0]
    at = pynng.ffi.cast("char *", pynng.lib.nng_msg_body(msg))
    for part in parts:
        length = part.nbytes if type(part) is memoryview else len(part)
        pynng.ffi.memmove(at, part, length)
        at += length
    return msg


def send_message_nowait(sock: Any, msg: Any, *, operation: str, where: object) -> bool:
    """A non-blocking ``nng_sendmsg`` of ``msg`` on the pynng socket ``sock``: True when NNG
    took it (it owns it then), False when its queue is full (the caller still owns it)."""
    err = pynng.lib.nng_sendmsg(sock.socket, msg, pynng.lib.NNG_FLAG_NONBLOCK)
    if not err:
        return True
    if err == pynng.lib.NNG_EAGAIN:
        return False
    raise_for(err, operation=operation, where=where)


def body_view(msg: Any) -> memoryview:
    """The body of a received ``nng_msg``, read in place: the view owns the message, which
    is freed once the view and every slice of it are gone (no use after free)."""
    size = pynng.lib.nng_msg_len(msg)
    body = pynng.ffi.gc(
        pynng.ffi.cast("char *", pynng.lib.nng_msg_body(msg)), lambda _: pynng.lib.nng_msg_free(msg)
    )
    return memoryview(pynng.ffi.buffer(body, size))


def seconds_to_ms(seconds: float, *, what: str) -> int:
    """Convert a duration option given in seconds to NNG's milliseconds, checking it."""
    if seconds < 0:
        raise ValueError(f"{what} must be >= 0 seconds, got {seconds!r}")
    return max(1, round(seconds * 1000)) if seconds > 0 else 0


class TLSMode(Enum):
    """Which side of the TLS handshake a configuration is for."""

    SERVER = "server"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS settings for ``tls+tcp://`` (and ``wss://``) addresses, passed through to NNG.

    A listener needs ``mode=TLSMode.SERVER`` and ``cert_key_file`` (a PEM file holding
    the certificate chain and its private key). A dialer uses ``mode=TLSMode.CLIENT``,
    ``ca_file`` to verify the server, and ``server_name`` when the name to check
    differs from the address. ``auth_mode`` defaults to ``"required"`` for clients and
    ``"none"`` for servers (set ``"required"`` on a server for mutual TLS).
    """

    mode: TLSMode
    cert_key_file: str | None = None
    ca_file: str | None = None
    server_name: str | None = None
    auth_mode: Literal["none", "optional", "required"] | None = None
    password: str | None = None

    def to_pynng(self) -> Any:
        """Build the pynng configuration object (raises :class:`TLSError`)."""
        auth = self.auth_mode or ("required" if self.mode is TLSMode.CLIENT else "none")
        try:
            return pynng.TLSConfig(
                pynng.TLSConfig.MODE_SERVER if self.mode is TLSMode.SERVER else pynng.TLSConfig.MODE_CLIENT,
                server_name=self.server_name,
                ca_files=[self.ca_file] if self.ca_file else None,
                cert_key_file=self.cert_key_file,
                passwd=self.password,
                auth_mode={
                    "none": pynng.TLSConfig.AUTH_MODE_NONE,
                    "optional": pynng.TLSConfig.AUTH_MODE_OPTIONAL,
                    "required": pynng.TLSConfig.AUTH_MODE_REQUIRED,
                }[auth],
            )
        except pynng.NNGException as exc:
            raise TLSError(f"TLS configuration {self!r} was rejected: {exc}", errno=exc.errno) from exc


def listen_with_tls(sock: Any, address: str, config: TLSConfig, *, where: object) -> Any:
    """Listen at ``address`` with ``config`` for this listener only (the socket's own TLS
    configuration stays for its dialers): create the listener, set it, then start it."""
    operation = f"listen({address!r})"
    pointer = pynng.ffi.new("nng_listener *")
    err = pynng.lib.nng_listener_create(pointer, sock.socket, address.encode())
    if err:
        raise_for(err, operation=operation, where=where)
    listener = pynng.Listener(pointer, sock)
    try:
        listener.tls_config = config.to_pynng()
        err = pynng.lib.nng_listener_start(pointer[0], 0)
        if err:
            raise_for(err, operation=operation, where=where)
    except pynng.NNGException as exc:
        pynng.lib.nng_listener_close(pointer[0])
        raise translate(exc, operation=operation, state=repr(where)) from exc
    except BaseException:
        pynng.lib.nng_listener_close(pointer[0])
        raise
    sock._listeners[listener.id] = listener  # as pynng's own listen() records it
    return listener
