"""The envelope's frame as a plain dict, for tests that compare encoders with cbor2 itself,
the plain values such tests draw bodies from, damaged frames, the two readers of a
``Pair`` (fields, envelope) that the reading tests hold to each other, and a respondent's
take of one given frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
from hypothesis import strategies as st

from patterns import HOLE, Envelope, Fields, IncomingSurvey, MalformedMessage, Pair, Respondent

LINE_SHAPES = [("ask", False, True, {"v": HOLE, "stream": False}), ("reply", True, False, HOLE)]
"""A hotline's shapes (kind, re, deadline, body): its plain asks and its replies."""


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
    """The envelope's frame (cbor2's), as is ("whole") or damaged as :func:`damage` does, as
    ``data`` draws among ``hows``."""
    frame = cbor2.dumps(frame_dict(envelope))
    return damage(frame, data.draw(st.sampled_from(hows)), data)


def damage(frame: bytes, how: str, data: st.DataObject) -> bytes:
    """``frame`` with a byte flipped ("flip"), cut short ("cut"), extended ("extend") or with
    bytes inserted ("insert") where ``data`` draws; "whole": as it is."""
    changed = bytearray(frame)
    at = data.draw(st.integers(0, len(changed) - 1))
    if how == "flip":
        changed[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del changed[at:]
    elif how == "extend":
        changed += data.draw(st.binary(min_size=1, max_size=4))
    elif how == "insert":
        changed[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    return bytes(changed)


def line_frames(senders: list[str]) -> st.SearchStrategy[Envelope]:
    """Frames of :data:`LINE_SHAPES` (a plain ask, a reply) from one of ``senders``."""
    return st.builds(
        lambda kind, sender, ident, other, value, stream: (
            Envelope("ask", sender, ident, {"v": value, "stream": stream}, None, other)
            if kind == "ask" else Envelope("reply", sender, ident, value, int(other) % 2**64)
        ),
        st.sampled_from(["ask", "reply"]), st.sampled_from(senders), st.integers(2**32 - 2, 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False, min_value=0), st.binary(max_size=300) | st.text(max_size=300)
        | st.integers(250, 2**16 + 2).map(bytes) | st.integers(80, 2**15).map(lambda n: "ü" * n)
        | st.dictionaries(st.text(max_size=9), st.none() | st.integers(0, 2**64) | st.text(max_size=300)
                          | st.binary(max_size=30) | st.floats() | st.lists(st.none(), max_size=1), max_size=5)
        | st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats(),
        st.just(False) | st.booleans(),
    )  # fmt: skip


def read_general(sock: Pair, data: bytes) -> Fields | MalformedMessage:
    """The fields of ``data`` through the envelope (``_unpack``), or its refusal."""
    try:
        envelope = sock._unpack(data)
    except MalformedMessage as exc:
        return exc
    return envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline


def read_fields(sock: Pair, data: bytes) -> Fields | MalformedMessage:
    """The fields of ``data`` through the fields reader (``_fields``), or its refusal."""
    try:
        return sock._fields(data)
    except MalformedMessage as exc:
        return exc


def take_survey(sock: Respondent, data: bytes) -> IncomingSurvey | MalformedMessage:
    """What ``sock`` makes of the frame ``data`` (its receive replaced for the call): the
    survey, or the refusal, whose context it must have released."""
    released: list[object] = []
    sock._receive_body = lambda operation, out: ("ctx", data)  # type: ignore[method-assign]
    sock._release = released.append  # type: ignore[method-assign]
    try:
        survey = sock._take("test")
    except MalformedMessage as exc:
        assert released == ["ctx"]  # a refused survey's context goes back
        return exc
    finally:
        del sock._receive_body, sock._release
    assert survey is not None and not released
    return survey
