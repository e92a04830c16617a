"""The codec's fast path (``patterns._codec_plain``): plain values skip cbor2's hooks.

A value that holds only exact plain types must encode to the same bytes as through the
hooked encoder; anything else, at any depth or position, must take the hooked encoder,
so tagged types are still refused and buffers still reach shared memory.
"""

from __future__ import annotations

import array
import datetime
import decimal
import enum
import fractions
import uuid
from collections import ChainMap, Counter, OrderedDict, defaultdict, deque
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from _shm import no_leak, shm_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns import EncodeError, Envelope, decode
from patterns._cbor import _encode_hooked, encode_body
from patterns._codec_plain import PLAIN_DEPTH, is_plain
from patterns._wire import encode
from patterns.shm.codec import Placement, SharedMemory, resolve

__all__ = ["no_leak", "shm_dir"]  # fixtures

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.binary(max_size=10).map(bytearray),
)
keys = st.one_of(st.text(max_size=5), st.binary(max_size=5))  # the only keys receivers take
bad_keys = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.tuples(st.integers(), st.text(max_size=3)),
)
plain_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.lists(st.lists(scalars, max_size=4), max_size=5),  # the list-of-lists shape of batches
        st.dictionaries(keys, children, max_size=5),
        # more than a few items: the checks that run over a whole container at once
        st.lists(children, min_size=9, max_size=12),
        st.lists(st.lists(scalars, max_size=4), min_size=9, max_size=12),
        st.dictionaries(keys, children, min_size=9, max_size=12),
    ),
    max_leaves=30,
)


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


TAGGED = [datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1), decimal.Decimal("1.5"),
          fractions.Fraction(1, 3), uuid.UUID(int=7), {1, 2}, frozenset({3}), 1j]  # fmt: skip
NOT_PLAIN = [
    *TAGGED,
    memoryview(b"ab"),
    array.array("b", [1]),
    Colour.RED,
    Text("x"),
    OrderedDict(a=1),
    object(),
]


