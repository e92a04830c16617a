"""The CBOR envelope codec (``patterns._wire``): one targeted case per framing, size and
shape rule (keys, version, id, kind, sender, deadline, shm), each checking the exact ``reason``.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2
import pytest
from _wire_cases import BASE, ROUND_TRIP, bad_keys, bodies, body_frame, frame, rejected
from hypothesis import given
from hypothesis import strategies as st

from patterns import (
    DEFAULT_MAX_MESSAGE_SIZE,
    EncodeError,
    Envelope,
    MalformedMessage,
    decode,
    decode_body,
    encode,
    encode_body,
)
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH


# ---------------------------------------------------------------------------- targeted: framing and size
def test_valid_base_frame() -> None:
    assert decode(frame()) == Envelope(kind="data", sender="", id=0)


@pytest.mark.parametrize(
    "data", [b"\xff", b"\x1c", b"\x3f", b"not cbor", b"\x5b\x7f\xff\xff\xff\xff\xff\xff\xff", b"\xfe"]
)
def test_non_cbor(data: bytes) -> None:
    assert rejected(data).reason == "cbor"


def test_empty() -> None:
    exc = rejected(b"")
    assert (exc.reason, exc.size) == ("cbor", 0)


@pytest.mark.parametrize("tail", [b"\x00", b"\xf6", frame()])
def test_trailing_bytes(tail: bytes) -> None:
    assert rejected(frame() + tail).reason == "cbor"


def test_over_max_size() -> None:
    data = encode(Envelope(kind="data", sender="a", id=1, body=b"x" * 100))
    assert decode(data, max_size=len(data)).body == b"x" * 100  # exactly at the limit is fine
    exc = rejected(data, max_size=len(data) - 1)
    assert (exc.reason, exc.size) == ("size", len(data))


def test_over_default_max_size_is_checked_before_parsing() -> None:
    exc = rejected(b"\xff" * (DEFAULT_MAX_MESSAGE_SIZE + 1))
    assert (exc.reason, exc.size) == ("size", DEFAULT_MAX_MESSAGE_SIZE + 1)


def test_decode_body_size_and_empty() -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_body(b"\x00" * 11, max_size=10)
    assert info.value.reason == "size"
    with pytest.raises(MalformedMessage) as info:
        decode_body(b"")
    assert info.value.reason == "cbor"


# ---------------------------------------------------------------------------- targeted: shape
@pytest.mark.parametrize("item", [[1, "data", "", 0], 1, "v", b"v", None, True, 1.5, []])
def test_not_a_map(item: Any) -> None:
    assert rejected(cbor2.dumps(item)).reason == "shape"


@pytest.mark.parametrize("key", [1, -1, None, True])
def test_non_text_keys(key: Any) -> None:
    # The key rule (text or bytes, in any map) comes before the envelope's shape.
    assert rejected(cbor2.dumps({**BASE, key: 0})).reason == "key"


def test_byte_string_key_in_the_envelope_is_a_shape_error() -> None:
    fields: dict[Any, Any] = {**BASE, b"v": 0}
    assert rejected(cbor2.dumps(fields)).reason == "shape"


@ROUND_TRIP
@given(bodies(max_leaves=6), bad_keys, st.data())
def test_bad_keys_refused_on_encode_and_decode(body: Any, key: Any, data: st.DataObject) -> None:
    # A bad key anywhere in the body: at the top, or inside a list or a map.
    where = data.draw(st.sampled_from(["top", "list", "map"]), label="where")
    holder = {key: body}
    value: Any = holder if where == "top" else [body, holder] if where == "list" else {"in": holder}
    with pytest.raises(EncodeError, match="map key"):
        encode_body(value)
    with pytest.raises(EncodeError, match="map key"):
        encode(Envelope(kind="data", sender="a", id=1, body=value))
    assert rejected(body_frame(cbor2.dumps(value))).reason == "key"


@pytest.mark.parametrize("key", [(1, 2), 1.5, 2**64])
def test_costly_keys_are_refused_before_the_shape_check(key: Any) -> None:
    assert rejected(cbor2.dumps({**BASE, key: 0})).reason == "key"


@pytest.mark.parametrize("key", ["x", "V", "body", "", "sh"])
def test_unknown_key(key: str) -> None:
    assert rejected(frame(**{key: 1})).reason == "shape"


@pytest.mark.parametrize("key", ["v", "k", "s", "id"])
def test_missing_required_key(key: str) -> None:
    assert rejected(frame(**{key: ...})).reason == "shape"


def test_empty_map() -> None:
    assert rejected(b"\xa0").reason == "shape"


@pytest.mark.parametrize("version", [0, 2, 255, 2**64 - 1, -1, 2**70])
def test_wrong_version(version: int) -> None:
    assert rejected(frame(v=version)).reason == "version"


def test_unknown_version_wins_over_unknown_keys() -> None:
    assert rejected(frame(v=2, future=[1, 2])).reason == "version"


@pytest.mark.parametrize("version", [True, False, 1.0, "1", None, [1], b"\x01"])
def test_version_must_be_an_integer(version: Any) -> None:
    assert rejected(frame(v=version)).reason == "shape"


@pytest.mark.parametrize("key", ["id", "re"])
@pytest.mark.parametrize("value", [2**64, 2**100, -1, -(2**64), True, 1.0, "1", b"\x01", [1]])
def test_id_and_re_out_of_range_or_wrong_type(key: str, value: Any) -> None:
    assert rejected(frame(**{key: value})).reason == "shape"


@pytest.mark.parametrize("value", [0, 1, 2**64 - 1])
def test_id_and_re_range_edges(value: int) -> None:
    env = decode(frame(id=value, re=value))
    assert env.id == env.re == value


def test_id_null_is_rejected_but_re_null_is_absent() -> None:
    assert rejected(frame(id=None)).reason == "shape"
    assert decode(frame(re=None)).re is None


@pytest.mark.parametrize(
    "kind", ["", "x" * (MAX_KIND_LENGTH + 1), "é" * 65, 7, b"data", None, ["data"], True]
)
def test_bad_kind(kind: Any) -> None:
    assert rejected(frame(k=kind)).reason == "shape"


@pytest.mark.parametrize("kind", ["x", "x" * MAX_KIND_LENGTH, "😀" * MAX_KIND_LENGTH])
def test_kind_limits(kind: str) -> None:
    assert decode(frame(k=kind)).kind == kind


@pytest.mark.parametrize("sender", ["x" * (MAX_SENDER_LENGTH + 1), b"alice", None, 1, ["a"]])
def test_bad_sender(sender: Any) -> None:
    assert rejected(frame(s=sender)).reason == "shape"


@pytest.mark.parametrize("sender", ["", "x" * MAX_SENDER_LENGTH, "😀" * MAX_SENDER_LENGTH])
def test_sender_limits(sender: str) -> None:
    assert decode(frame(s=sender)).sender == sender


@pytest.mark.parametrize("deadline", [math.nan, math.inf, -math.inf, "soon", True, b"\x00", [1.0]])
def test_bad_deadline(deadline: Any) -> None:
    assert rejected(frame(dl=deadline)).reason == "shape"


@pytest.mark.parametrize(
    "encoded",
    ["f93e00", "fa3fc00000", "fb3ff8000000000000"],  # 1.5 as float16, float32, float64
)
def test_deadline_any_float_width(encoded: str) -> None:
    data = bytes([0xA5]) + frame()[1:] + cbor2.dumps("dl") + bytes.fromhex(encoded)
    assert decode(data).deadline == 1.5


def test_integer_deadline_becomes_float() -> None:
    env = decode(frame(dl=1767225600))
    assert env.deadline == 1767225600.0 and type(env.deadline) is float


@pytest.mark.parametrize("shm", [{}, 1, "ref", b"ref", True])
def test_shm_must_be_an_array(shm: Any) -> None:
    assert rejected(frame(shm=shm)).reason == "shape"


def test_shm_is_carried_through() -> None:
    refs = [{"name": "/seg-1", "offset": 0, "size": 4096}, [1, 2], "x"]
    env = decode(frame(shm=refs))
    assert env.shm == tuple(refs)
    assert decode(encode(env)).shm == tuple(refs)
    assert decode(frame(shm=None)).shm is None


def test_non_preferred_integer_width_and_key_order_are_accepted() -> None:
    data = bytes.fromhex("a462696400617360616b6464617461617601")  # id, s, k, v
    assert decode(data) == Envelope(kind="data", sender="", id=0)
    long_id = bytes.fromhex("a461761801616b64646174616173606269641b0000000000000005")
    assert decode(long_id).id == 5
