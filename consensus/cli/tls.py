"""The TLS flags every command shares, for ``tls+tcp://`` addresses.

A command that listens (``host``, ``distribute``) is the TLS server: ``--tls-cert`` is its
certificate chain and private key in one PEM file, and ``--tls-ca`` (optional) makes it
require client certificates signed by that CA. A command that dials is the client:
``--tls-ca`` verifies the server, ``--tls-cert`` (optional) is its own certificate for
mutual TLS, ``--tls-server-name`` the name to check when it differs from the address.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from patterns import TLSConfig, TLSMode

__all__ = ["loopback_client", "tls_options"]


def tls_options(*, server: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--tls-ca``, ``--tls-cert`` and ``--tls-server-name`` to a command, which then
    receives one ``tls`` argument (a :class:`TLSConfig`, or None without the flags)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, tls_ca: str | None, tls_cert: str | None, tls_server_name: str | None,
                    **kwargs: Any) -> Any:  # fmt: skip
            return command(*args, tls=_config(server, tls_ca, tls_cert, tls_server_name), **kwargs)

        pem = click.Path(exists=True, dir_okay=False)
        cert_help = ("PEM file with this server's certificate chain and private key (needed for tls+tcp)."
                     if server else "PEM file with this client's certificate and key (mutual TLS).")  # fmt: skip
        ca_help = ("Require client certificates signed by this CA (PEM)." if server
                   else "CA certificate (PEM) that signed the server's certificate.")  # fmt: skip
        wrapper = click.option("--tls-server-name", help="Server name to verify (clients; default: from ADDR).",
                               hidden=server)(wrapper)  # fmt: skip
        wrapper = click.option("--tls-cert", type=pem, help=cert_help)(wrapper)
        wrapper = click.option("--tls-ca", type=pem, help=ca_help)(wrapper)
        return wrapper

    return decorate


def _config(server: bool, ca: str | None, cert: str | None, server_name: str | None) -> TLSConfig | None:
    if ca is None and cert is None and server_name is None:
        return None
    if server:
        if cert is None:
            raise click.UsageError("a listening command needs --tls-cert (its certificate and key) for TLS")
        return TLSConfig(mode=TLSMode.SERVER, cert_key_file=cert, ca_file=ca,
                         auth_mode="required" if ca else None)  # fmt: skip
    return TLSConfig(mode=TLSMode.CLIENT, ca_file=ca, cert_key_file=cert, server_name=server_name,
                     auth_mode=None if ca else "none")  # fmt: skip


def loopback_client(server: TLSConfig | None) -> TLSConfig | None:
    """The configuration for a client of our own server on this machine: nothing to verify
    (it is us), our own certificate if the server demands one."""
    if server is None:
        return None
    return TLSConfig(mode=TLSMode.CLIENT, auth_mode="none",
                     cert_key_file=server.cert_key_file if server.ca_file else None)  # fmt: skip
