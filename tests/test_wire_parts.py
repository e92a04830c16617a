"""Frames in pieces (``patterns._gaps``): large buffers spliced in by the sender, not copied by cbor2.

``encode_parts`` must give exactly the bytes the one-piece encoder gives (other processes and
the shared-memory path read them), whatever the body holds; a socket copies the parts once
into NNG's message, and a receiver decodes a large frame straight from NNG's message.
"""

from __future__ import annotations

import array
import gc
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
import trio
from _frames import frame_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynng import ffi

import patterns
from patterns import Envelope, MalformedMessage, decode
from patterns._gaps import GAP_MIN, MARKER, join, split, total
from patterns._guard import Opened
from patterns._nng import body_view, message_from_parts
from patterns._wire import encode, encode_parts

LIMIT = 1 << 28
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def payload(seed: int, extra: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(256)) * ((GAP_MIN + extra) // 256 + 1)


def as_bytes(value: Any) -> Any:
    """What the receiver decodes (and cbor2 writes the same way): every buffer as bytes."""
    if isinstance(value, bytes | bytearray | memoryview | array.array):
        return bytes(memoryview(value).cast("B"))
    if isinstance(value, dict):
        return {key: as_bytes(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_bytes(item) for item in value]
    return value


def forms(data: bytes) -> st.SearchStrategy[Any]:
    """The same bytes as a sender may hold them: bytes, bytearray, views, an array."""
    return st.sampled_from(
        [
            data,
            bytearray(data),
            memoryview(data),
            memoryview(data)[3:],
            array.array("H", data[: len(data) // 2 * 2]),
        ]
    )


larges = st.builds(payload, st.integers(0, 250), st.integers(-256, 5000)).flatmap(forms)
small = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=8), st.binary(max_size=16), st.binary(max_size=16).map(bytearray),
)  # fmt: skip
bodies = st.recursive(
    st.one_of(small, larges),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=6,
)
envelopes = st.builds(
    Envelope,
    kind=st.text(min_size=1, max_size=8),
    sender=st.text(max_size=8),
    id=st.integers(0, 2**64 - 1),
    body=bodies,
    re=st.none() | st.integers(0, 2**64 - 1),
    deadline=st.none() | st.floats(0, 2e9),
)


def reference(envelope: Envelope) -> bytes:
    """The frame as the one-piece encoder wrote it before parts: cbor2 over plain values."""
    return cbor2.dumps(frame_dict(envelope, body=as_bytes))


@PROPERTY
@given(envelopes)
def test_parts_join_to_the_one_piece_frame_and_decode_the_same(envelope: Envelope) -> None:
    parts = encode_parts(envelope, max_size=LIMIT)
    expected = reference(envelope)
    assert join(parts) == expected == encode(envelope, max_size=LIMIT)
    assert total(parts) == len(expected)
    assert all(isinstance(part, bytes) or part.nbytes >= GAP_MIN for part in parts)  # only large ones kept
    assert decode(join(parts), max_size=LIMIT) == decode(expected, max_size=LIMIT)


@PROPERTY
@given(envelopes)
def test_a_message_built_from_parts_holds_the_frame_and_decodes_in_place(envelope: Envelope) -> None:
    parts = encode_parts(envelope, max_size=LIMIT)
    expected = reference(envelope)
    view = body_view(
        message_from_parts(parts, total(parts), ffi.new("nng_msg **"), operation="t", where=None)
    )
    assert view == expected
    decoded = decode(view, max_size=LIMIT)
    del view
    gc.collect()  # the message is freed: the decoded body holds copies, not views of it
    assert decoded == decode(expected, max_size=LIMIT)
    assert decoded.body == as_bytes(envelope.body)


def test_a_large_buffer_is_a_part_of_its_own_not_a_copy() -> None:
    data = bytearray(payload(1, 0))
    parts = encode_parts(Envelope("data", "me", 7, {"x": data, "y": [1, data]}), max_size=LIMIT)
    views = [part for part in parts if type(part) is memoryview]
    assert len(views) == 2 and all(view.obj is data for view in views)


def test_a_frame_without_large_buffers_is_one_piece() -> None:
    parts = encode_parts(Envelope("data", "me", 7, {"x": bytes(GAP_MIN - 1), "y": memoryview(b"ab")}))
    assert len(parts) == 1 and type(parts[0]) is bytes


def test_a_marker_in_the_body_itself_gives_one_piece_with_the_same_bytes() -> None:
    envelope = Envelope("data", "me", 7, [MARKER, payload(2, 0)])
    parts = encode_parts(envelope, max_size=LIMIT)
    assert len(parts) == 1 and parts[0] == reference(envelope)
    assert split(b"x" + MARKER, []) == (b"x" + MARKER,)
    assert split(b"x", [memoryview(b"y")]) is None


def test_the_size_limit_counts_the_parts() -> None:
    with pytest.raises(patterns.MessageTooLarge, match="exceeds"):
        encode_parts(Envelope("data", "me", 7, payload(3, 0)), max_size=GAP_MIN)


class Prefix:
    """A toy guard: a fixed prefix, checked and removed on the way in."""

    overhead = 4

    def seal(self, frame: bytes, kind: str) -> bytes:
        return b"SEAL" + frame

    def open(self, frame: bytes) -> Opened:
        if frame[:4] != b"SEAL":
            raise patterns.Unauthenticated("no seal", reason="format", size=len(frame))
        return Opened(frame[4:], b"session")

    def reseal(self, frame: bytes, kind: str) -> bytes | None:
        return None  # one key for ever: never stale


def sent_nowait(pair: patterns.Pair, body: Any) -> bool:
    try:
        pair.send_nowait(body)
    except patterns.WouldBlock:
        return False
    return True


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest.mark.parametrize("guarded", [False, True])
async def test_large_bodies_cross_a_pair_in_every_form(
    transport: str, guarded: bool, address: Callable[[str], str]
) -> None:
    addr = address(transport)
    options: dict[str, Any] = {"shared_memory": False, "max_message_size": LIMIT,
                               "guard": Prefix() if guarded else None}  # fmt: skip
    async with patterns.Pair(listen=addr, **options) as a, patterns.Pair(dial=addr, **options) as b:
        await a.wait_for_peers(1)
        await b.wait_for_peers(1)
        data = payload(4, 1000)
        bodies = [data, bytearray(data), memoryview(data)[5:], {"v": [memoryview(bytearray(data)), "x"]},
                  array.array("d", [1.5] * 40000)]  # fmt: skip
        for body in bodies:
            await a.send(body)
            assert await b.receive() == as_bytes(body)
            if transport == "inproc":  # over tcp the pipe may still be writing the last frame
                # pair1 has no send buffer: until NNG's thread took the last frame, it refuses.
                with trio.fail_after(10):
                    while not sent_nowait(a, body):
                        await trio.sleep(0.001)
            else:
                await a.send(body)
            envelope, pipe = await b.receive_from()
            assert envelope.body == as_bytes(body) and pipe in {peer.id for peer in b.peers}
            await a.send_envelope(Envelope("data", "a", 9, body))
            assert (await b.receive_envelope()).body == as_bytes(body)
        assert b.statistics().messages_received == 3 * len(bodies)
        assert b.statistics().bytes_received == a.statistics().bytes_sent


async def test_a_malformed_large_frame_is_counted_and_the_next_one_arrives(
    address: Callable[[str], str],
) -> None:
    addr = address("inproc")
    options: dict[str, Any] = {"shared_memory": False, "max_message_size": LIMIT}
    async with patterns.Pair(listen=addr, **options) as a, patterns.Pair(dial=addr, **options) as b:
        await b.wait_for_peers(1)
        await a.send_bytes(cbor2.dumps({"v": 1, "k": "data", "s": "", "id": 1, "b": payload(5, 0)})[:-1])
        with pytest.raises(MalformedMessage):
            await b.receive()
        await a.send(payload(6, 0))
        assert await b.receive() == payload(6, 0)
        assert b.statistics().malformed == 1


async def test_a_send_waiting_for_room_keeps_its_message_and_frees_it_when_cancelled(
    address: Callable[[str], str],
) -> None:
    async with patterns.Pair(listen=address("inproc"), shared_memory=False, max_message_size=LIMIT) as a:
        with trio.move_on_after(0.2) as scope:  # no peer: NNG never takes the frame
            await a.send(payload(7, 0))
        assert scope.cancelled_caught
        with pytest.raises(patterns.WouldBlock):
            a.send_nowait(payload(7, 0))
        assert a.statistics().messages_sent == 0
