"""The CBOR envelope codec (``patterns._wire``): pure tests, no sockets.

Round trips and fuzzing with hypothesis, one targeted case per rejection rule (each
checking the exact ``reason``), the encode side, and the examples of
``docs/wire-format.md`` so that the document cannot drift from the code.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns import (
    DEFAULT_MAX_MESSAGE_SIZE,
    VERSION,
    ConsensusError,
    EncodeError,
    Envelope,
    MalformedMessage,
    MessageError,
    MessageTooLarge,
    decode,
    decode_body,
    encode,
    encode_body,
)
from patterns._wire import MAX_DEPTH, MAX_KIND_LENGTH, MAX_SENDER_LENGTH

DOC = Path(__file__).resolve().parent.parent / "docs" / "wire-format.md"
REASONS = {"size", "cbor", "shape", "version", "items", "key", "cost", "sealed"}
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BASE: dict[str, Any] = {"v": 1, "k": "data", "s": "", "id": 0}


def frame(**changes: Any) -> bytes:
    """A CBOR envelope map built by hand: BASE with ``changes`` applied (``...`` deletes a key)."""
    fields = dict(BASE)
    for key, value in changes.items():
        if value is ...:
            del fields[key]
        else:
            fields[key] = value
    return cbor2.dumps(fields)


def body_frame(body_cbor: bytes) -> bytes:
    """A valid 5-key envelope whose body ``b`` is the raw CBOR item ``body_cbor``."""
    return bytes([0xA5]) + frame()[1:] + cbor2.dumps("b") + body_cbor


def rejected(data: bytes | bytearray | memoryview, **kwargs: Any) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        decode(data, **kwargs)
    exc = info.value
    assert exc.reason in REASONS
    assert exc.size == len(data)
    return exc


def nested_lists(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def same(a: Any, b: Any) -> bool:
    """Structural equality that also checks types (True is not 1) and treats NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(value, b[key]) for key, value in a.items())
    return bool(a == b)


def same_envelope(a: Envelope, b: Envelope) -> bool:
    return (
        (a.kind, a.sender, a.id, a.re) == (b.kind, b.sender, b.id, b.re)
        and same(a.deadline, b.deadline)
        and same(a.body, b.body)
        and same(a.shm, b.shm)
    )


# ---------------------------------------------------------------------------- strategies
EDGE_INTS = [
    0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1,
    -1, -24, -25, -256, -257, -(2**32), -(2**63), -(2**64), -(2**64) - 1, 2**100, -(2**100),
]  # fmt: skip
integers = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),  # major types 0 and 1
    st.integers(min_value=-(2**300), max_value=2**300),  # mostly bignums (tags 2 and 3)
)
u64 = st.integers(min_value=0, max_value=2**64 - 1)


def scalars(*, nan: bool) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        integers,
        st.floats(allow_nan=nan, allow_infinity=True),
        st.text(max_size=20),
        st.binary(max_size=20),
    )


