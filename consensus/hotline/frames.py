"""The hotline's frames: their kinds, and the one place they are built and parsed.

A frame is an :class:`~patterns.Envelope`; ``docs/hotline.md`` (section 3) is the
normative table. Nothing here keeps state: :class:`~consensus.hotline.protocol.LineProtocol`
numbers the frames and decides when each is sent.
"""

from __future__ import annotations

from typing import Any

from consensus.failure import Failure
from patterns import Envelope

__all__ = [
    "ANSWER_KINDS", "ASK", "CHUNK", "END", "ERROR", "HELLO", "MSG", "PING", "PONG", "REPLY", "SEALED_VERSION", "VERSION",
    "ask_body", "ask_frame", "error_body", "frame", "parse_ask", "unsendable_body",
]  # fmt: skip

MSG, ASK, REPLY, CHUNK, END, ERROR, PING, PONG, HELLO = (
    "msg", "ask", "reply", "chunk", "end", "error", "ping", "pong", "hello",
)  # fmt: skip
ANSWER_KINDS = (REPLY, CHUNK, END, ERROR)
VERSION = 1  # the hello's body: {"hotline": VERSION}; a peer may send a newer one
SEALED_VERSION = 2  # a sealed line's hello: {"hotline": 2, "kid": key id, "nonce": n, "echo": the peer's n or null}


# Any frame but an ask: ``frame(kind, sender, frame_id, body=None, re=None)`` (a value, an
# answer quoting ask ``re``, a ping, a pong, a hello). The envelope's own constructor, whose
# first five parameters are these: a wrapper was one more Python call per frame.
frame = Envelope


def ask_frame(sender: str, ask_id: int, value: Any, stream: bool, deadline: float) -> Envelope:
    """An ask: its id is the ask id; ``deadline`` is wall-clock time (the peer may drop it after)."""
    return Envelope(ASK, sender, ask_id, ask_body(value, stream), None, deadline)


def ask_body(value: Any, stream: bool) -> dict[str, Any]:
    """The body of an ask (:func:`ask_frame`'s): for a driver that sends the ask's fields."""
    return {"v": value, "stream": stream}


def parse_ask(ask_id: int, body: Any) -> tuple[Any, bool]:
    """The value and the stream flag of ask ``ask_id`` from its body; ``ValueError`` (saying why) for a bad one."""
    if not isinstance(body, dict) or "v" not in body:
        raise ValueError(f"ask {ask_id}: the body must be {{'v': value, 'stream': bool}}")
    stream = body.get("stream", False)
    if type(stream) is not bool:
        raise ValueError(f"ask {ask_id}: 'stream' must be true or false, not {type(stream).__name__}")
    return body["v"], stream


def error_body(body: Any) -> dict[str, Any]:
    """An ``error`` frame's body as ``{"type": str, "message": str}``, whatever the peer sent."""
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        message = body.get("message", "")
        return body if isinstance(message, str) else {"type": body["type"], "message": repr(message)[:200]}
    return {"type": "Error", "message": repr(body)[:200]}


def unsendable_body(exc: Exception) -> dict[str, Any]:
    """The error that replaces an answer with no wire form (or too large to send)."""
    return Failure(type(exc).__name__, str(exc)[:2000]).to_wire()
