"""A sealed pair's frames as fields (``Pair._fields`` with a guard): the guard opens the frame
before a byte of it is read, then its payload is read as a plain frame's (a line's shapes, the
common reader). What it gives must be exactly what the envelope's path (``Pair._unpack``)
gives for the same frame, and what it refuses it must refuse alike, counted alike.

Two readers hold the same key, each with its own replay window (a frame opened once is a
replay the second time): one reads fields, the other envelopes.
"""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from _frames import (
    LINE_SHAPES,
    damage,
    damaged,
    frame_dict,
    line_frames,
    plain_values,
    read_fields,
    read_general,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.trust import Guard, Key
from consensus.trust.seal import MacSender, Scheme, SigSender
from patterns import Envelope, Fields, MalformedMessage, Pair

PROPERTY = settings(max_examples=300, deadline=None)
KID = b"k" * 8
SECRET = b"\1" * 32
SIGNING = Ed25519PrivateKey.from_private_bytes(b"\2" * 32)

plain = plain_values(300)
envelopes = st.builds(
    Envelope,
    kind=st.sampled_from(["ask", "reply", "msg", "hello"]) | st.text(min_size=1, max_size=8),
    sender=st.sampled_from(["echo", "other", ""]),
    id=st.integers(0, 2**64 - 1) | st.integers(2**32, 2**64 - 1),
    body=plain | st.builds(lambda value, stream: {"v": value, "stream": stream},
                           st.binary(max_size=300) | st.text(max_size=300), st.just(False) | st.booleans()),
    re=st.none() | st.integers(2**32, 2**64 - 1) | st.integers(0, 2**64 - 1),
    deadline=st.none() | st.floats(allow_nan=False, allow_infinity=False),
)  # fmt: skip
# Frames of the shapes a line expects (a hotline's plain asks and replies), from "echo" mostly.
shaped = line_frames(["echo", "echo", "other"])
# What the key may speak for: any sender and kind, or only "echo", or only some kinds.
limits = st.sampled_from([(None, None), ("echo", None), (None, frozenset({"ask", "reply"})),
                          ("echo", frozenset({"hello"}))])  # fmt: skip


class Readers:
    """A sender's guard and two receiving pairs under its key (never opened: no NNG)."""

    def __init__(self, scheme: Scheme, owner: str | None, kinds: frozenset[str] | None, max_items: int) -> None:
        self.sender = Guard(MacSender(KID, SECRET) if scheme is Scheme.MAC else SigSender(KID, SIGNING))
        secret: Any = SECRET if scheme is Scheme.MAC else SIGNING.public_key()
        self.fast, self.slow = (self._reader(Key(KID, scheme, secret, owner=owner, kinds=kinds), max_items)
                                for _ in range(2))  # fmt: skip

    @staticmethod
    def _reader(key: Key, max_items: int) -> Pair:
        guard = Guard()
        guard.add(key)
        sock = Pair(name="asker", max_message_size=4096, max_items=max_items, guard=guard, shared_memory=False)
        sock.expect(*(sock.shape(kind, re=re, deadline=deadline, body=body, sender="echo", scalars=True)
                      for kind, re, deadline, body in LINE_SHAPES))  # fmt: skip
        return sock

    def seal(self, payload: bytes, kind: str = "msg") -> bytes:
        return self.sender.seal(payload, kind)

    def agree(self, frame: bytes) -> Fields | MalformedMessage:
        """The fast reader's fields are the slow one's, or both refuse alike, counted once."""
        expected = read_general(self.slow, frame)
        got = read_fields(self.fast, frame)
        if isinstance(expected, MalformedMessage):
            assert isinstance(got, MalformedMessage)
            assert (type(got), str(got), got.reason) == (type(expected), str(expected), expected.reason)
        else:
            assert not isinstance(got, MalformedMessage)
            assert repr(got) == repr(expected)  # (repr: a -0.0 deadline compares as itself)
        assert _counts(self.fast) == _counts(self.slow)
        return got


def _counts(sock: Pair) -> tuple[Any, ...]:
    s = sock.statistics()
    return s.malformed, s.malformed_reasons, s.unauthenticated, s.unauthenticated_reasons


def _payload(envelope: Envelope, data: st.DataObject) -> bytes:
    return damaged(envelope, data, ["whole", "whole", "whole", "flip", "cut", "extend", "insert"])


@PROPERTY
@given(envelopes | shaped, limits, st.sampled_from([2**20, 2**20, 8]), st.data())
def test_a_sealed_frame_reads_as_the_envelope_path_reads_it(
    envelope: Envelope, limit: tuple[str | None, frozenset[str] | None], max_items: int, data: st.DataObject
) -> None:
    """Whole or damaged payloads (sealed as they are: the seal checks out), under keys that
    limit the sender or the kinds: the same fields, or the same refusal."""
    readers = Readers(Scheme.MAC, *limit, max_items)
    readers.agree(readers.seal(_payload(envelope, data)))


@settings(max_examples=60, deadline=None)
@given(envelopes | shaped, limits, st.data())
def test_a_signed_frame_reads_as_the_envelope_path_reads_it(
    envelope: Envelope, limit: tuple[str | None, frozenset[str] | None], data: st.DataObject
) -> None:
    readers = Readers(Scheme.SIG, *limit, 2**20)
    readers.agree(readers.seal(_payload(envelope, data)))


@PROPERTY
@given(envelopes, st.sampled_from([Scheme.MAC, Scheme.SIG]), st.sampled_from(["flip", "cut", "extend", "insert"]),
       st.data())  # fmt: skip
def test_a_changed_byte_of_a_sealed_frame_is_refused_and_counted(
    envelope: Envelope, scheme: Scheme, how: str, data: st.DataObject
) -> None:
    """Any change to a sealed frame (header, tag or payload) is refused by the guard, before
    the payload is read, exactly as the envelope path refuses it, and counted alike."""
    readers = Readers(scheme, None, None, 2**20)
    got = readers.agree(damage(readers.seal(cbor2.dumps(frame_dict(envelope))), how, data))
    assert isinstance(got, MalformedMessage)
    assert readers.fast.statistics().unauthenticated == 1  # a guard's refusal, never a decoder's


def test_a_sealed_frame_is_read_once() -> None:
    """The replay window stands on the fields path: a frame read once is refused as a replay,
    an older one beyond the window too, and the newer ones still read."""
    readers = Readers(Scheme.MAC, "echo", None, 2**20)
    frames = [readers.seal(cbor2.dumps(frame_dict(Envelope("reply", "echo", 2**40 + i, b"x", 2**41))))
              for i in range(3)]  # fmt: skip
    assert readers.agree(frames[1]) == ("reply", "echo", 2**40 + 1, b"x", 2**41, None)
    for frame in (frames[1], frames[1]):
        got = readers.agree(frame)
        assert isinstance(got, MalformedMessage) and got.reason == "replay"
    assert readers.agree(frames[0])[:3] == ("reply", "echo", 2**40)  # # late, within the window: once
    assert readers.agree(frames[2])[:3] == ("reply", "echo", 2**40 + 2)
    assert dict(readers.fast.statistics().unauthenticated_reasons) == {"replay": 2}


def test_a_sealed_frame_of_another_sender_or_kind_is_refused_after_its_read() -> None:
    """A key that speaks for one sender (or some kinds) only: a frame from another, even of a
    shape the reader expects, is refused as the envelope path refuses it."""
    readers = Readers(Scheme.MAC, "other", frozenset({"reply"}), 2**20)
    reply = cbor2.dumps(frame_dict(Envelope("reply", "echo", 2**40, b"x", 2**41)))
    got = readers.agree(readers.seal(reply))
    assert isinstance(got, MalformedMessage) and got.reason == "impersonation"
    ask = cbor2.dumps(frame_dict(Envelope("ask", "other", 2**40, {"v": b"x", "stream": False}, None, 1.5e9)))
    got = readers.agree(readers.seal(ask))
    assert isinstance(got, MalformedMessage) and got.reason == "kind"
    assert dict(readers.fast.statistics().unauthenticated_reasons) == {"impersonation": 1, "kind": 1}


def test_a_plain_frame_to_a_sealed_pair_is_refused_unread() -> None:
    readers = Readers(Scheme.MAC, None, None, 2**20)
    got = readers.agree(cbor2.dumps(frame_dict(Envelope("reply", "echo", 2**40, b"x", 2**41))))
    assert isinstance(got, MalformedMessage) and got.reason == "format"


@pytest.mark.parametrize("size", [4000, 5000])
def test_a_large_sealed_frame_reads_alike(size: int) -> None:
    """Either side of the size up to which the guard copies the payload before the tag check."""
    readers = Readers(Scheme.MAC, None, None, 2**20)
    readers.fast.max_message_size = readers.slow.max_message_size = 2**20
    frame = readers.seal(cbor2.dumps(frame_dict(Envelope("msg", "echo", 5, b"y" * size))))
    assert readers.agree(frame)[3] == b"y" * size
    forged = frame[:-1] + bytes([frame[-1] ^ 1])
    got = readers.agree(forged)
    assert isinstance(got, MalformedMessage) and got.reason == "tag"
