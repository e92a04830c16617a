"""A sealed line under backpressure seals each frame once.

A frame NNG would not take at once (here: no peer yet, which NNG refuses as it refuses a
full queue) comes back from the line's non-blocking sends as an :class:`~patterns.Unsent`,
written and sealed; the line sends that frame, as it is, once it may wait. Before, each
fallback sealed the frame again (shape, fields, envelope, waiting send: up to four seals,
each a sequence number and a MAC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
import trio.testing

from consensus.hotline.frames import ASK, REPLY, ask_body, frame
from consensus.hotline.link import Link
from consensus.trust import Guard, Key
from consensus.trust.seal import MacSender, Scheme
from patterns import Pair, Unsent

KIDS = (b"a" * 8, b"b" * 8)
SECRET = b"\3" * 32


class CountingGuard(Guard):
    """A guard that counts its seals, and the frames it sealed again (a stale seal)."""

    seals = 0
    resealed = 0

    def seal(self, frame: bytes, kind: str) -> bytes:
        self.seals += 1
        return super().seal(frame, kind)

    def reseal(self, frame: bytes, kind: str) -> bytes | None:
        again = super().reseal(frame, kind)
        self.resealed += again is not None
        return again


def guards() -> tuple[CountingGuard, Guard]:
    """The asker's (counting) and the peer's: each seals under its own key id, opens the other's."""
    mine, theirs = CountingGuard(MacSender(KIDS[0], SECRET)), Guard(MacSender(KIDS[1], SECRET))
    theirs.add(Key(KIDS[0], Scheme.MAC, SECRET, owner="asker"))
    mine.add(Key(KIDS[1], Scheme.MAC, SECRET, owner="echo"))
    return mine, theirs


def test_an_unsent_frame_is_false() -> None:
    assert not Unsent(b"x")  # callers that only know True / False send it another way


async def test_each_frame_refused_at_once_is_sealed_once_and_sent_as_it_is(address: Callable[[str], str]) -> None:
    addr = address("ipc")
    mine, theirs = guards()
    link = Link(addr, listen=True, name="asker", max_message_size=4096, tls=None, guard=mine)
    general: Any = {"v": [[1, 2], {"x": None}], "stream": False}  # no common form: the general encoder
    async with link.pair:
        with trio.fail_after(20):
            # No peer: NNG refuses each frame. Each way returns the frame it wrote, sealed once.
            unsent = [
                link.send_ask_now(2**40 + 1, b"shaped", 1.5e9),
                link.send_ask_now(2**40 + 2, {"not": "a string"}, 1.5e9),  # not the shape's: fields
                link.send_shaped_now(link.reply_shape, 2**40 + 3, 2**41, None, b"reply"),
                link.send_fields_now("msg", 2**40 + 4, [1, 2, 3], None, None),
                link.send_now(frame(ASK, "asker", 2**40 + 5, general, None, 1.5e9)),
            ]
            assert all(type(item) is Unsent for item in unsent), unsent
            assert mine.seals == len(unsent)
            async with trio.open_nursery() as nursery:
                for item in unsent:  # each waits for a peer and room, in order
                    nursery.start_soon(link.send, item)
                    await trio.testing.wait_all_tasks_blocked()
                async with Pair(dial=addr, name="echo", guard=theirs) as peer:
                    got = [(await peer.receive_fields())[0] for _ in unsent]
            assert mine.seals == len(unsent) and mine.resealed == 0  # none sealed again
    assert got == [
        (ASK, "asker", 2**40 + 1, ask_body(b"shaped", False), None, 1.5e9),
        (ASK, "asker", 2**40 + 2, ask_body({"not": "a string"}, False), None, 1.5e9),
        (REPLY, "asker", 2**40 + 3, b"reply", 2**41, None),
        ("msg", "asker", 2**40 + 4, [1, 2, 3], None, None),
        (ASK, "asker", 2**40 + 5, general, None, 1.5e9),
    ]
    assert peer.statistics().unauthenticated == 0


async def test_a_frame_refused_while_others_wait_is_not_written(address: Callable[[str], str]) -> None:
    """With senders queued, the non-blocking ways write nothing (False): the frame waits its
    turn as an envelope and is sealed once, when it goes."""
    addr = address("ipc")
    mine, theirs = guards()
    link = Link(addr, listen=True, name="asker", max_message_size=4096, tls=None, guard=mine)
    async with link.pair:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link.send, frame("msg", "asker", 2**40, b"first", None, None))
                await trio.testing.wait_all_tasks_blocked()
                assert mine.seals == 1
                assert link.send_ask_now(2**40 + 1, b"x", 1.5e9) is False
                assert link.send_shaped_now(link.reply_shape, 2**40 + 2, 2**41, None, b"y") is False
                assert link.send_fields_now("msg", 2**40 + 3, 1, None, None) is False
                assert link.send_now(frame("msg", "asker", 2**40 + 4, b"z", None, None)) is False
                assert mine.seals == 1
                nursery.start_soon(link.send_queued, frame("msg", "asker", 2**40 + 5, b"second", None, None))
                await trio.testing.wait_all_tasks_blocked()
                async with Pair(dial=addr, name="echo", guard=theirs) as peer:
                    got = [(await peer.receive_fields())[0][3] for _ in range(2)]
    assert got == [b"first", b"second"]
    assert mine.seals == 2


