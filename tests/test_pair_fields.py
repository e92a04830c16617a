"""A pair's frames as fields (``Pair.receive_fields``, ``Pair.send_fields_nowait``): what a
hotline reads and sends without building an envelope must be exactly what the envelope's
own path reads and sends, and refuse (and count) exactly what it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2
import pytest
import trio
from _frames import LINE_SHAPES, damaged, frame_dict, line_frames, plain_values, read_fields, read_general
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.hotline.link import Link
from consensus.trust import Guard, Key
from consensus.trust.seal import MacSender, Scheme
from patterns import HOLE, Envelope, MalformedMessage, MessageTooLarge, Pair, Unauthenticated
from patterns._wire import MAX_KIND_LENGTH, common_frame, encode

PROPERTY = settings(max_examples=300)

plain = plain_values(300)
envelopes = st.builds(
    Envelope,
    kind=st.sampled_from(["ask", "reply", "msg", "error"]) | st.text(min_size=1, max_size=MAX_KIND_LENGTH),
    sender=st.sampled_from(["asker", "echo", ""]) | st.text(max_size=40),
    id=st.integers(0, 2**64 - 1),
    body=plain | st.builds(lambda value, stream: {"v": value, "stream": stream}, plain | st.text(max_size=300),
                           st.booleans()),
    re=st.none() | st.integers(0, 2**64 - 1),
    deadline=st.none() | st.floats(allow_nan=False, allow_infinity=False),
)


def _expecting() -> Pair:
    sock = Pair(name="asker", max_message_size=4096)
    sock.expect(*(sock.shape(kind, re=re, deadline=deadline, body=body, sender=sender, scalars=True)
                  for sender in ("echo", "") for kind, re, deadline, body in LINE_SHAPES))  # fmt: skip
    return sock


@pytest.fixture(scope="module", params=["common", "shapes"])
def pair(request: pytest.FixtureRequest) -> Pair:
    """One socket for every example, never opened: its decoding and its counters (no NNG);
    ``shapes``: expecting a hotline's asks and replies from "echo" and "" (``Pair.expect``)."""
    return Pair(name="asker", max_message_size=4096) if request.param == "common" else _expecting()


def agree(pair: Pair, data: bytes) -> None:
    """The same fields, or the same refusal counted once more on either path."""
    before = pair.statistics().malformed
    expected = read_general(pair, data)
    middle = pair.statistics().malformed
    got = read_fields(pair, data)
    after = pair.statistics().malformed
    if isinstance(expected, MalformedMessage):
        assert isinstance(got, MalformedMessage)
        assert (str(got), got.reason) == (str(expected), expected.reason)
        assert middle - before == after - middle == 1
    else:
        assert not isinstance(got, MalformedMessage)
        assert repr(got) == repr(expected)  # (repr: a NaN or -0.0 deadline compares as itself)
        assert after == middle == before


@PROPERTY
@given(envelopes)
def test_a_frame_reads_as_the_envelope_path_reads_it(pair: Pair, envelope: Envelope) -> None:
    agree(pair, cbor2.dumps(frame_dict(envelope)))


@PROPERTY
@given(envelopes, st.data())
def test_a_damaged_frame_is_refused_as_the_envelope_path_refuses_it(
    pair: Pair, envelope: Envelope, data: st.DataObject
) -> None:
    agree(pair, damaged(envelope, data, ["flip", "cut", "extend", "insert"]))


def test_a_frame_over_the_size_limit_and_a_sealed_one_are_refused_alike(pair: Pair) -> None:
    agree(pair, cbor2.dumps(frame_dict(Envelope("reply", "echo", 5, b"x" * 5000, 3))))
    agree(pair, b"\xffS" + bytes(40))


@given(envelopes)
@settings(max_examples=100)
def test_fields_sent_are_the_bytes_of_the_envelope_sent(pair: Pair, envelope: Envelope) -> None:
    """``send_fields_nowait`` sends exactly what ``send_envelope_nowait`` sends for the
    envelope from this socket's name, or leaves it to that path (False), or raises alike."""
    mine = Envelope(envelope.kind, pair.name, envelope.id, envelope.body, envelope.re, envelope.deadline)
    sent: list[bytes] = []
    pair._try_send = lambda data, operation: sent.append(data) or True  # type: ignore[method-assign]
    try:
        try:
            expected: bytes | type[Exception] = encode(mine, max_size=pair.max_message_size)
        except MessageTooLarge:
            expected = MessageTooLarge
        except Exception:  # noqa: BLE001 - not encodable: the envelope path says why, fields leave it
            expected = Exception
        try:
            went = pair.send_fields_nowait(mine.kind, mine.id, mine.body, mine.re, mine.deadline)
        except MessageTooLarge:
            assert expected is MessageTooLarge
            return
    finally:
        del pair._try_send  # (the class's again)
    if went:
        assert sent == [expected]
    else:
        assert not sent  # the general path's (a body it writes in parts, or refuses)


