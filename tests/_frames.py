"""The envelope's frame as a plain dict, for tests that compare encoders with cbor2 itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from patterns import Envelope


def frame_dict(envelope: Envelope, body: Callable[[Any], Any] = lambda value: value) -> dict[str, Any]:
    """The keys the envelope's frame holds, in wire order; ``body`` maps the body first."""
    frame: dict[str, Any] = {"v": 1, "k": envelope.kind, "s": envelope.sender, "id": envelope.id}
    if envelope.re is not None:
        frame["re"] = envelope.re
    if envelope.deadline is not None:
        frame["dl"] = float(envelope.deadline)
    if envelope.body is not None:
        frame["b"] = body(envelope.body)
    return frame