def bodies(*, nan: bool = True, max_leaves: int = 25) -> st.SearchStrategy[Any]:
    # max_leaves bounds the depth too: nowhere near MAX_DEPTH (64) levels.
    return st.recursive(
        scalars(nan=nan),
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            # map keys: text or bytes only (any other key is refused, reason "key": see bad_keys)
            st.dictionaries(good_keys, children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


good_keys = st.text(max_size=8) | st.binary(max_size=8)
bad_keys = st.one_of(
    integers,
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.tuples(integers, integers),
)
"""Map keys that decode to something other than text or bytes: refused everywhere."""


def envelopes(*, nan: bool = True, light: bool = False) -> st.SearchStrategy[Envelope]:
    """Any valid envelope; ``light`` ones are smaller and faster to draw (for the fuzz tests)."""
    return st.builds(
        Envelope,
        kind=st.text(min_size=1, max_size=8 if light else MAX_KIND_LENGTH),
        sender=st.text(max_size=8 if light else MAX_SENDER_LENGTH),
        id=u64,
        body=bodies(nan=nan, max_leaves=6 if light else 25),
        re=st.none() | u64,
        deadline=st.none() | st.floats(allow_nan=False, allow_infinity=False),
        shm=st.none() | st.lists(bodies(nan=nan, max_leaves=3), max_size=2).map(tuple),
    )


LIGHT_ENVELOPES = envelopes(light=True)


# ---------------------------------------------------------------------------- round trips
@ROUND_TRIP
@given(envelopes())
def test_round_trip_any_envelope(env: Envelope) -> None:
    data = encode(env)
    back = decode(data)
    assert same_envelope(back, env), (env, back)
    assert encode(back) == data  # the encoder is deterministic for what it decodes


@ROUND_TRIP
@given(envelopes(nan=False))
def test_round_trip_is_plain_equality_without_nan(env: Envelope) -> None:
    assert decode(encode(env)) == env


@ROUND_TRIP
@given(bodies())
def test_body_codec_round_trip(value: Any) -> None:
    assert same(decode_body(encode_body(value)), value)


@given(st.lists(st.characters(codec="utf-8"), min_size=1, max_size=MAX_KIND_LENGTH).map("".join))
def test_kind_limit_counts_code_points_not_bytes(kind: str) -> None:
    env = Envelope(kind=kind, sender="😀" * MAX_SENDER_LENGTH, id=1)
    assert decode(encode(env)) == env


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode(Envelope(kind="data", sender="a", id=5, body=[1, 2]))
    assert decode(bytearray(data)) == decode(memoryview(data)) == decode(data)


def test_constants() -> None:
    assert VERSION == 1
    assert DEFAULT_MAX_MESSAGE_SIZE == 16 * 1024 * 1024
    assert MAX_DEPTH == 64
    assert (MAX_KIND_LENGTH, MAX_SENDER_LENGTH) == (64, 256)


# ---------------------------------------------------------------------------- fuzzing
def decode_or_malformed(data: bytes, **kwargs: Any) -> None:
    """The fuzz property: ``decode`` returns an Envelope or raises MalformedMessage, nothing else."""
    try:
        env = decode(data, **kwargs)
    except MalformedMessage as exc:
        assert exc.reason in REASONS
        assert exc.size == len(data)
    else:
        assert isinstance(env, Envelope)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    decode_or_malformed(data)
    try:
        decode_body(data)
    except MalformedMessage as exc:
        assert exc.reason in {"size", "cbor", "items", "key", "cost"}


@st.composite
def cbor_heads(draw: st.DrawFn) -> bytes:
    """Streams of random CBOR heads (all major types, every additional-info value,
    tags, indefinite lengths, breaks, payloads): reaches far past the first byte."""
    out = bytearray()
    for _ in range(draw(st.integers(1, 24))):
        major = draw(st.integers(0, 7))
        info = draw(st.sampled_from([*range(24), 24, 25, 26, 27, 28, 31]))
        out.append(major << 5 | info)
        if 24 <= info <= 27:
            out += draw(st.binary(min_size=1 << (info - 24), max_size=1 << (info - 24)))
        elif major in (2, 3) and info < 24:
            out += draw(st.binary(min_size=info, max_size=info))
    return bytes(out)


@FUZZ
@given(cbor_heads())
def test_fuzz_random_cbor_heads(data: bytes) -> None:
    decode_or_malformed(data)


@FUZZ
@given(st.one_of(st.just(b""), cbor_heads()))
def test_fuzz_valid_envelope_prefix_with_random_body(body: bytes) -> None:
    decode_or_malformed(body_frame(body))


# Values of the wrong type or out of range for the envelope's own keys. Integers stay
# within +-2**1000 (inside float range, well under 4300 decimal digits): larger ones hit
# the bug pinned by test_huge_integer_in_routing_key_is_malformed.
wild_values = st.recursive(
    st.one_of(
        scalars(nan=True),
        st.integers(min_value=-(2**1000), max_value=2**1000),
        st.sampled_from([1, 2, 0, -1, 2**64 - 1, 2**64, "data", "", "x" * 65, "x" * 257]),
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)
wild_keys = st.sampled_from(["v", "k", "s", "id", "re", "dl", "b", "shm", "x", ""]) | st.integers(-2, 2)


@settings(FUZZ, max_examples=300)
@given(st.dictionaries(wild_keys, wild_values, max_size=9), st.booleans())
def test_fuzz_envelope_shaped_maps(fields: dict[Any, Any], from_base: bool) -> None:
    if from_base:
        fields = {**BASE, **fields}
    decode_or_malformed(cbor2.dumps(fields))


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """An encoded envelope with 1..4 random mutations: flip, overwrite, insert, delete, truncate, extend."""
    data = bytearray(encode(draw(LIGHT_ENVELOPES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 9))]
        elif op == "truncate":
            del data[pos:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@FUZZ
@given(mutated_frames())
def test_fuzz_mutated_valid_frames(data: bytes) -> None:
    decode_or_malformed(data)


@settings(FUZZ, max_examples=200)
@given(LIGHT_ENVELOPES, st.data())
def test_strict_prefixes_and_trailing_bytes_are_rejected(env: Envelope, data: st.DataObject) -> None:
    encoded = encode(env)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    assert rejected(encoded[:cut]).reason == "cbor"
    tail = data.draw(st.binary(min_size=1, max_size=16), label="tail")
    assert rejected(encoded + tail).reason == "cbor"


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
    assert rejected(cbor2.dumps({**BASE, b"v": 0})).reason == "shape"


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


# ---------------------------------------------------------------------------- encode side
def test_message_too_large() -> None:
    env = Envelope(kind="data", sender="a", id=1, body=b"x" * 1000)
    size = len(encode(env))
    assert len(encode(env, max_size=size)) == size
    with pytest.raises(MessageTooLarge) as info:
        encode(env, max_size=size - 1)
    assert isinstance(info.value, MessageError) and isinstance(info.value, ConsensusError)


def test_message_too_large_at_the_default_limit() -> None:
    with pytest.raises(MessageTooLarge):
        encode(Envelope(kind="data", sender="", id=1, body=bytes(DEFAULT_MAX_MESSAGE_SIZE)))


@pytest.mark.parametrize("body", [object(), {"a": object()}, [1, lambda: 0], {1, 2, object()}])
def test_unencodable_body_raises_encode_error(body: Any) -> None:
    with pytest.raises(EncodeError) as info:
        encode(Envelope(kind="data", sender="", id=1, body=body))
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, MessageError) and isinstance(info.value, ConsensusError)
    with pytest.raises(TypeError):
        encode_body(body)


@pytest.mark.parametrize("ident", [-1, 2**64, 2**100])
def test_encode_rejects_id_out_of_range(ident: int) -> None:
    with pytest.raises(EncodeError):
        encode(Envelope(kind="data", sender="", id=ident))


def test_exception_hierarchy() -> None:
    assert issubclass(MalformedMessage, ValueError)
    assert issubclass(MalformedMessage, MessageError)
    assert issubclass(MalformedMessage, ConsensusError)
    assert issubclass(EncodeError, TypeError)
    assert issubclass(EncodeError, ConsensusError)
    assert issubclass(MessageTooLarge, ConsensusError)
    exc = MalformedMessage("x", reason="shape", size=3)
    assert (exc.reason, exc.size, str(exc)) == ("shape", 3, "x")


def test_encoder_key_order_and_omitted_optionals() -> None:
    env = Envelope(kind="k", sender="s", id=1, body=0, re=2, deadline=3.0, shm=(4,))
    assert list(cbor2.loads(encode(env))) == ["v", "k", "s", "id", "re", "dl", "b", "shm"]
    assert list(cbor2.loads(encode(Envelope(kind="k", sender="s", id=1)))) == ["v", "k", "s", "id"]


def test_encoder_writes_the_deadline_as_float64() -> None:
    data = encode(Envelope(kind="k", sender="s", id=1, deadline=1767225600))
    assert data.endswith(cbor2.dumps("dl") + bytes.fromhex("fb41da556e40000000"))
    assert type(cbor2.loads(data)["dl"]) is float


# ---------------------------------------------------------------------------- docs/wire-format.md
def doc_blocks(lang: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def doc_hex_examples() -> list[bytes]:
    return [bytes.fromhex("".join(block.split())) for block in doc_blocks("hex")]


def test_doc_has_examples() -> None:
    assert len(doc_hex_examples()) >= 4
    assert len(doc_blocks("hex-rejected")) >= 1
    assert len(doc_blocks("cbor-bytes")) >= 1


@pytest.mark.parametrize("index", range(len(doc_hex_examples()) if DOC.exists() else 0))
def test_doc_hex_example_decodes(index: int) -> None:
    data = doc_hex_examples()[index]
    env = decode(data)
    assert isinstance(env, Envelope)
    assert encode(env) == data


def test_doc_envelope_expressions_match_hex_examples() -> None:
    text = DOC.read_text(encoding="utf-8")
    expressions = re.findall(r"`(Envelope\(.*?\))`", text)
    examples = doc_hex_examples()
    assert len(expressions) == len(examples)
    for source, data in zip(expressions, examples, strict=True):
        env = eval(source, {"__builtins__": {}}, {"Envelope": Envelope, "True": True, "None": None})
        assert encode(env) == data, source
        assert decode(data) == env, source


def test_doc_byte_breakdowns_match_examples() -> None:
    examples = doc_hex_examples()
    for block in doc_blocks("cbor-bytes"):
        tokens = [tok for line in block.splitlines() for tok in line.split("#", 1)[0].split()]
        assert tokens and all(re.fullmatch(r"[0-9a-f]{2}", tok) for tok in tokens), block
        data = bytes.fromhex("".join(tokens))
        assert any(data in example for example in examples), block


def test_doc_rejected_frames() -> None:
    lines = [
        line.split("#", 1)[0].split()
        for block in doc_blocks("hex-rejected")
        for line in block.splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert len(lines) >= 10
    for reason, hex_frame in lines:
        assert reason in REASONS
        assert rejected(bytes.fromhex(hex_frame)).reason == reason, hex_frame


@pytest.mark.parametrize(
    "body",
    [
        datetime.datetime(2026, 1, 1),
        {1, 2},
        frozenset(),
        decimal.Decimal("1.5"),
        uuid.uuid4(),
        1j,
        [re.compile("x")],
    ],
)
def test_encoder_refuses_values_that_would_become_tags(body: object) -> None:
    with pytest.raises(EncodeError, match="CBOR tag"):
        encode(Envelope(kind="data", sender="a", id=1, body=body))


@pytest.mark.parametrize(
    "fields",
    [{"kind": ""}, {"kind": "k" * 65}, {"sender": "s" * 257}, {"id": -1}, {"id": True}, {"re": 2**64},
     {"deadline": float("nan")}, {"deadline": float("inf")}],
)  # fmt: skip
def test_encoder_refuses_headers_receivers_reject(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"kind": "data", "sender": "a", "id": 1}
    with pytest.raises(EncodeError):
        encode(Envelope(**(base | fields)))  # type: ignore[arg-type]