async def test_a_plain_line_hands_back_its_frame_too(address: Callable[[str], str]) -> None:
    """Without a guard the frame comes back as written: sent later without writing it again."""
    addr = address("ipc")
    link = Link(addr, listen=True, name="asker", max_message_size=4096, tls=None)
    async with link.pair:
        with trio.fail_after(20):
            unsent = link.send_ask_now(2**40 + 1, b"plain", 1.5e9)
            assert type(unsent) is Unsent
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link.send, unsent)
                await trio.testing.wait_all_tasks_blocked()
                async with Pair(dial=addr, name="echo") as peer:
                    got = (await peer.receive_fields())[0]
    assert got == (ASK, "asker", 2**40 + 1, ask_body(b"plain", False), None, 1.5e9)


async def test_a_frame_whose_seal_went_stale_while_it_waited_is_sealed_again(address: Callable[[str], str]) -> None:
    """A frame sealed while the line had one session and sent once it has another (the peer
    restarted meanwhile: a hotline agrees a new session at its hello, and the new peer holds
    no key of the old one) is sealed again under the new session as it goes, not sent under
    the old one for the peer to refuse."""
    addr = address("ipc")
    mine, _ = guards()  # (the peer before the restart is gone)
    link = Link(addr, listen=True, name="asker", max_message_size=4096, tls=None, guard=mine)
    general: Any = {"v": [[1, 2], {"x": None}], "stream": False}  # no common form: the general encoder
    async with link.pair:
        with trio.fail_after(20):
            unsent = [  # no peer: NNG refuses each; each sealed under the first session
                link.send_ask_now(2**40 + 1, b"shaped", 1.5e9),
                link.send_fields_now("msg", 2**40 + 2, [1, 2, 3], None, None),
                link.send_now(frame(ASK, "asker", 2**40 + 3, general, None, 1.5e9)),
            ]
            assert all(type(item) is Unsent for item in unsent), unsent
            mine.sender = MacSender(b"c" * 8, b"\5" * 32)  # a new session (LineKeys.agree does this)
            new_peer = Guard(MacSender(KIDS[1], SECRET))
            new_peer.add(Key(b"c" * 8, Scheme.MAC, b"\5" * 32, owner="asker"))  # the new session's key only
            async with trio.open_nursery() as nursery:
                for item in unsent:
                    nursery.start_soon(link.send, item)
                    await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(link.send, frame("msg", "asker", 2**40 + 4, b"last", None, None))
                await trio.testing.wait_all_tasks_blocked()
                async with Pair(dial=addr, name="echo", guard=new_peer) as peer:
                    got = []
                    while not got or got[-1][3] != b"last":
                        got.append((await peer.receive_fields())[0])
    assert [fields[2] for fields in got] == [2**40 + 1, 2**40 + 2, 2**40 + 3, 2**40 + 4]
    assert peer.statistics().unauthenticated == 0
    assert mine.seals == len(unsent) + 1 and mine.resealed == len(unsent)  # each stale one once more


async def test_a_stale_frame_that_goes_at_once_is_sealed_again_too(address: Callable[[str], str]) -> None:
    """As above, but the new peer is there when the line sends the stale frames: NNG takes
    each at once (``Link.send_now``, the fast path), and each must be sealed again there too."""
    addr = address("ipc")
    mine, _ = guards()
    link = Link(addr, listen=True, name="asker", max_message_size=4096, tls=None, guard=mine)
    general: Any = {"v": [[1, 2], {"x": None}], "stream": False}
    async with link.pair:
        with trio.fail_after(20):
            unsent = [
                link.send_ask_now(2**40 + 1, b"shaped", 1.5e9),
                link.send_fields_now("msg", 2**40 + 2, [1, 2, 3], None, None),
                link.send_now(frame(ASK, "asker", 2**40 + 3, general, None, 1.5e9)),
            ]
            assert all(type(item) is Unsent for item in unsent), unsent
            mine.sender = MacSender(b"c" * 8, b"\5" * 32)  # a new session
            new_peer = Guard(MacSender(KIDS[1], SECRET))
            new_peer.add(Key(b"c" * 8, Scheme.MAC, b"\5" * 32, owner="asker"))
            async with Pair(dial=addr, name="echo", guard=new_peer) as peer:
                await link.pair.wait_for_peers(1)
                for item in unsent:
                    await link.send(item)  # (room at once: no wait)
                await link.send(frame("msg", "asker", 2**40 + 4, b"last", None, None))
                got = []
                while not got or got[-1][3] != b"last":
                    got.append((await peer.receive_fields())[0])
    assert [fields[2] for fields in got] == [2**40 + 1, 2**40 + 2, 2**40 + 3, 2**40 + 4]
    assert peer.statistics().unauthenticated == 0
    assert mine.seals == len(unsent) + 1 and mine.resealed == len(unsent)
