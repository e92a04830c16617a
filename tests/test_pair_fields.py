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
from _frames import frame_dict
from hypothesis import given, settings
from hypothesis import strategies as st

from patterns import Envelope, Fields, MalformedMessage, MessageTooLarge, Pair
from patterns._wire import MAX_KIND_LENGTH, encode

PROPERTY = settings(max_examples=300)

plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
              st.text(max_size=12), st.binary(max_size=300)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=10,
)  # fmt: skip
envelopes = st.builds(
    Envelope,
    kind=st.sampled_from(["ask", "reply", "msg", "error"]) | st.text(min_size=1, max_size=MAX_KIND_LENGTH),
    sender=st.sampled_from(["asker", "echo", ""]) | st.text(max_size=40),
    id=st.integers(0, 2**64 - 1),
    body=plain | st.builds(lambda value, stream: {"v": value, "stream": stream}, plain, st.booleans()),
    re=st.none() | st.integers(0, 2**64 - 1),
    deadline=st.none() | st.floats(allow_nan=False, allow_infinity=False),
)


@pytest.fixture(scope="module")
def pair() -> Pair:
    """One socket for every example, never opened: its decoding and its counters (no NNG)."""
    return Pair(name="asker", max_message_size=4096)


def general(pair: Pair, data: bytes) -> Fields | MalformedMessage:
    try:
        envelope = pair._unpack(data)
    except MalformedMessage as exc:
        return exc
    return envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline


def fields(pair: Pair, data: bytes) -> Fields | MalformedMessage:
    try:
        return pair._fields(data)
    except MalformedMessage as exc:
        return exc


def agree(pair: Pair, data: bytes) -> None:
    """The same fields, or the same refusal counted once more on either path."""
    before = pair.statistics().malformed
    expected = general(pair, data)
    middle = pair.statistics().malformed
    got = fields(pair, data)
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
    frame = bytearray(cbor2.dumps(frame_dict(envelope)))
    how = data.draw(st.sampled_from(["flip", "cut", "extend", "insert"]))
    at = data.draw(st.integers(0, len(frame) - 1))
    if how == "flip":
        frame[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del frame[at:]
    elif how == "extend":
        frame += data.draw(st.binary(min_size=1, max_size=4))
    else:
        frame[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    agree(pair, bytes(frame))


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
