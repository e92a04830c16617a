"""What the envelope codec's tests share (``tests/test_wire_*.py``): hand-built frames,
the rejection check, comparisons that see through NaN, and hypothesis strategies for
bodies and envelopes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from patterns import Envelope, MalformedMessage, decode
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH

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
