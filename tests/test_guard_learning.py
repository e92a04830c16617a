"""What a guard learns from a frame under a key it did not hold (a peer's greeting key, a
joiner's key) it keeps only once the frame is fully accepted: its tag, its replay window,
*and* the key's limits (the sender and kinds it speaks for), which the socket checks on the
decoded frame. A frame refused for those limits teaches the guard nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _frames import read_fields, read_general

from consensus.trust import Guard, Key
from consensus.trust.line import LineKeys
from consensus.trust.seal import MacSender, Scheme
from patterns import Envelope, Fields, MalformedMessage, Pair, Unauthenticated, encode

KID = b"n" * 8
SECRET = b"\3" * 32
Read = Callable[[Pair, bytes], "Fields | MalformedMessage"]


def sealer() -> Callable[..., bytes]:
    """Frames sealed under ``KID`` in sequence (each a new sequence number)."""
    guard = Guard(MacSender(KID, SECRET))

    def frame(kind: str, sender: str = "far", id: int = 1) -> bytes:
        return guard.seal(encode(Envelope(kind=kind, sender=sender, id=id, body="x")), kind)

    return frame


@pytest.mark.parametrize("read", [read_fields, read_general], ids=["fields", "envelope"])
def test_a_frame_refused_for_its_keys_limits_teaches_the_guard_nothing(read: Read) -> None:
    learned: list[bytes] = []

    def learn(kid: bytes) -> Key:
        return Key(kid, Scheme.MAC, SECRET, owner="far", kinds=frozenset({"hello"}),
                   learned=lambda key: learned.append(key.kid))  # fmt: skip

    guard, frame = Guard(learn=learn), sealer()
    sock = Pair(name="near", max_message_size=4096, guard=guard, shared_memory=False)  # never opened: no NNG
    for refused, why in [
        (frame("ask", id=1), "kind"),
        (frame("hello", sender="other", id=2), "impersonation"),
    ]:
        got = read(sock, refused)
        assert isinstance(got, Unauthenticated) and got.reason == why
        assert learned == [] and guard.find(KID) is None  # nothing kept, nothing told
    got = read(sock, frame("hello", id=3))
    assert not isinstance(got, MalformedMessage) and got[0] == "hello"
    assert learned == [KID] and guard.find(KID) is not None
    assert not isinstance(read(sock, frame("hello", id=4)), MalformedMessage)
    assert learned == [KID]  # told once: the key is held now
    assert dict(sock.statistics().unauthenticated_reasons) == {"kind": 1, "impersonation": 1}


def test_a_greeting_key_frame_of_another_kind_does_not_start_a_session() -> None:
    """A hotline end learns the peer's greeting key from its hello; a frame under that key
    that is no hello (only an end holding the base key can seal one) must teach it nothing.
    (The session is agreed by the line's protocol, for a hello that echoes this end's id.)"""
    base = b"\4" * 32
    near, far = LineKeys(base, listener=True, peer="far"), LineKeys(base, listener=False, peer="near")
    sock = Pair(name="near", max_message_size=4096, guard=near.guard, shared_memory=False)
    ask = far.guard.by_kind["hello"].seal(encode(Envelope(kind="ask", sender="far", id=1, body="x")))
    got = read_general(sock, ask)
    assert isinstance(got, Unauthenticated) and got.reason == "kind"
    assert near.guard.sender is None and near.guard.find(far.kid) is None  # still no session
    hello = far.guard.seal(encode(Envelope(kind="hello", sender="far", id=2)), "hello")
    assert not isinstance(read_general(sock, hello), MalformedMessage)
    assert near.guard.find(far.kid) is not None  # the hello's key is held now...
    assert near.guard.sender is None  # ...and nothing switched: a hello alone may be a recording
