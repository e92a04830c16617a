"""Shared by the in-memory room tests: the endpoints of a test room, and frames as they travel."""

from __future__ import annotations

import itertools
from typing import Any

from consensus.endpoints import endpoints
from patterns import Encoded, Envelope, decode, decode_body, encode

ENDS = endpoints("ipc:///tmp/room-test")
HEARTBEAT = 1.0
_ids = itertools.count(1)


def wire(kind: str, sender: str, body: Any, re: int | None = None) -> Envelope:
    """An envelope as the peer decodes it (the codec rejects bodies with no wire form)."""
    return decode(encode(Envelope(kind=kind, sender=sender, id=next(_ids), body=body, re=re)))


def sent(body: Any) -> Any:
    """A frame's body as its receivers decode it (one encoded by its sender is CBOR already)."""
    return decode_body(body.data) if isinstance(body, Encoded) else body
