"""A respondent's surveys read as fields and its replies written from a shape (what a room
member does per poll) must be exactly what the envelope's own path reads and writes, and
refuse (and count) exactly what it refuses; a surveyor's replies taken as fields likewise.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from _frames import damaged, frame_dict, plain_values, take_survey
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns import HOLE, Envelope, IncomingSurvey, MalformedMessage, Respondent
from patterns._wire import common_frame

PROPERTY = settings(max_examples=300)

scalars = (st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.integers(-30, 30)
           | st.floats(allow_nan=False) | st.text(max_size=300) | st.binary(max_size=300))  # fmt: skip
ids = st.integers(0, 2**64 - 1) | st.integers(2**32, 2**64 - 1)
polls = st.builds(
    lambda sender, ident, deadline, question, key: Envelope("poll", sender, ident, {key: question}, None, deadline),
    st.sampled_from(["host", "", "other"]), ids, st.floats(allow_infinity=False, allow_nan=False) | st.just(1.7e9),
    scalars | plain_values(40), st.sampled_from(["question", "question", "q"]),
)  # fmt: skip
others = st.builds(
    Envelope, kind=st.sampled_from(["poll", "vote", "deliberate"]), sender=st.sampled_from(["host", ""]),
    id=ids, body=plain_values(40), re=st.none() | ids, deadline=st.none() | st.floats(allow_nan=False),
)  # fmt: skip


def _respondent(expecting: bool) -> Respondent:
    """One socket, never opened: its reading and its counters (no NNG)."""
    sock = Respondent(name="m0", max_message_size=4096)
    sock._msg_out = None  # (set when opened: _take passes it to _receive_body, replaced here)
    if expecting:
        sock.expect(sock.shape("poll", re=False, deadline=True, body={"question": HOLE}, sender="host", scalars=True))
    return sock


@pytest.fixture(scope="module", params=["common", "shape"])
def respondent(request: pytest.FixtureRequest) -> Respondent:
    return _respondent(request.param == "shape")




def agree(sock: Respondent, data: bytes) -> None:
    """The survey read as fields is the envelope the general path decodes (fields and the
    envelope built from them), or the same refusal, counted once more on either path."""
    before = sock._malformed
    try:
        expected: Envelope | MalformedMessage = sock._unpack(data)
    except MalformedMessage as exc:
        expected = exc
    middle = sock._malformed
    got = take_survey(sock, data)
    after = sock._malformed
    if isinstance(expected, MalformedMessage):
        assert isinstance(got, MalformedMessage)
        assert (str(got), got.reason) == (str(expected), expected.reason)
        assert middle - before == after - middle == 1
        return
    assert isinstance(got, IncomingSurvey)
    fields = (got.kind, got.sender, got.id, got.body, got.wall)
    assert repr(fields) == repr((expected.kind, expected.sender, expected.id, expected.body, expected.deadline))
    envelope = got.envelope
    assert repr(envelope) == repr(expected)  # (repr: a NaN or -0.0 compares as itself)
    assert (envelope.size, envelope.weight, envelope.shm) == (expected.size, expected.weight, expected.shm)
    assert after == middle == before


@PROPERTY
@given(polls | others)
def test_a_survey_reads_as_the_envelope_path_reads_it(respondent: Respondent, envelope: Envelope) -> None:
    agree(respondent, cbor2.dumps(frame_dict(envelope)))


@PROPERTY
@given(polls | others, st.data())
def test_a_damaged_survey_is_refused_as_the_envelope_path_refuses_it(
    respondent: Respondent, envelope: Envelope, data: st.DataObject
) -> None:
    agree(respondent, damaged(envelope, data, ["whole", "flip", "cut", "extend", "insert"]))


@PROPERTY
@given(polls, st.data())
def test_a_poll_written_as_the_host_writes_it_reads_alike(
    respondent: Respondent, envelope: Envelope, data: st.DataObject
) -> None:
    """The host's own writer (``common_frame``): the bytes a member's shape reads."""
    frame = common_frame(envelope.kind, envelope.sender, envelope.id, envelope.body, None, envelope.deadline,
                         limit=4096, max_size=2**20)  # fmt: skip
    if frame is not None:
        agree(respondent, frame)


def test_a_survey_over_max_items_is_refused_as_the_envelope_path_refuses_it() -> None:
    sock = Respondent(name="m0", max_message_size=4096, max_items=4)
    sock._msg_out = None
    sock.expect(sock.shape("poll", re=False, deadline=True, body={"question": HOLE}, sender="host", scalars=True))
    data = common_frame("poll", "host", 2**62 + 1, {"question": 5}, None, 1.7e9, limit=4096)
    assert data is not None
    agree(sock, data)
    assert sock._malformed == 2


@PROPERTY
@given(ids, ids, scalars | plain_values(40), st.sampled_from([4096, 100, 2**16]),
       st.sampled_from([HOLE, {"answer": HOLE}]))  # fmt: skip
def test_a_scalar_shape_writes_what_the_common_writer_writes(
    ident: int, re: int, value: Any, limit: int, body: Any
) -> None:
    """``Shape.write`` with scalars gives exactly ``common_frame``'s bytes, or None (the
    general path's); and reads back what it wrote."""
    sock = Respondent(name="m0")
    shape = sock.shape("answer", re=True, deadline=False, body=body, scalars=True)
    got = shape.write(ident, re, None, value, limit)
    if got is None:
        return
    full = shape.fill(value)
    assert got == common_frame("answer", "m0", ident, full, re, None, limit=limit, max_size=2**20)
    back = shape.read(got)
    assert back is not None and repr(back) == repr((ident, re, None, full))


def test_a_string_only_shape_still_takes_strings_only() -> None:
    shape = Respondent(name="m0").shape("answer", re=True, deadline=False, body={"answer": HOLE})
    for value in (7, None, True, 1.5):
        assert shape.write(2**62, 2**62, None, value, 4096) is None
    scalar = Respondent(name="m0").shape("answer", re=True, deadline=False, body={"answer": HOLE}, scalars=True)
    for value in (7, None, True, 1.5, -(2**64), 2**64 - 1):
        assert scalar.write(2**62, 2**62, None, value, 4096) is not None
    for value in (float("nan"), float("inf"), 2**64, -(2**64) - 1, [1], {"a": [[[[[[[1]]]]]]]}, dict.fromkeys("abcdefghijklmnopqrstuvwxy")):
        assert scalar.write(2**62, 2**62, None, value, 4096) is None
    for made in (shape, scalar):  # a map of a few scalars and strings: either shape writes it
        assert made.write(2**62, 2**62, None, {"a": 1, "why": "x" * 300}, 4096) is not None
