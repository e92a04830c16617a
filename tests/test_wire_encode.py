"""The CBOR envelope codec (``patterns._wire``), pure: round trips of any envelope and body
(hypothesis), and the encode side (sizes, unencodable values, key order, the hierarchy).
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from typing import Any

import cbor2
import pytest
from _wire_cases import ROUND_TRIP, bodies, envelopes, same, same_envelope
from hypothesis import given
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