def buried(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``leaf`` somewhere inside plain containers, among plain siblings."""
    siblings = st.lists(scalars, max_size=3)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(siblings, inner, siblings).map(lambda t: [*t[0], t[1], *t[2]]),
            st.tuples(siblings, inner).map(lambda t: (*t[0], t[1])),
            st.tuples(inner, st.lists(st.lists(scalars, max_size=3), max_size=3)).map(
                lambda t: [*t[1], [1, t[0]]]
            ),
            st.tuples(st.dictionaries(st.text(max_size=3), scalars, max_size=3), inner).map(
                lambda t: t[0] | {"here": t[1]}
            ),
            # among more than a few siblings (lists, lists of lists, maps)
            st.tuples(st.lists(scalars, min_size=9, max_size=10), inner).map(lambda t: [*t[0], t[1]]),
            st.tuples(st.lists(st.lists(scalars, max_size=2), min_size=9, max_size=10), inner).map(
                lambda t: [*t[0], [0, t[1]]]
            ),
            st.tuples(st.dictionaries(st.text(max_size=3), scalars, min_size=9, max_size=10), inner).map(
                lambda t: t[0] | {"here": t[1]}
            ),
        ),
        max_leaves=6,
    )


@PROPERTY
@given(plain_values)
def test_plain_values_encode_as_through_the_hooked_encoder(value: Any) -> None:
    assert is_plain(value)
    assert encode_body(value) == _encode_hooked(value)


@PROPERTY
@given(buried(st.sampled_from(NOT_PLAIN)))
def test_one_value_that_is_not_plain_anywhere_takes_the_hooked_encoder(value: Any) -> None:
    assert not is_plain(value)


@PROPERTY
@given(buried(st.sampled_from(TAGGED)))
def test_tagged_types_are_refused_wherever_they_sit(value: Any) -> None:
    with pytest.raises(EncodeError, match="CBOR tag"):
        encode_body(value)


@pytest.mark.parametrize("key", [frozenset({1}), (1, frozenset()), Colour.RED, Text("k"), uuid.UUID(int=1)])
def test_map_keys_are_checked_too(key: Any) -> None:
    assert not is_plain({"a": 1, key: 2})
    assert not is_plain([[1, 2], [{key: 1}]])
    assert not is_plain({str(n): n for n in range(20)} | {key: 2})  # among many keys


@PROPERTY
@given(bad_keys.flatmap(lambda key: buried(st.builds(lambda value: {key: value}, scalars))))
def test_keys_other_than_text_or_bytes_are_refused_wherever_they_sit(value: Any) -> None:
    assert not is_plain(value)
    with pytest.raises(EncodeError, match="map keys must be text or bytes"):
        encode_body(value)


class Word(enum.StrEnum):
    YES = "yes"


@pytest.mark.parametrize(
    "wrap",
    [OrderedDict, Counter, lambda d: defaultdict(int, d), MappingProxyType, ChainMap, lambda d: deque([d])],
)
def test_bad_keys_in_other_mappings_and_sequences_are_refused(wrap: Any) -> None:
    # cbor2 writes any Mapping as a map and any Sequence as an array: the key rule follows.
    with pytest.raises(EncodeError, match=r"a map key 1 \(int\)"):
        encode_body(wrap({1: 2}))
    with pytest.raises(EncodeError, match=r"a map key 1 \(int\).* under the key 'x'"):
        encode_body({"x": wrap({1: 2})})


def test_text_and_bytes_key_subclasses_are_written_as_text_and_taken() -> None:
    body = {Word.YES: 1, Text("t"): 2, "list": [{Word.YES: b"v"}]}
    assert decode(encode(Envelope("data", "a", 1, body))).body == {"yes": 1, "t": 2, "list": [{"yes": b"v"}]}


def test_buffers_other_than_bytes_are_written_as_byte_strings() -> None:
    body = [[1, memoryview(b"ab")], [2, array.array("b", [3])]]
    assert not is_plain(body)
    assert decode(encode(Envelope("data", "a", 1, body))).body == [[1, b"ab"], [2, b"\x03"]]


def test_nesting_past_the_plain_depth_takes_the_hooked_encoder() -> None:
    def nested(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth):
            value = [value]
        return value

    assert is_plain(nested(PLAIN_DEPTH)) and not is_plain(nested(PLAIN_DEPTH + 1))
    assert not is_plain([[nested(PLAIN_DEPTH - 1)]])  # through the one-pass list of lists too
    deep = nested(PLAIN_DEPTH + 5)
    assert encode_body(deep) == _encode_hooked(deep)


def test_a_cycle_is_an_encode_error() -> None:
    loop: list[Any] = [1]
    loop.append([loop])
    assert not is_plain(loop)
    with pytest.raises(EncodeError):
        encode_body(loop)


def test_text_the_plain_encoder_cannot_write_is_the_same_encode_error() -> None:
    with pytest.raises(EncodeError, match="surrogates"):
        encode_body({"a": "\ud800"})
    assert encode_body(["fine"]) == _encode_hooked(["fine"])  # the encoder is usable again


def test_a_large_byte_string_in_a_plain_body_still_goes_to_shared_memory(shm_dir: Path) -> None:
    policy = SharedMemory(threshold=4096, directory=str(shm_dir))
    big = b"x" * 8192
    placement = Placement(policy, 1)
    data = encode(Envelope("data", "a", 1, [[1, big], [2, b"small"]]), placement=placement)
    placement.sent()
    assert len(placement.refs) == 1 and len(data) < 4096
    body = resolve(decode(data).body, policy)  # decode, then attach (as a receiving socket does)
    assert body[0][1] == big and isinstance(body[0][1], memoryview) and body[1][1] == b"small"


@PROPERTY
@given(buried(st.binary(min_size=16, max_size=20) | st.binary(min_size=16, max_size=20).map(bytearray)))
def test_a_byte_string_at_the_limit_anywhere_is_not_plain(value: Any) -> None:
    """With a limit (the shared-memory threshold), a byte string that long must take the
    hooked encoder, which places it, wherever it sits; without one the value is plain."""
    assert is_plain(value) and not is_plain(value, limit=16)
    assert is_plain(value, limit=21)


@PROPERTY
@given(plain_values)
def test_short_byte_strings_do_not_change_what_is_plain(value: Any) -> None:
    assert is_plain(value, limit=11) is is_plain(value)  # the strategies' byte strings are <= 10 long


def test_a_long_byte_string_as_a_map_key_is_not_plain_either() -> None:
    assert is_plain({b"k" * 16: 1}) and not is_plain({b"k" * 16: 1}, limit=16)


def test_a_body_with_a_buffer_for_shared_memory_is_never_copied_into_a_frame_first(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain encoder would copy the whole buffer into a frame only to have it thrown
    away; with a placement and a byte string at the threshold it is not used at all."""
    import patterns._cbor as wire

    calls: list[str] = []
    real = wire._plain_encoder

    def counted() -> Any:
        calls.append("plain")
        return real()

    monkeypatch.setattr(wire, "_plain_encoder", counted)
    policy = SharedMemory(threshold=4096, directory=str(shm_dir))
    placement = Placement(policy, 1)
    data = encode(Envelope("data", "a", 1, {"big": b"x" * 4096}), placement=placement)
    placement.sent()
    assert len(placement.refs) == 1 and resolve(decode(data).body, policy)["big"] == b"x" * 4096
    assert calls == []
