"""The envelope's head in Python (``patterns._head``): the same bytes out, the same verdicts in.

The common frame is written without cbor2's map and read without building the frame's dict.
Both must agree exactly with the general path: the bytes cbor2 writes for the frame dict, and
for any received frame, either the same envelope or a fall back to the general decoder (which
then accepts or refuses it with its own words).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from _frames import damaged, frame_dict, plain_values
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import patterns
from patterns import Envelope, MalformedMessage, decode
from patterns._cbor import MAX_DEPTH, decode_nested
from patterns._head import read
from patterns._records import read_map, write_map
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH, encode

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

plain = plain_values(40)
envelopes = st.builds(
    Envelope,
    kind=st.text(min_size=1, max_size=MAX_KIND_LENGTH),
    sender=st.text(max_size=40),
    id=st.integers(0, 2**64 - 1),
    body=plain,
    re=st.none() | st.integers(0, 2**64 - 1),
    deadline=st.none() | st.floats(allow_nan=False, allow_infinity=False),
)


def general(data: bytes) -> Envelope | MalformedMessage:
    """What the general path says about ``data`` (the head path reads only ``bytes``)."""
    try:
        return decode(bytearray(data), measure=False)
    except MalformedMessage as exc:
        return exc


def head(data: bytes) -> Envelope | MalformedMessage:
    try:
        return decode(data, measure=False)
    except MalformedMessage as exc:
        return exc


def same(a: Envelope | MalformedMessage, b: Envelope | MalformedMessage) -> bool:
    if isinstance(a, MalformedMessage) or isinstance(b, MalformedMessage):
        return type(a) is type(b) and str(a) == str(b) and a.reason == b.reason  # type: ignore[union-attr]
    # (repr too: a NaN in a body is not equal to itself, yet both paths read the same NaN)
    return (a == b or repr(a) == repr(b)) and a.size == b.size and a.weight == a.size


@PROPERTY
@given(envelopes)
def test_the_head_writes_what_cbor2_writes_for_the_frame(envelope: Envelope) -> None:
    text_ok = all(not 0xD800 <= ord(c) <= 0xDFFF for c in envelope.kind + envelope.sender)
    assume(text_ok and len(envelope.sender) <= MAX_SENDER_LENGTH)
    assert encode(envelope) == cbor2.dumps(frame_dict(envelope))


@PROPERTY
@given(envelopes)
def test_the_head_reads_what_the_general_path_reads(envelope: Envelope) -> None:
    data = cbor2.dumps(frame_dict(envelope))
    assert read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) is not None
    assert same(head(data), general(data))


@PROPERTY
@given(envelopes, st.data())
def test_a_damaged_frame_gets_the_general_verdict(envelope: Envelope, data: st.DataObject) -> None:
    frame = damaged(envelope, data, ["flip", "cut", "extend", "insert"])
    assert same(head(frame), general(frame))


small_values = st.one_of(st.none(), st.booleans(), st.integers(-30, 2**64 - 1), st.text(max_size=30),
                         st.binary(max_size=30), st.floats(allow_nan=False),
                         st.text(min_size=20, max_size=300), st.binary(min_size=200, max_size=300),
                         st.integers(250, 12000).map(bytes), st.integers(80, 6000).map(lambda n: "ü" * n))  # fmt: skip
small_values = small_values | st.lists(small_values, max_size=5) | st.dictionaries(st.text(max_size=9), small_values,
                                                                                   max_size=5)  # fmt: skip
small_maps = st.dictionaries(st.text(max_size=30), small_values, min_size=1, max_size=5)


@PROPERTY
@given(small_maps, st.data())
def test_a_small_map_body_reads_as_on_the_general_path(body: dict[str, Any], data: st.DataObject) -> None:
    # The map bodies read without cbor2 (``read_map``): whole, damaged, or with a key twice.
    frame = bytearray(cbor2.dumps(frame_dict(Envelope("answer", "m1", 7, body, 5))))
    how = data.draw(st.sampled_from(["whole", "flip", "cut", "twice"]))
    at = data.draw(st.integers(0, len(frame) - 1))
    if how == "flip":
        frame[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del frame[at:]
    elif how == "twice" and len(body) < 4:  # the body's first entry again: a duplicate key
        start = frame.index(cbor2.dumps(body))
        entry = cbor2.dumps({next(iter(body)): next(iter(body.values()))})[1:]
        frame[start] += 1
        frame += entry
    assert same(head(bytes(frame)), general(bytes(frame)))


@pytest.mark.parametrize("extra", [{"x": 1}, {"shm": []}])
def test_other_keys_and_orders_take_the_general_path(extra: dict[str, Any]) -> None:
    frame = {"v": 1, "k": "data", "s": "", "id": 5, **extra, "b": b"x"}
    data = cbor2.dumps(frame)
    assert read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) is None
    reordered = cbor2.dumps({"k": "data", "v": 1, "s": "", "id": 5})
    assert read(reordered, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) is None
    assert decode(reordered, measure=False) == Envelope("data", "", 5)


@pytest.mark.parametrize("depth", [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_the_body_nests_as_deep_on_both_paths(depth: int) -> None:
    body: Any = 0
    for _ in range(depth):
        body = [body]
    data = cbor2.dumps({"v": 1, "k": "data", "s": "", "id": 5, "b": body})
    assert same(head(data), general(data))


def test_a_shared_memory_tag_in_the_body_gets_the_general_verdict() -> None:
    data = cbor2.dumps({"v": 1, "k": "data", "s": "", "id": 5, "b": cbor2.CBORTag(28270, 0)})
    assert same(head(data), general(data))
    assert isinstance(head(data), MalformedMessage)


BODIES: list[Any] = [
    None,
    b"x" * 64,
    {"v": b"abc", "stream": False},
    [1, 2.5, "three"],
    "text",
    7,
    bytearray(b"ab"),
]


@pytest.mark.parametrize("shared_memory", [True, False])
async def test_a_pair_sends_and_receives_common_frames_as_the_general_path(
    shared_memory: bool, address: Callable[[str], str]
) -> None:
    addr = address("ipc")
    async with (
        patterns.Pair(listen=addr, name="a", shared_memory=shared_memory) as a,
        patterns.Pair(dial=addr, name="b", shared_memory=shared_memory) as b,
    ):
        await a.wait_for_peers(1)
        await b.wait_for_peers(1)
        for body in BODIES:
            await a.send(body, re=3, deadline=1.5e9)
            frame = await b.receive_bytes()
            envelope = decode(frame)
            assert frame == encode(Envelope("data", "a", envelope.id, body, 3, 1.5e9))
            await a.send(body)
            assert await b.receive() == (bytes(body) if type(body) is bytearray else body)
        assert b.statistics().malformed == 0


@PROPERTY
@given(
    st.binary(min_size=0, max_size=300) | st.integers(250, 60000).map(lambda n: b"\xc3\xa9" * (n // 2)),
    st.sampled_from([None, 0, 23, 24, 255, 2**32, 2**64 - 1]),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
)
def test_a_string_body_of_any_length_is_written_and_read_as_cbor2_does(
    body: bytes, re: int | None, deadline: float | None
) -> None:
    # Bodies of under 64 KiB are written and read here; longer ones go through cbor2.
    envelope = Envelope("data", "ann", 2**62 + 1, body, re, deadline)
    data = cbor2.dumps(frame_dict(envelope))
    assert encode(envelope) == data
    assert read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) == ("data", "ann", 2**62 + 1, body, re,
                                                                             deadline)  # fmt: skip
    assert same(head(data), general(data))
    for cut in (1, 2):  # a frame short of its last bytes: the general path's verdict
        assert same(head(data[:-cut]), general(data[:-cut]))
    text = body.decode("utf-8", "replace")  # the same as text
    data = cbor2.dumps(frame_dict(Envelope("data", "ann", 2**62 + 1, text, re, deadline)))
    assert read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) == ("data", "ann", 2**62 + 1, text, re,
                                                                             deadline)  # fmt: skip
    for cut in (0, 1):
        assert same(head(data[: len(data) - cut]), general(data[: len(data) - cut]))


@pytest.mark.parametrize("length", [5, 30, 200])
@pytest.mark.parametrize("inside", ["body", "map"])
def test_a_text_of_invalid_utf8_gets_the_general_verdict(length: int, inside: str) -> None:
    text = cbor2.dumps("x" * length)
    data = cbor2.dumps(
        frame_dict(Envelope("data", "ann", 9, "x" * length if inside == "body" else {"v": "x" * length}))
    )
    bad = data.replace(text, text[:-length] + b"\xff" * length)
    assert isinstance(head(bad), MalformedMessage) and same(head(bad), general(bad))


@pytest.mark.parametrize("second", [b"\x62re\x1b" + bytes(7) + b"\x05", b"\x62re\x05", b"\x62id\x05"])
def test_a_key_twice_after_the_common_id_and_re_gets_the_general_verdict(second: bytes) -> None:
    # The 8-byte id and re are read in one unpack; a second "re" (or "id") after them must
    # not be read as the first: the general path's verdict, whatever it is.
    data = cbor2.dumps({"v": 1, "k": "answer", "s": "m1", "id": 2**62 + 1, "re": 2**62 + 3, "b": 1})
    frame = bytes([data[0] + 1]) + data[1 : data.index(b"\x61b")] + second + data[data.index(b"\x61b") :]
    assert same(head(frame), general(frame))
    assert read(frame, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) is None


@PROPERTY
@given(small_maps)
def test_a_small_map_body_writes_what_cbor2_writes(body: dict[str, Any]) -> None:
    # The map bodies written without cbor2 (``write_map``), within a frame and alone.
    text_ok = all(not 0xD800 <= ord(c) <= 0xDFFF for key in body for c in key)
    assume(text_ok)
    envelope = Envelope("ask", "m1", 7, body, None, 1.5)
    assert encode(envelope) == cbor2.dumps(frame_dict(envelope))
    written = write_map(body, 4096)
    assert written is None or written == cbor2.dumps(body)


_SMALL_KEYS = st.text(st.characters(exclude_categories=("Cs",)), max_size=8).filter(lambda k: len(k.encode()) < 24)
_SMALL_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(0, 2**64 - 1), st.binary(max_size=255),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=60).filter(lambda t: len(t.encode()) < 256),
    st.integers(256, 2**16 - 1).map(lambda n: "é" * (n // 2)), st.integers(256, 4095).map(bytes),
)  # fmt: skip


_SMALL_VALUES = (_SMALL_VALUES | st.integers(-(2**64), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
                 | st.booleans())  # fmt: skip
_RECORD_VALUES = (_SMALL_VALUES | st.lists(_SMALL_VALUES, max_size=4)
                  | st.dictionaries(_SMALL_KEYS, _SMALL_VALUES, max_size=4))  # fmt: skip


@given(st.dictionaries(_SMALL_KEYS, _RECORD_VALUES, max_size=4))
def test_every_small_map_is_written_without_cbor2(body: dict[str, Any]) -> None:
    # The accepting side: each map of the documented shape is written here (never refused
    # to the general path), byte for byte as cbor2 writes it.
    assert write_map(body, 4096) == cbor2.dumps(body)


def test_an_ask_body_is_written_without_cbor2_and_what_it_cannot_write_is_left_alone() -> None:
    ask = {"v": bytes(64), "stream": False}
    assert write_map(ask, 4096) == cbor2.dumps(ask)
    assert write_map({"v": bytes(100)}, 100) is None  # for shared memory: the general path places it
    assert write_map({"v": bytes(5000)}, 4096) is None
    assert write_map({"v": "x" * 2**16}, 4096) is None  # (cbor2 writes a 4-byte length)
    big = {"stance": "x", "reason": "y" * 5000, "raw": bytes(300)}
    assert write_map(big, 4096) == cbor2.dumps(big)
    assert write_map({"v": [[[[[[[1]]]]]]]}, 4096) is None  # six levels of nesting below the top only
    assert write_map({"v": {"w": {"x": {"y": {"z": {"a": {"b": {}}}}}}}}, 4096) is None
    assert write_map({"v": list(range(24))}, 4096) is None
    assert write_map({"v": (1,)}, 4096) is None  # (a tuple reads back as a list: the general path)
    assert write_map({"v": float("nan")}, 4096) is None
    assert write_map({"v": 2**64}, 4096) is None
    record = {"choice": "B", "score": -0.5, "tags": ["fast", 2, None], "by": {"model": "m", "n": -(2**63)}}
    assert write_map(record, 4096) == cbor2.dumps(record)
    assert write_map({1: 2}, 4096) is None
    assert write_map(dict.fromkeys("abcdefghijklmnopqrstuvwxy", 1), 4096) is None
    assert write_map({"\ud800": 1}, 4096) is None
    with pytest.raises(patterns.EncodeError):
        encode(Envelope("ask", "m1", 7, {"\ud800": 1}))


@pytest.mark.parametrize("value", [0.8, 1.0, -0.0, 1e308, 5e-324, math.inf, -math.inf, math.nan])
def test_a_float_in_a_small_map_body_reads_as_on_the_general_path(value: float) -> None:
    # A deliberation's position carries its confidence as a float64: read without cbor2 too.
    body = {"stance": "NATS", "confidence": value, "reason": "fits", "round": 2}
    data = cbor2.dumps(frame_dict(Envelope("position", "m1", 7, body, 5)))
    fields = read(data, decode_nested, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)
    assert fields is not None and repr(fields[3]) == repr(general(data).body)  # type: ignore[union-attr]
    if math.isfinite(value):  # (cbor2 writes infinities and NaN as float16: cbor2 reads them)
        start = data.index(cbor2.dumps(body))
        assert repr(read_map(data, start, len(data))) == repr(body)  # read here, not by cbor2
    for cut in (len(data) - 1, len(data) - 5):  # a float cut short: the general path says why
        assert same(head(data[:cut]), general(data[:cut]))


def _no_cbor2(view: memoryview, size: int) -> Any:
    raise AssertionError("read by cbor2: the head path should have read this body itself")


@pytest.mark.parametrize("value", ["x" * 255, "é" * 128, "y" * 4096, "ü" * 20000, bytes(300), bytes(40000)])
def test_strings_under_64_kib_are_read_without_cbor2(value: str | bytes) -> None:
    # Alone as a body and as a map's value (a position's reason): the head reads them itself.
    for body in (value, {"stance": "NATS", "reason": value, "round": 2}):
        data = cbor2.dumps(frame_dict(Envelope("position", "m1", 2**62 + 7, body, 5)))
        assert read(data, _no_cbor2, MAX_KIND_LENGTH, MAX_SENDER_LENGTH) == ("position", "m1", 2**62 + 7, body, 5,
                                                                              None)  # fmt: skip


@given(st.dictionaries(_SMALL_KEYS, _RECORD_VALUES, max_size=4))
def test_every_small_record_is_read_without_cbor2(record: dict[str, Any]) -> None:
    # The reading side of the documented shape (``patterns._records``): alone as a body and
    # in a poll's answer, never left to cbor2, and read as cbor2 reads it.
    for body in (record, {"answer": record}):
        data = cbor2.dumps(frame_dict(Envelope("answer", "m1", 2**62 + 7, body, 5)))
        fields = read(data, _no_cbor2, MAX_KIND_LENGTH, MAX_SENDER_LENGTH)
        assert fields is not None and repr(fields[3]) == repr(cbor2.loads(cbor2.dumps(body)))


def test_a_record_a_shape_gave_up_on_is_not_walked_again_and_nothing_else_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A value too deep for a record fails its shape, then its body goes to the common writer:
    # the second walk stops at the value (the hint), and the hint is used once, for it only.
    import patterns._records as records

    deep = {"why": [[[[[[["too", "deep"]]]]]]]}
    walked: list[object] = []
    walk = records._write_item
    monkeypatch.setattr(records, "_write_item", lambda value, *rest: walked.append(value) or walk(value, *rest))
    assert write_map(deep, 4096, hint=True) is None
    walked.clear()
    body = {"v": deep, "stream": False}
    assert write_map(body, 4096) is None and walked == [deep]  # deep's items: not walked again
    walked.clear()
    assert write_map(body, 4096) is None and len(walked) > 2  # no hint now: walked again
    fresh = {"v": {"why": "a record"}}
    assert write_map(deep, 4096, hint=True) is None
    assert write_map(fresh, 4096) == cbor2.dumps(fresh)  # a hint for another object skips nothing
    data = cbor2.dumps({"v": deep, "stream": False})
    start = data.index(cbor2.dumps(deep))
    assert read_map(data, start, len(data) - 9, hint=True) is None
    other = cbor2.dumps({"v": {"why": "ok"}, "stream": False})
    assert read_map(other, 0, len(other)) == {"v": {"why": "ok"}, "stream": False}  # another frame: read


def test_a_record_of_too_many_items_goes_to_cbor2_both_ways() -> None:
    # At most ITEMS entries and items in all: a loop in Python must not read many more
    # items than cbor2's C code would (the frame's CPU on the event loop).
    import patterns._records as records

    fits = {f"k{i}": list(range(7)) for i in range(8)}  # 8 entries + 56 items
    over = {f"k{i}": {f"j{j}": list(range(8)) for j in range(8)} for i in range(3)}  # 3 + 24 + 192
    assert write_map(fits, 4096) == cbor2.dumps(fits)
    assert read_map(cbor2.dumps(fits), 0, len(cbor2.dumps(fits))) == fits
    assert 8 + 56 <= records.ITEMS < 3 + 24 + 192
    assert write_map(over, 4096) is None
    assert read_map(cbor2.dumps(over), 0, len(cbor2.dumps(over))) is None
    data = cbor2.dumps(frame_dict(Envelope("answer", "m1", 7, over, 5)))
    assert same(head(data), general(data))
