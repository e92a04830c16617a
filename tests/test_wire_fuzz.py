"""The CBOR envelope codec (``patterns._wire``) fuzzed with hypothesis: arbitrary bytes,
random CBOR heads, envelope-shaped maps, mutated valid frames, prefixes and trailing bytes:
each either decodes or is ``MalformedMessage`` with a known reason, never anything else.
"""

from __future__ import annotations

from typing import Any

import cbor2
from _wire_cases import BASE, FUZZ, LIGHT_ENVELOPES, REASONS, body_frame, rejected, scalars
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns import Envelope, MalformedMessage, decode, decode_body, encode


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