async def test_a_pair_sends_and_receives_fields(address: Callable[[str], str]) -> None:
    addr = address("ipc")
    async with Pair(listen=addr, name="a") as a, Pair(dial=addr, name="b") as b:
        with trio.fail_after(10):
            await a.wait_for_peers(1)
            await b.wait_for_peers(1)
            body: Any = {"v": b"x" * 64, "stream": False}
            assert a.send_fields_nowait("ask", 2**62 + 1, body, None, 1.5e9)
            got, pipe = await b.receive_fields()
            assert got == ("ask", "a", 2**62 + 1, body, None, 1.5e9)
            assert pipe in {peer.id for peer in b.peers}
            await b.send_bytes(b"\xa1\x61v\x02")  # version 2: malformed, counted, raised
            with pytest.raises(MalformedMessage):
                await a.receive_fields()
            assert a.statistics().malformed == 1


async def test_a_sealed_pair_sends_fields_and_shapes_sealed(address: Callable[[str], str]) -> None:
    """With a guard, fields and shapes go out sealed whole: the peer's guard opens them into
    what the general path sends, a stranger's guard refuses them, and a frame too large for
    the seal's room is left to the general path, which refuses it alike."""
    addr = address("ipc")
    key = b"\1" * 32

    def guard(secret: bytes) -> Guard:
        made = Guard(MacSender(b"k" * 8, secret))
        made.add(Key(b"k" * 8, Scheme.MAC, secret))
        return made

    async with (
        Pair(listen=addr, name="a", guard=guard(key), max_message_size=1024) as a,
        Pair(dial=addr, name="b", guard=guard(key)) as b,
    ):
        with trio.fail_after(10):
            await a.wait_for_peers(1)
            await b.wait_for_peers(1)
            body: Any = {"v": "x" * 64, "stream": False}
            assert a.send_fields_nowait("ask", 7, body, None, 1.5e9)
            assert (await b.receive_fields())[0] == ("ask", "a", 7, body, None, 1.5e9)
            shape = a.shape("reply", re=True, deadline=False)
            assert a.send_shaped_nowait(shape, 2**40, 2**41, None, b"y" * 100)  # (a shape's ids: 8 bytes)
            envelope = await b.receive_envelope()
            assert (envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re) == (
                "reply", "a", 2**40, b"y" * 100, 2**41)
            assert envelope.session == b"k" * 8  # it was sealed, and opened under the key
            room = 1024 - a.guard.overhead  # type: ignore[union-attr]
            size = room
            while len(common_frame("msg", "a", 9, bytes(size), None, None, limit=2048) or b"") > room:
                size -= 1
            fits = bytes(size)  # the largest body whose frame and seal fit in max_message_size
            assert a.send_fields_nowait("msg", 9, fits, None, None)
            assert (await b.receive_fields())[0][3] == fits
            assert not a.send_shaped_nowait(a.shape("msg", re=False, deadline=False), 2**40, None, None, fits + b"zz")
            with pytest.raises(MessageTooLarge):
                a.send_fields_nowait("msg", 10, fits + b"zz", None, None)
    stranger = guard(b"\2" * 32)
    data = guard(key).seal(common_frame("msg", "a", 1, b"hi", None, None, limit=2048) or b"", "msg")
    with pytest.raises(Unauthenticated):
        stranger.open(data)


shapes = st.sampled_from([
    ("ask", False, True, {"v": HOLE, "stream": False}),
    ("reply", True, False, HOLE),
    ("chunk", True, True, {"a": 1, "v": HOLE, "b": "x"}),
    ("msg", False, False, HOLE),
])  # fmt: skip
scalar_shapes = st.booleans()
values = (st.binary(max_size=300) | st.text(max_size=300) | plain
          | st.integers(250, 2**16 + 2).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256))
          | st.integers(80, 2**15).map(lambda n: "é" * n)
          | st.dictionaries(st.text(max_size=30), st.none() | st.booleans() | st.integers(-5, 2**64) | st.floats()
                            | st.text(max_size=300) | st.binary(max_size=300) | st.lists(st.integers(), max_size=2),
                            max_size=5))
ids = st.integers(0, 2**64 - 1) | st.integers(2**32, 2**64 - 1)


@PROPERTY
@given(shapes, ids, st.none() | ids, st.none() | st.floats(allow_nan=False) | st.integers(0, 9), values,
       st.sampled_from([4096, 100, 2**16]), scalar_shapes)  # fmt: skip
def test_a_shape_writes_what_the_common_writer_writes(
    pair: Pair, shape: tuple[str, bool, bool, Any], ident: int, re: int | None, deadline: Any, value: Any, limit: int,
    scalars: bool,
) -> None:  # fmt: skip
    """``Shape.write`` gives exactly ``common_frame``'s bytes for the same fields, or None
    (the general path's); never bytes of its own."""
    kind, has_re, has_deadline, body = shape
    made = pair.shape(kind, re=has_re, deadline=has_deadline, body=body, scalars=scalars)
    got = made.write(ident, re, deadline, value, limit)
    if got is None:
        return
    full = value if body is HOLE else {key: (value if item is HOLE else item) for key, item in body.items()}
    assert got == common_frame(kind, pair.name, ident, full, re, deadline, limit=limit, max_size=2**20)
    assert (re is not None) == has_re and (deadline is not None) == has_deadline


