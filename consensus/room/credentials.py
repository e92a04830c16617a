"""The room protocol's part of a room secret: the key fields of its frames, and who may
speak for a name. The keys themselves live in :mod:`consensus.trust.room`.

In a room with a secret: a ``beat`` carries the host's public keys (``"keys": [kx, sign]``);
a ``welcome`` and a ``roster`` carry every member's (``"keys": {name: [kx, sign]}``); a
member's ``hello`` carries its own (``{"kx", "sign"}``). Without a secret none of these
fields is sent, and a ``hello`` is refused.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from consensus.trust.room import HELLO, HostKeys, MemberKeys, PublicKeys
from patterns import Envelope, MalformedMessage, SocketStatistics, TLSConfig, TLSMode

__all__ = ["HELLO", "host_keys_of", "member_keys_of", "mesh_server_tls", "parse_hello_keys", "secret_problem", "speaker_problem", "warn_if_open"]


def _bad(envelope: Envelope, detail: str) -> MalformedMessage:
    return MalformedMessage(
        f"a {envelope.kind!r} message from {envelope.sender!r} is malformed: {detail}", reason="body", size=0
    )


def parse_hello_keys(envelope: Envelope) -> PublicKeys:
    body = envelope.body
    if not isinstance(body, dict):
        raise _bad(envelope, "the body must be a map")
    try:
        return PublicKeys(body.get("kx"), body.get("sign"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise _bad(envelope, str(exc)) from None


def host_keys_of(envelope: Envelope) -> PublicKeys | None:
    """The host's public keys a ``beat`` announces (None: it announces none)."""
    value = envelope.body.get("keys") if isinstance(envelope.body, dict) else None
    if value is None:
        return None
    try:
        return PublicKeys.from_wire(value)
    except ValueError as exc:
        raise _bad(envelope, str(exc)) from None


def member_keys_of(envelope: Envelope) -> dict[str, PublicKeys]:
    """The members' public keys of a ``welcome`` or ``roster`` (empty: none announced)."""
    value = envelope.body.get("keys", {}) if isinstance(envelope.body, dict) else {}
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise _bad(envelope, "'keys' must map member names to [kx, sign]")
    try:
        return {name: PublicKeys.from_wire(keys) for name, keys in value.items()}
    except ValueError as exc:
        raise _bad(envelope, str(exc)) from None


def speaker_problem(keys: HostKeys | None, envelope: Envelope, name: str, token: int) -> str | None:
    """Why the frame ``envelope`` may not speak for ``name`` (None: it may).

    Without a secret, anyone may (the room trusts its network). With one, the frame must
    come under the session that joined as ``name``; a first ``join`` (or ``heartbeat``, which a
    restarted host takes as a join) binds its session."""
    if keys is None:
        return None
    if envelope.sender != name:
        return f"a {envelope.kind!r} from {envelope.sender!r} names another member, {name!r}"
    joining = envelope.kind in ("join", "heartbeat")  # a restarted host takes heartbeats as joins
    if not keys.may_speak_for(envelope.session, name, token, joining=joining):
        return f"a {envelope.kind!r} for {name!r} came under a session that does not own that name"
    return None


def secret_problem(stats: SocketStatistics, address: str, secret: bool) -> str | None:
    """Why this member and the host at ``address`` cannot share a secret, judged from what
    the member's control socket refused (None: nothing says so, yet)."""
    refused = dict(stats.unauthenticated_reasons)
    if secret and refused.get("tag"):
        return f"the room host at {address} does not share this member's secret (its frames fail the seal check)"
    if secret and refused.get("format"):
        return f"the room host at {address} has no secret, but this member was given one"
    if not secret and dict(stats.malformed_reasons).get("sealed"):
        return f"the room at {address} needs a secret (secret=...), and this member was given none"
    return None


def warn_if_open(log: logging.Logger, address: str, secret: object) -> None:
    """One warning when a room without a secret listens where other machines can reach it."""
    if secret is not None or address.startswith(("ipc://", "inproc://")):
        return
    host = address.partition("://")[2].rpartition(":")[0].strip("[]")
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    log.warning("room at %s has no secret: anyone who can reach it can join and vote "
                "(give host() and join() a secret=)", address)  # fmt: skip


def mesh_server_tls(tls: TLSConfig | None, address: str) -> TLSConfig | None:
    """The server configuration a member's own listeners (its mesh, its lines) use in a
    ``tls+tcp://`` room: its certificate from its client configuration (``cert_key_file``),
    checked by the other members against the same CA. None: no TLS room, or no certificate."""
    if tls is None or not address.startswith("tls+tcp://") or tls.cert_key_file is None:
        return None
    return TLSConfig(mode=TLSMode.SERVER, cert_key_file=tls.cert_key_file, ca_file=tls.ca_file,
                     password=tls.password, auth_mode="none")  # fmt: skip


def with_host_keys(body: dict[str, Any], keys: HostKeys | MemberKeys | None) -> dict[str, Any]:
    return body if keys is None else body | {"keys": keys.public.to_wire()}


def with_member_keys(body: dict[str, Any], keys: HostKeys | None, only: str | None = None) -> dict[str, Any]:
    """``body`` with the members' public keys (``only``: that member's alone)."""
    if keys is None:
        return body
    published = keys.roster_keys()
    return body | {"keys": published if only is None else {only: published[only]}}
