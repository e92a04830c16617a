"""The CBOR envelope codec (``patterns._wire``): CBOR strictness (indefinite lengths,
duplicate keys, tags, bignums, nesting depth, UTF-8) and the huge-integer bug pinned.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from _wire_cases import body_frame, frame, nested_lists, rejected

from patterns import Envelope, MalformedMessage, decode, decode_body, encode
from patterns._wire import MAX_DEPTH


# ---------------------------------------------------------------------------- targeted: CBOR strictness
@pytest.mark.parametrize(
    "data",
    [
        bytes([0xBF]) + frame()[1:] + b"\xff",  # indefinite-length envelope map
        body_frame(b"\x9f\x01\x02\xff"),  # indefinite-length array
        body_frame(b"\xbf\x61\x61\x01\xff"),  # indefinite-length map
        body_frame(b"\x7f\x61\x61\x61\x62\xff"),  # indefinite-length text
        body_frame(b"\x5f\x41\x00\xff"),  # indefinite-length bytes
        body_frame(b"\x7f\xff"),  # empty indefinite-length text
        body_frame(b"\xff"),  # a lone break
    ],
)
def test_indefinite_lengths_rejected(data: bytes) -> None:
    assert rejected(data).reason == "cbor"


@pytest.mark.parametrize(
    "data",
    [
        bytes([0xA5]) + frame()[1:] + cbor2.dumps("v") + b"\x01",  # envelope key "v" twice
        bytes([0xA5]) + frame()[1:] + cbor2.dumps("id") + b"\x02",  # "id" twice, different value
        body_frame(bytes.fromhex("a2616101616102")),  # {"a": 1, "a": 2} in the body
        body_frame(bytes.fromhex("a2416101416102")),  # {h'61': 1, h'61': 2}: byte string keys
    ],
)
def test_duplicate_keys_rejected(data: bytes) -> None:
    assert rejected(data).reason == "cbor"


def test_keys_equal_in_python_are_refused_as_keys_first() -> None:
    # {1: "a", true: "b"} was a duplicate in Python's eyes; now neither key is allowed at all.
    assert rejected(body_frame(bytes.fromhex("a2016161f56162"))).reason == "key"


def test_text_and_bytes_keys_of_the_same_content_are_distinct() -> None:
    env = decode(body_frame(bytes.fromhex("a2616101416102")))  # {"a": 1, h'61': 2}
    assert env.body == {"a": 1, b"a": 2}


@pytest.mark.parametrize(
    "tag, content",
    [
        (35, "a+"),  # regex
        (28, [1]),  # shareable
        (29, 0),  # shared reference
        (1, 0),  # epoch date/time
        (0, "2026-01-01T00:00:00Z"),  # date/time string
        (4, [-1, 15]),  # decimal fraction
        (24, b"\x01"),  # embedded CBOR
        (37, b"\x00" * 16),  # UUID
        (258, [1, 2]),  # set
        (55799, 1),  # self-describe CBOR
        (99999, 1),  # unassigned
        (2**63, 1),  # largest tag numbers
    ],
)
def test_tags_rejected(tag: int, content: Any) -> None:
    assert rejected(body_frame(cbor2.dumps(cbor2.CBORTag(tag, content)))).reason == "cbor"


def test_self_describe_tag_around_the_envelope_rejected() -> None:
    assert rejected(b"\xd9\xd9\xf7" + frame()).reason == "cbor"


@pytest.mark.parametrize("value", [2**64, 2**100, -(2**64) - 1, -(2**100), 2**1000])
def test_bignums_accepted_in_body(value: int) -> None:
    data = encode(Envelope(kind="data", sender="", id=1, body={"n": value}))
    assert data.count(b"\xc2") + data.count(b"\xc3") >= 1
    assert decode(data).body == {"n": value}


@pytest.mark.parametrize("content", ["x", 1, [1], cbor2.CBORTag(2, b"\x01")])
def test_bignum_content_must_be_bytes(content: Any) -> None:
    assert rejected(body_frame(cbor2.dumps(cbor2.CBORTag(2, content)))).reason == "cbor"


def test_nesting_depth_limit() -> None:
    # The envelope map is level 1, so the body can nest MAX_DEPTH - 1 containers.
    ok = Envelope(kind="data", sender="", id=1, body=nested_lists(MAX_DEPTH - 1))
    assert decode(encode(ok)) == ok
    deep = Envelope(kind="data", sender="", id=1, body=nested_lists(MAX_DEPTH))
    assert rejected(encode(deep)).reason == "cbor"
    maps: Any = 0
    for _ in range(MAX_DEPTH):
        maps = {"a": maps}
    assert rejected(encode(Envelope(kind="data", sender="", id=1, body=maps))).reason == "cbor"


def test_nesting_depth_counts_tags() -> None:
    ok = Envelope(kind="data", sender="", id=1, body=nested_lists(MAX_DEPTH - 2, 2**100))
    assert decode(encode(ok)) == ok
    deep = Envelope(kind="data", sender="", id=1, body=nested_lists(MAX_DEPTH - 1, 2**100))
    assert rejected(encode(deep)).reason == "cbor"


def test_decode_body_depth_limit() -> None:
    assert decode_body(b"\x81" * MAX_DEPTH + b"\x00") == nested_lists(MAX_DEPTH)
    with pytest.raises(MalformedMessage) as info:
        decode_body(b"\x81" * (MAX_DEPTH + 1) + b"\x00")
    assert info.value.reason == "cbor"


def test_very_deep_input_is_rejected_not_a_recursion_error() -> None:
    assert rejected(body_frame(b"\x81" * 100_000 + b"\x00")).reason == "cbor"


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("a4617601616b6464617461617361ff62696400"),  # sender b"\xff"
        bytes.fromhex("a4617601616b6464617461617363eda08062696400"),  # sender: UTF-8-encoded surrogate
        bytes.fromhex("a4617601616b6464617461617362c0af62696400"),  # sender: overlong "/"
        body_frame(b"\x62\xc3\x28"),  # body text: bad continuation byte
        body_frame(b"\xa1\x61\x80\x01"),  # body map key: lone continuation byte
        bytes.fromhex("a4617601616b6264ff61736062696400"),  # kind: "d" then a lone 0xff
    ],
)
def test_invalid_utf8_rejected(data: bytes) -> None:
    assert rejected(data).reason == "cbor"


# ---------------------------------------------------------------------------- known bug (see report)
# 2**15000 has 4516 decimal digits, over CPython's int->str limit of 4300, and is far
# beyond float range: valid CBOR (a 1876-byte bignum) that decode() must reject with
# MalformedMessage, not leak the ValueError/OverflowError of repr() or float().
HUGE = 2**15000


@pytest.mark.parametrize("wrap", ["int", "list", "map"])
@pytest.mark.parametrize("key", ["v", "id", "re", "dl"])
def test_huge_integer_in_routing_key_is_malformed(key: str, wrap: str) -> None:
    value = {"int": HUGE, "list": [HUGE], "map": {"n": HUGE}}[wrap]
    with pytest.raises(MalformedMessage) as info:
        decode(frame(**{key: value}))
    assert info.value.reason == ("version" if key == "v" and wrap == "int" else "shape")
