"""Bodies encoded once by their sender (``patterns.encode_vouched``, ``patterns.Encoded``): the
same bytes as the general path, on every path a frame takes; foreign parts still checked."""

from __future__ import annotations

import datetime
import enum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns import Encoded, Envelope, decode, encode, encode_body, encode_vouched
from patterns._codec_plain import PLAIN_DEPTH
from patterns._wire import common_frame, encode_parts

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.StrEnum):
    RED = "red"


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), text)
built = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                     max_leaves=20)  # fmt: skip


@PROPERTY
@given(built, built)
def test_a_vouched_body_is_the_bytes_the_codec_writes_on_every_path(body: Any, question: Any) -> None:
    value = {"question": question, "rest": body}
    encoded = encode_vouched(value, [(question, 1)])
    assert encoded is not None and encoded.data == encode_body(value)
    envelope, plain = Envelope("result", "host", 7, encoded, None, 1.5), Envelope("result", "host", 7, value, None, 1.5)
    assert common_frame("result", "host", 7, encoded, None, 1.5, limit=1 << 16) == encode(plain)
    assert encode(envelope) == encode(plain)  # the general encoder writes its bytes where it sits
    assert repr(decode(encode(envelope))) == repr(decode(encode(plain)))  # (repr: NaN is not equal to itself)


def test_subclasses_of_the_vouched_kinds_are_written_as_the_codec_writes_them() -> None:
    value = {"stance": Color.RED, "names": [Color.RED, "x"], "n": True}
    encoded = encode_vouched(value)
    assert encoded is not None and encoded.data == encode_body(value)


@pytest.mark.parametrize("question", [
    b"xy", {"data": bytearray(b"x")}, datetime.date(2026, 12, 7), {1: "int key"}, {"s": {1, 2}}, Color.RED,
])  # fmt: skip
def test_a_foreign_part_of_another_kind_leaves_the_body_to_the_general_path(question: Any) -> None:
    # (byte strings at all: the sender's threshold for shared memory is not known here)
    assert encode_vouched({"question": question}, [(question, 1)]) is None
    assert encode_vouched({"question": "q"}, [("q", 1)]) is not None


def test_a_foreign_part_is_checked_for_its_depth_where_it_sits() -> None:
    deep: Any = "x"
    for _ in range(PLAIN_DEPTH - 2):  # as deep as a body's part may be
        deep = [deep]
    assert encode_vouched({"q": deep}, [(deep, 1)]) is not None  # within the frame's bound
    assert encode_vouched({"a": {"q": deep}}, [(deep, 2)]) is None  # one container more: too deep


def test_what_cannot_be_encoded_is_left_to_the_general_path_to_refuse() -> None:
    assert encode_vouched({"q": "\ud800"}) is None
    assert encode_vouched({"q": object()}) is None


def test_the_general_path_in_parts_carries_a_vouched_body() -> None:
    # What a sealed frame, or one with buffers elsewhere in it, is encoded with.
    value = {"question": "q", "positions": [{"label": "P1", "stance": "NATS", "confidence": 0.5}]}
    encoded = encode_vouched(value, [("q", 1)])
    assert isinstance(encoded, Encoded)
    parts = encode_parts(Envelope("deliberate", "host", 9, encoded, shm=None))
    assert b"".join(parts) == encode(Envelope("deliberate", "host", 9, value))
