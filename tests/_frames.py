"""The envelope's frame as a plain dict, for tests that compare encoders with cbor2 itself,
and the plain values such tests draw bodies from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
from hypothesis import strategies as st

from patterns import Envelope


def plain_values(max_binary: int) -> st.SearchStrategy[Any]:
    """Nested plain values (no NaN: it never equals itself), byte strings of up to ``max_binary``."""
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                  st.text(max_size=12), st.binary(max_size=max_binary)),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
        max_leaves=10,
    )  # fmt: skip


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


def damaged(envelope: Envelope, data: st.DataObject, hows: list[str]) -> bytes:
    """The envelope's frame (cbor2's), as is ("whole") or with a byte flipped, cut short,
    extended or with bytes inserted, as ``data`` draws among ``hows``."""
    frame = bytearray(cbor2.dumps(frame_dict(envelope)))
    how = data.draw(st.sampled_from(hows))
    at = data.draw(st.integers(0, len(frame) - 1))
    if how == "flip":
        frame[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del frame[at:]
    elif how == "extend":
        frame += data.draw(st.binary(min_size=1, max_size=4))
    elif how == "insert":
        frame[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    return bytes(frame)
