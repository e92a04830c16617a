"""Bodies a sender built itself, encoded once without walking them: :func:`encode_vouched`.

Before the fast encoder writes a body, :func:`~patterns._codec_plain.is_plain` walks all of
it (~80 ns a value here): it is what keeps anything the fast encoder would write otherwise
than the general one (a tagged type, a buffer for shared memory or to splice, a map key
receivers refuse, a cycle) off that path. A body the sender assembled itself from values it
checked needs no such walk, except for the parts it took as they were given. A
deliberation's result (~400 values: every position and decision of every round) is such a
body: 30-57 µs of walking for one question, the only part given as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from patterns._cbor import encode_plain
from patterns._codec_plain import PLAIN_DEPTH, Encoded, is_plain
from patterns.errors import EncodeError

__all__ = ["VOUCHED_DEPTH", "encode_vouched"]

VOUCHED_DEPTH: Final = 16
"""Deepest a vouched body's own containers nest (its foreign parts are checked)."""


def encode_vouched(value: Any, foreign: Iterable[tuple[Any, int]] = ()) -> Encoded | None:
    """``value`` encoded once as a frame's body, without the walk that checks a body.

    The caller vouches that it built ``value`` of ``dict`` (text keys) and ``list`` or
    ``tuple`` containers, at most :data:`VOUCHED_DEPTH` deep, holding only ``str``,
    ``int``, ``float``, ``bool`` and ``None`` instances (values it checked with
    ``isinstance``: cbor2's two encoders write subclasses of these alike), except for the
    ``foreign`` values: each ``(part, containers above it in value)``, taken as given and
    checked here as any body is, with no byte string but an empty one. None when a foreign part is
    not of that kind, or the value cannot be encoded (text with lone surrogates): send
    ``value`` itself, which the general path encodes or refuses with its reasons."""
    for part, above in foreign:
        if not is_plain(part, PLAIN_DEPTH - 1 - above, 1):
            return None
    try:
        return Encoded(encode_plain(value))
    except EncodeError:
        return None
