"""The shared-memory reference codec (``patterns.shm.ref``): pure tests, no files.

Valid references survive ``to_wire`` -> CBOR -> ``from_wire``; every kind of junk a peer
could send is rejected with :class:`BadReference` (and nothing else), with the reason
that names the failed check.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns import ConsensusError
from patterns.errors import BadReference, SharedMemoryError
from patterns.shm.ref import MAX_SEGMENT_SIZE, TOKEN_SIZE, ShmRef, check_name, make_name

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD_NAME = "nngc.1234." + "ab" * 16
GOOD_TOKEN = bytes(range(TOKEN_SIZE))

names = st.builds(
    lambda pid, suffix: f"nngc.{pid}.{suffix}",
    st.integers(1, 2**32 - 1),
    st.text("0123456789abcdef", min_size=32, max_size=32),
)
sizes = st.integers(0, MAX_SEGMENT_SIZE)


@st.composite
def refs(draw: st.DrawFn) -> ShmRef:
    offset = draw(sizes)
    length = draw(st.integers(0, MAX_SEGMENT_SIZE - offset))
    return ShmRef(draw(names), draw(st.binary(min_size=TOKEN_SIZE, max_size=TOKEN_SIZE)), offset, length)


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=60)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(refs())
def test_round_trip_through_cbor(ref: ShmRef) -> None:
    wire = ref.to_wire()
    assert wire == [ref.name, ref.token, ref.offset, ref.length]
    assert ShmRef.from_wire(cbor2.loads(cbor2.dumps(wire))) == ref
    assert ShmRef.from_wire(tuple(wire)) == ref
    assert ref.end == ref.offset + ref.length
    assert ref.owner_pid == int(ref.name.split(".")[1])


@FUZZ
@given(cbor_values)
def test_junk_is_rejected_with_bad_reference_only(junk: Any) -> None:
    try:
        ShmRef.from_wire(cbor2.loads(cbor2.dumps(junk)))
    except BadReference as exc:
        assert isinstance(exc, SharedMemoryError) and isinstance(exc, ValueError)
        assert exc.reason in {"shape", "name", "token", "range"}
        assert str(exc)


@FUZZ
@given(refs(), st.integers(0, 3), cbor_values)
def test_one_wrong_item_is_rejected(ref: ShmRef, position: int, junk: Any) -> None:
    wire = ref.to_wire()
    wire[position] = junk
    try:
        decoded = ShmRef.from_wire(wire)
    except BadReference:
        return
    assert decoded.to_wire() == wire  # the junk happened to be a valid value for that field


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/etc/passwd",
        "nngc.1.zz",
        "nngc.1." + "AB" * 16,
        "nngc.0." + "ab" * 16,
        "nngc.01." + "ab" * 16,
        "nngc.-1." + "ab" * 16,
        "nngc.99999999999." + "ab" * 16,
        "nngc.4294967296." + "ab" * 16,
        "nngc.1." + "ab" * 15,
        "nngc.1." + "ab" * 17,
        "nngc.1." + "ab" * 16 + "\n",
        "nngc.1." + "ab" * 16 + "/..",
        "nngc.1./" + "ab" * 16,
        "x/nngc.1." + "ab" * 16,
        "nngc.1.." + "ab" * 16,
        "nngc.١." + "ab" * 16,  # a non-ASCII digit
        "",
        "nngc." + "1" * 10_000,
    ],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(BadReference) as caught:
        ShmRef.from_wire([name, GOOD_TOKEN, 0, 1])
    assert caught.value.reason == "name"
    with pytest.raises(BadReference):
        check_name(name)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ([GOOD_NAME, GOOD_TOKEN, 0], "shape"),
        ([GOOD_NAME, GOOD_TOKEN, 0, 1, 2], "shape"),
        ([], "shape"),
        ({"name": GOOD_NAME}, "shape"),
        (GOOD_NAME, "shape"),
        (None, "shape"),
        ([b"nngc.1." + b"ab" * 16, GOOD_TOKEN, 0, 1], "name"),
        ([GOOD_NAME, GOOD_TOKEN.hex(), 0, 1], "shape"),
        ([GOOD_NAME, bytearray(GOOD_TOKEN), 0, 1], "shape"),
        ([GOOD_NAME, GOOD_TOKEN[:-1], 0, 1], "token"),
        ([GOOD_NAME, GOOD_TOKEN + b"x", 0, 1], "token"),
        ([GOOD_NAME, GOOD_TOKEN, True, 1], "shape"),
        ([GOOD_NAME, GOOD_TOKEN, 0, False], "shape"),
        ([GOOD_NAME, GOOD_TOKEN, 0.0, 1], "shape"),
        ([GOOD_NAME, GOOD_TOKEN, 0, "1"], "shape"),
        ([GOOD_NAME, GOOD_TOKEN, -1, 1], "range"),
        ([GOOD_NAME, GOOD_TOKEN, 0, -1], "range"),
        ([GOOD_NAME, GOOD_TOKEN, 2**64, 1], "range"),
        ([GOOD_NAME, GOOD_TOKEN, 0, 2**200], "range"),
        ([GOOD_NAME, GOOD_TOKEN, MAX_SEGMENT_SIZE, 1], "range"),
        ([GOOD_NAME, GOOD_TOKEN, MAX_SEGMENT_SIZE // 2 + 1, MAX_SEGMENT_SIZE // 2], "range"),
    ],
)
def test_each_rule(wire: Any, reason: str) -> None:
    with pytest.raises(BadReference) as caught:
        ShmRef.from_wire(wire)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ConsensusError)


def test_limits_are_inclusive() -> None:
    assert ShmRef(GOOD_NAME, GOOD_TOKEN, MAX_SEGMENT_SIZE, 0).end == MAX_SEGMENT_SIZE
    assert ShmRef(GOOD_NAME, GOOD_TOKEN, 0, MAX_SEGMENT_SIZE).length == MAX_SEGMENT_SIZE
    assert ShmRef("nngc.4294967295." + "0" * 32, GOOD_TOKEN, 0, 0).owner_pid == 2**32 - 1


def test_the_error_names_the_input() -> None:
    with pytest.raises(BadReference, match=r"'nngc\.1\.zz'"):
        ShmRef.from_wire(["nngc.1.zz", GOOD_TOKEN, 0, 1])
    with pytest.raises(BadReference, match=r"offset -5") as caught:
        ShmRef.from_wire([GOOD_NAME, GOOD_TOKEN, -5, 1])
    assert caught.value.name == GOOD_NAME


def test_a_ref_is_a_frozen_value() -> None:
    ref = ShmRef(GOOD_NAME, GOOD_TOKEN, 1, 2)
    with pytest.raises(AttributeError):
        ref.offset = 3  # type: ignore[misc]
    assert ref == ShmRef(GOOD_NAME, GOOD_TOKEN, 1, 2) and hash(ref) == hash(
        ShmRef(GOOD_NAME, GOOD_TOKEN, 1, 2)
    )
    assert not hasattr(ref, "__dict__")


def test_make_name() -> None:
    assert make_name(42, "0" * 32) == "nngc.42." + "0" * 32
    with pytest.raises(BadReference):
        make_name(0, "0" * 32)