def test_a_shape_takes_the_common_asks_and_replies() -> None:
    shape = Pair(name="asker").shape("ask", re=False, deadline=True, body={"v": HOLE, "stream": False})
    for value in (b"x" * 64, "text", b"", "é" * 100, b"x" * 256, b"x" * 4095, "é" * 20000, {"a": 1}, {}):
        assert shape.write(2**62 + 5, None, 1.5e9, value, 4096) is not None
    for value in (b"x" * 4096, 7, {"a": [[[[[[[1]]]]]]]}, dict.fromkeys("abcdefghijklmnopqrstuvwxy"), {1: 2}, "\ud800", None, "x" * 2**16):
        assert shape.write(2**62 + 5, None, 1.5e9, value, 4096) is None
    assert shape.write(2**62 + 5, None, 1.5e9, b"x" * (2**16 - 1), 2**20) is not None
    assert shape.write(2**62 + 5, None, 1.5e9, b"x" * 2**16, 2**20) is None  # (the general writer splices it)
    assert shape.write(5, None, 1.5e9, b"x", 4096) is None  # a short id: the general writer
    with pytest.raises(ValueError, match="HOLE"):
        Pair(name="a").shape("ask", re=False, deadline=True, body={"v": 1})


shaped = line_frames(["echo", "", "other"])


@PROPERTY
@given(shaped, st.data())
def test_a_frame_of_an_expected_shape_reads_as_the_envelope_path_reads_it(
    pair: Pair, envelope: Envelope, data: st.DataObject
) -> None:
    """The frames ``Pair.expect`` reads from their templates, whole or damaged: the same
    fields as the general decoder, or its refusal (then counted alike)."""
    agree(pair, damaged(envelope, data, ["whole", "whole", "flip", "cut", "extend", "insert"]))


def test_a_line_whose_name_has_no_common_form_opens_and_leaves_its_frames_to_the_general_path() -> None:
    link = Link("ipc:///nonexistent/x.ipc", listen=False, name="\ud800", max_message_size=4096, tls=None)
    assert link.ask_shape is None and link.reply_shape is None  # the general writer says why, when it sends
    assert not link.send_shaped_now(link.reply_shape, 2**62, 2**62, None, b"x")
    link.expect_peer("\udc00")
    assert link.pair._expected == ()
    link.expect_peer("peer")
    assert [shape.kind for shape in link.pair._expected] == ["ask", "reply"]


def test_a_shaped_frame_over_max_items_is_refused_as_the_envelope_path_refuses_it() -> None:
    """A frame of more bytes than ``max_items`` has its items counted (and refused when there
    are too many) before anything is read: a shape's template must not skip that bound."""
    sock = Pair(name="asker", max_message_size=4096, max_items=4)
    sock.expect(sock.shape("reply", re=True, deadline=False, sender="echo"))
    data = common_frame("reply", "echo", 2**62 + 1, b"x", 2**62 + 2, None, limit=4096)
    assert data is not None
    agree(sock, data)
    assert sock.statistics().malformed == 2


def test_a_shape_takes_scalars_around_its_hole_only() -> None:
    """A container in a shape's fixed body would be shared by every body read from it."""
    sock = Pair(name="asker")
    for body in ({"v": HOLE, "log": []}, {"v": HOLE, "at": (1, 2)}, {"v": HOLE, "m": {}}):
        with pytest.raises(ValueError, match="scalars"):
            sock.shape("msg", re=False, deadline=False, body=body)
    assert sock.shape("msg", re=False, deadline=False, body={"v": HOLE, "n": None, "f": 1.5}).kind == "msg"


@pytest.mark.parametrize("value", [b"", b"x" * 255, b"y" * 256, bytes(4096), b"z" * (2**16 - 1), "é" * 128, "t" * 5000,
                                   {}, {"task": "summarise", "priority": 2, "ok": True, "text": "é" * 300}])
def test_a_shape_reads_back_every_string_and_small_map_it_writes(value: Any) -> None:
    """Byte and text strings of under 64 KiB and small maps are read from the template, not
    left to the general reader (which would read them too, only slower): what the shape
    wrote, it reads."""
    shape = Pair(name="asker").shape("ask", re=False, deadline=True, body={"v": HOLE, "stream": False})
    data = shape.write(2**62 + 5, None, 1.5e9, value, 2**20)
    assert data is not None
    assert shape.read(data) == (2**62 + 5, None, 1.5e9, {"v": value, "stream": False})
    assert shape.read(data[:-1]) is None and shape.read(data + b"\0") is None
    assert shape.read(data[:-1] + bytes([data[-1] ^ 1])) is None  # "stream": true, not the shape's false
