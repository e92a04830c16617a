"""Relayed rooms: past a number of members, broadcasts go through the host.

A room's members form a full mesh: each member links to every other, N - 1 connections each
(about 32,000 in all at 256 members, each with its own descriptors and shared-memory beacon).
Past ``relay_above`` members (``consensus.host(..., relay_above=32)``) the host tells its members
so in the roster (``"relay": true``); they then link to the host's mesh node only, and the host
sends on to every member what one member broadcasts (``say``) or offers for a line (``line``),
keeping its sender and id. A member drops what comes back from itself; the inbox drops a
message that reaches it both ways while a room changes mode. In a relayed room members send
broadcasts inline (a shared-memory reference placed for one receiver, the host, would be gone
before the others attach). ``docs/scale.md`` has the figures behind the default.
"""

from __future__ import annotations

from typing import Any, Final

from patterns import Envelope

__all__ = ["RELAY_ABOVE", "relayed", "with_relay"]

RELAY_ABOVE: Final = 32
"""Members past which a room relays broadcasts through its host (``host(relay_above=...)``)."""


def with_relay(body: dict[str, Any], relaying: bool) -> dict[str, Any]:
    """A welcome or roster body that says the room relays (nothing added when it does not)."""
    return body | {"relay": True} if relaying else body


def relayed(envelope: Envelope) -> bool:
    """Does this welcome or roster say the room relays? (only an explicit true does)"""
    return isinstance(envelope.body, dict) and envelope.body.get("relay") is True
