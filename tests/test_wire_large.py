"""Large byte strings in received frames: cut out and copied once, the same values as cbor2's.

``patterns._cbor.decode_item`` lists the byte strings of 64 KiB or more while it walks the
heads (``patterns._scan.scan``), copies each out once, and lets cbor2 read the rest with a
private tag (28271) in their place; a peer's own use of that tag is refused."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns import MalformedMessage
from patterns._cbor import decode_body
from patterns._scan import LARGE_STRING

LIMIT = 1 << 26


def big(seed: int, extra: int) -> bytes:
    return bytes([seed % 256]) * (LARGE_STRING + extra)


small = st.one_of(st.integers(), st.text(max_size=8), st.binary(max_size=16), st.none(), st.booleans())
larges = st.builds(big, st.integers(0, 255), st.integers(0, 3000))
leaves = st.one_of(small, larges)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=60)
@given(values)
def test_a_frame_with_large_strings_decodes_as_cbor2_reads_it(value: Any) -> None:
    data = cbor2.dumps(value)
    assert decode_body(data, max_size=LIMIT) == cbor2.loads(data)


def test_a_large_byte_string_key_is_left_to_cbor2() -> None:
    value = {big(1, 0): 1, "x": big(2, 5)}
    assert decode_body(cbor2.dumps(value), max_size=LIMIT) == value


@pytest.mark.parametrize("before", [True, False])
@pytest.mark.parametrize("index", [0, 1, 7])
def test_a_peers_own_cut_tag_is_refused(before: bool, index: int) -> None:
    forged = cbor2.CBORTag(28271, index)
    items = [forged, big(3, 0)] if before else [big(3, 0), forged]
    with pytest.raises(MalformedMessage, match="tag 28271"):
        decode_body(cbor2.dumps(items), max_size=LIMIT)


def test_a_truncated_large_string_is_refused() -> None:
    data = cbor2.dumps([1, big(4, 100)])
    with pytest.raises(MalformedMessage):
        decode_body(data[:-10], max_size=LIMIT)


def test_trailing_bytes_after_a_large_string_are_refused() -> None:
    with pytest.raises(MalformedMessage, match="left over"):
        decode_body(cbor2.dumps([big(5, 0)]) + b"\x00", max_size=LIMIT)
