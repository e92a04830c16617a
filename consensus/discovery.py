"""Finding rooms on the LAN: DNS-SD over multicast DNS, so agents need no hard-coded address.

::

    async with consensus.host("tcp://10.0.0.5:7000", advertise="team-a") as room: ...
    async with consensus.join("mdns://team-a", name="claude") as me: ...
    for ad in await consensus.discover(): print(ad.name, ad.address, ad.secret, ad.tls)

A host that advertises registers one DNS-SD service, ``<name>._nngc._tcp.local.``, whose
SRV record gives its port and whose A records give its addresses; its TXT record says the
wire version, the scheme (``tcp`` or ``tls+tcp``) and whether the room needs a secret or
TLS (``yes``/``no``), never the secret itself. Off by default: nothing is sent on the network
unless ``advertise=`` is given, ``mdns://`` is joined or :func:`discover` is called.

The multicast DNS itself is the ``zeroconf`` package (an optional extra: ``pip install
nng-consensus[discovery]``). Its synchronous API runs its own event loop in a thread; the
calls here run it in trio's worker threads, so nothing in the room waits on it. The mapping
between a room and its record (:func:`properties`, :func:`parse`) is pure.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import trio

from consensus.errors import RoomError, RoomUnavailable

__all__ = [
    "SERVICE_TYPE",
    "RoomAd",
    "advertise",
    "advertised",
    "discover",
    "joinable",
    "parse",
    "properties",
    "resolve",
]

SERVICE_TYPE: Final = "_nngc._tcp.local."
SCHEME: Final = "mdns://"
WIRE_VERSION: Final = "1"
MAX_NAME: Final = 63  # one DNS label (the instance name)
SCHEMES: Final = ("tcp", "tls+tcp")


@dataclass(frozen=True, slots=True)
class RoomAd:
    """A room found on the network: its advertised name, an address to join, what it needs."""

    name: str
    address: str  # tcp://ip:port or tls+tcp://ip:port: what consensus.join takes
    addresses: tuple[str, ...]  # every address it gave (one per interface)
    secret: bool  # the room needs a secret to join (the secret itself is never advertised)
    tls: bool


def _zeroconf() -> Any:
    try:
        import zeroconf
    except ImportError as exc:  # the optional extra is missing: say how to get it
        raise RuntimeError(
            "room discovery needs the zeroconf package: pip install 'nng-consensus[discovery]'"
        ) from exc
    return zeroconf


def check_name(name: str) -> str:
    if not isinstance(name, str) or not 0 < len(name.encode()) <= MAX_NAME or "." in name:
        raise ValueError(
            f"a room's advertised name is 1 to {MAX_NAME} bytes of text without dots, got {name!r}"
        )
    return name


def properties(address: str, *, secret: bool, tls: bool) -> tuple[str, str, int, dict[str, str]]:
    """The record of a room at ``address``: (scheme, host, port, TXT properties). Pure.

    ``secret`` is only whether one is needed; this function never sees the secret."""
    parts = urlsplit(address)
    if parts.scheme not in SCHEMES or parts.port is None or not parts.hostname:
        raise ValueError(
            f"only a tcp or tls+tcp room address with a host and port can be advertised, got {address!r}"
        )
    txt = {"v": WIRE_VERSION, "scheme": parts.scheme, "secret": "yes" if secret else "no",
           "tls": "yes" if tls or parts.scheme == "tls+tcp" else "no"}  # fmt: skip
    return parts.scheme, parts.hostname, parts.port, txt


def parse(name: str, port: int, addresses: list[str], txt: Mapping[bytes, bytes | None]) -> RoomAd | None:
    """The :class:`RoomAd` a record describes, or None when it is not a usable room record. Pure."""
    text = {k.decode(errors="replace"): (v or b"").decode(errors="replace") for k, v in txt.items()}
    scheme = text.get("scheme", "tcp")
    if text.get("v") != WIRE_VERSION or scheme not in SCHEMES or not 0 < port < 65536:
        return None
    valid = []
    for text_address in addresses:  # what another machine sent: keep the real IPv4 addresses only
        try:
            valid.append(ipaddress.IPv4Address(text_address))
        except ValueError:
            continue
    if not valid:
        return None
    joinable = tuple(f"{scheme}://{a}:{port}" for a in sorted(valid, key=lambda a: (a.is_loopback, str(a))))
    return RoomAd(
        name, joinable[0], joinable, secret=text.get("secret") == "yes", tls=text.get("tls") == "yes"
    )


def _instance(name: str) -> str:
    return f"{check_name(name)}.{SERVICE_TYPE}"


def _host_addresses(host: str) -> list[str]:
    """The IPv4 addresses to advertise for a listening host: itself, or every interface's
    (but loopback) for a wildcard, or what a name resolves to."""
    zeroconf = _zeroconf()
    if host in ("0.0.0.0", "*", ""):
        every = [a for a in zeroconf.get_all_addresses() if not ipaddress.ip_address(a).is_loopback]
        return every or ["127.0.0.1"]
    try:
        return [str(ipaddress.IPv4Address(host))]
    except ValueError:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, socket.AF_INET)})


@asynccontextmanager
async def advertise(
    name: str, address: str, *, secret: bool = False, tls: bool = False
) -> AsyncIterator[RoomAd]:
    """Announce the room at ``address`` as ``name`` while the block runs (then withdraw it)."""
    zeroconf = _zeroconf()
    scheme, host, port, txt = properties(address, secret=secret, tls=tls)
    ips = await trio.to_thread.run_sync(_host_addresses, host)
    info = zeroconf.ServiceInfo(SERVICE_TYPE, _instance(name), port=port, properties=txt,
                                parsed_addresses=ips, server=f"nngc-{name}.local.")  # fmt: skip
    zc = await trio.to_thread.run_sync(lambda: zeroconf.Zeroconf(ip_version=zeroconf.IPVersion.V4Only))
    try:
        try:  # zeroconf probes the network first: a name another live host announces is refused
            await trio.to_thread.run_sync(zc.register_service, info)
        except zeroconf.NonUniqueNameException as exc:
            raise RoomError(
                f"cannot advertise the room as {name!r}: another room on this network has that name"
            ) from exc
        try:
            yield RoomAd(name, f"{scheme}://{ips[0]}:{port}", tuple(f"{scheme}://{a}:{port}" for a in ips),
                         secret=secret, tls=txt["tls"] == "yes")  # fmt: skip
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(zc.unregister_service, info)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(zc.close)


def advertised(
    name: str | None, address: str, *, secret: bool, tls: bool
) -> AbstractAsyncContextManager[Any]:
    """What ``consensus.host(advertise=name)`` enters: :func:`advertise`, or nothing for None."""
    return AsyncExitStack() if name is None else advertise(name, address, secret=secret, tls=tls)


async def joinable(address: str, timeout: float | None) -> str:
    """What ``consensus.join`` dials: ``address`` itself, or for ``mdns://name`` the address
    the room advertised as ``name`` gives."""
    if not address.startswith(SCHEME):
        return address
    return (await resolve(address, timeout=3.0 if timeout is None else min(timeout, 10.0))).address


def _lookup(zc: Any, zeroconf: Any, instance: str, timeout: float) -> RoomAd | None:
    info = zeroconf.ServiceInfo(SERVICE_TYPE, instance)
    if not info.request(zc, int(timeout * 1000)):
        return None
    name = instance[: -len(SERVICE_TYPE) - 1]
    return parse(name, info.port or 0, info.parsed_addresses(zeroconf.IPVersion.V4Only), info.properties)


async def resolve(name: str, *, timeout: float = 3.0) -> RoomAd:
    """The room advertised as ``name`` (``"team-a"`` or ``"mdns://team-a"``); raises
    :class:`~consensus.errors.RoomUnavailable` when none answers within ``timeout`` seconds."""
    if name.startswith(SCHEME):
        name = name[len(SCHEME) :].rstrip("/")
    instance = _instance(name)
    zeroconf = _zeroconf()

    def run() -> RoomAd | None:
        zc = zeroconf.Zeroconf(ip_version=zeroconf.IPVersion.V4Only)
        try:
            return _lookup(zc, zeroconf, instance, timeout)
        finally:
            zc.close()

    found = await trio.to_thread.run_sync(run)
    if found is None:
        raise RoomUnavailable(
            f"no room advertised as {name!r} answered on the local network within {timeout:g} s "
            "(is its host started with advertise=, and on this LAN?)"
        )
    return found


async def discover(*, timeout: float = 2.0) -> tuple[RoomAd, ...]:
    """The rooms advertised on the local network, found within ``timeout`` seconds, by name."""
    zeroconf = _zeroconf()

    def run() -> tuple[RoomAd, ...]:
        zc = zeroconf.Zeroconf(ip_version=zeroconf.IPVersion.V4Only)
        seen: set[str] = set()

        def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
            seen.add(name)

        browser = zeroconf.ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        try:
            time.sleep(timeout)  # the browser gathers answers meanwhile, on zeroconf's own loop
            found = [_lookup(zc, zeroconf, instance, timeout) for instance in sorted(seen)]
        finally:
            browser.cancel()
            zc.close()
        return tuple(sorted((ad for ad in found if ad is not None), key=lambda ad: ad.name))

    return await trio.to_thread.run_sync(run)
