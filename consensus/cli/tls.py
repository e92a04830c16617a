"""The TLS and secret flags every command shares.

``--secret-file PATH`` gives the room's secret (the file's content); without it, the
environment variable ``NNGC_SECRET`` does, if set. Neither puts the secret on a command
line, where other users of the machine could read it.

TLS flags, for ``tls+tcp://`` addresses:

A command that listens (``host``, ``distribute``) is the TLS server: ``--tls-cert`` is its
certificate chain and private key in one PEM file, and ``--tls-ca`` (optional) makes it
require client certificates signed by that CA. A command that dials is the client:
``--tls-ca`` verifies the server, ``--tls-cert`` (optional) is its own certificate for
mutual TLS, ``--tls-server-name`` the name to check when it differs from the address.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from consensus.trust.secret import ENV_SECRET, Secret
from patterns import TLSConfig, TLSMode

__all__ = ["Credentials", "credentials", "loopback_client", "tls_options"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a command proves itself with: TLS settings and the room's secret (each optional)."""

    tls: TLSConfig | None = None
    secret: Secret | None = None


def credentials(*, server: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The TLS flags of :func:`tls_options` plus ``--secret-file``: the command receives one
    ``creds`` argument (:class:`Credentials`)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, tls: TLSConfig | None, secret_file: str | None, **kwargs: Any) -> Any:
            return command(*args, creds=Credentials(tls, _secret(secret_file)), **kwargs)

        wrapper = click.option("--secret-file", type=click.Path(exists=True, dir_okay=False),
                               help=f"File holding the room's secret (default: ${ENV_SECRET}, if set).")(wrapper)  # fmt: skip
        return tls_options(server=server)(wrapper)

    return decorate


def _secret(path: str | None) -> Secret | None:
    try:
        if path is not None:
            return Secret.from_file(path)
        return Secret.from_env() if os.environ.get(ENV_SECRET) else None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


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
