"""A pair's thread-safe fields and shapes (``Pair.send_fields_threadsafe``,
``send_shaped_threadsafe``, ``receive_fields_nowait``): what an asyncio loop or a plain
thread sends and reads on a hotline must be exactly what trio's writers send and trio's
reader reads, refused alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from _frames import plain_values
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.trust import Guard, Key
from consensus.trust.seal import MacSender, Scheme
from patterns import HOLE, Closed, Envelope, MalformedMessage, MessageTooLarge, Pair, Shape
from patterns._wire import MAX_KIND_LENGTH

PROPERTY = settings(max_examples=300)

plain = plain_values(300)
values = st.binary(max_size=300) | st.text(max_size=300) | plain
ids = st.integers(0, 2**64 - 1) | st.integers(2**32, 2**64 - 1)
deadlines = st.none() | st.floats(allow_nan=False) | st.integers(0, 9)
SHAPES = [
    ("ask", False, True, {"v": HOLE, "stream": False}),
    ("reply", True, False, HOLE),
    ("chunk", True, True, {"a": 1, "v": HOLE, "b": "x"}),
    ("msg", False, False, HOLE),
]


@pytest.fixture(scope="module", params=[4096, 300])
def pair(request: pytest.FixtureRequest) -> Pair:
    """One socket for every example, never opened: what it writes is caught before NNG."""
    return Pair(name="asker", max_message_size=request.param)


@contextmanager
def caught(pair: Pair) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """The frames trio's writers and the thread-safe ones hand to NNG, caught instead."""
    trio_sent: list[bytes] = []
    thread_sent: list[bytes] = []
    pair._try_send = lambda data, operation: trio_sent.append(data) or True  # type: ignore[method-assign]
    pair._send_threadsafe = lambda handle, data: thread_sent.append(data) or len(data)  # type: ignore[method-assign]
    pair._handle = object()  # (open, as far as the thread-safe writers look)
    try:
        yield trio_sent, thread_sent
    finally:
        del pair._try_send, pair._send_threadsafe, pair._handle  # (the class's again)


def outcome(send: Callable[[], Any]) -> Any:
    try:
        return send()
    except MessageTooLarge:
        return MessageTooLarge


def sent_alike(went: Any, size: Any, trio_sent: list[bytes], thread_sent: list[bytes]) -> None:
    """The thread's send (``size``) did what trio's (``went``) did: the same frame, the same
    error, or nothing from either."""
    if went is MessageTooLarge:
        assert size is MessageTooLarge and not thread_sent
    elif went:
        assert thread_sent == trio_sent and size == len(trio_sent[0])
    else:
        assert size is None and not thread_sent and not trio_sent


@PROPERTY
@given(st.sampled_from(["ask", "reply", "msg", "error"]) | st.text(min_size=1, max_size=MAX_KIND_LENGTH), ids,
       values | st.builds(lambda v, s: {"v": v, "stream": s}, values, st.booleans()), st.none() | ids, deadlines)
def test_fields_sent_from_a_thread_are_the_bytes_trio_sends(pair: Pair, kind: str, ident: int, body: Any,
                                                            re: int | None, deadline: Any) -> None:  # fmt: skip
    """``send_fields_threadsafe`` sends exactly what ``send_fields_nowait`` sends, or
    nothing when that leaves the frame to the general path, or raises alike."""
    with caught(pair) as (trio_sent, thread_sent):
        went = outcome(lambda: pair.send_fields_nowait(kind, ident, body, re, deadline))
        size = outcome(lambda: pair.send_fields_threadsafe(kind, ident, body, re, deadline))
    sent_alike(went, size, trio_sent, thread_sent)


@PROPERTY
@given(st.sampled_from(SHAPES), ids, st.none() | ids, deadlines, values)
def test_a_shape_sent_from_a_thread_is_the_frame_trio_sends(pair: Pair, shape: tuple[str, bool, bool, Any],
                                                            ident: int, re: int | None, deadline: Any,
                                                            value: Any) -> None:  # fmt: skip
    """``send_shaped_threadsafe`` sends exactly the frame trio's asker or server sends for
    the same fields (``Link.send_ask_now``: the shape's, else the fields' as a common
    frame), in one call; nothing when neither writes it; the same error when it is too large."""
    kind, has_re, has_deadline, body = shape
    made = pair.shape(kind, re=has_re, deadline=has_deadline, body=body)
    with caught(pair) as (trio_sent, thread_sent):
        went = outcome(lambda: pair.send_shaped_nowait(made, ident, re, deadline, value))
        if not went:
            went = outcome(lambda: pair.send_fields_nowait(kind, ident, made.fill(value), re, deadline))
        size = outcome(lambda: pair.send_shaped_threadsafe(made, ident, re, deadline, value))
    sent_alike(went, size, trio_sent, thread_sent)


def test_a_shape_fills_its_body() -> None:
    pair = Pair(name="a")
    assert pair.shape("reply", re=True, deadline=False).fill(b"x") == b"x"
    ask = pair.shape("ask", re=False, deadline=True, body={"v": HOLE, "stream": False})
    assert ask.fill("q") == {"v": "q", "stream": False}
    assert ask.fill("q") is not ask.fill("q")  # a body of its own each time


def _guard(secret: bytes) -> Guard:
    made = Guard(MacSender(b"k" * 8, secret))
    made.add(Key(b"k" * 8, Scheme.MAC, secret))
    return made


async def test_threads_send_and_read_fields_on_a_real_line(address: Callable[[str], str]) -> None:
    """Frames sent from another thread arrive as trio's would; ``receive_fields_nowait``
    reads them as ``receive_fields`` does (an expected shape, a common frame, an envelope
    in parts), refuses a malformed frame (counted) and goes on; a closed socket raises
    :class:`Closed` in the thread."""
    addr = address("ipc")
    async with Pair(listen=addr, name="a") as a, Pair(dial=addr, name="b") as b:
        with trio.fail_after(10):
            await a.wait_for_peers(1)
            await b.wait_for_peers(1)
            ask = a.shape("ask", re=False, deadline=True, body={"v": HOLE, "stream": False})
            b.expect(b.shape("ask", re=False, deadline=True, body={"v": HOLE, "stream": False}, sender="a"))

            sends: list[Callable[[], int | None]] = [
                lambda: a.send_shaped_threadsafe(ask, 2**62 + 1, None, 1.5e9, b"x" * 64),
                lambda: a.send_shaped_threadsafe(ask, 2**62 + 2, None, 1.5e9, {"not": "shaped"}),
                lambda: a.send_fields_threadsafe("msg", 3, [1, "two"], None, None),
            ]
            read: list[Any] = []

            def read_in_a_thread() -> None:
                while True:
                    try:
                        got = b.receive_fields_nowait()
                    except MalformedMessage as exc:
                        read.append(exc)
                        continue
                    if got is None:
                        return
                    read.append(got[0])

            async def read_one() -> None:
                count = len(read) + 1
                while len(read) < count:  # (the thread reads what is queued; trio waits for more)
                    await trio.lowlevel.wait_readable(b.receive_descriptor)
                    await trio.to_thread.run_sync(read_in_a_thread)

            for send in sends:  # one at a time: pair1 refuses a send while NNG still holds the one before
                size = await trio.to_thread.run_sync(send)
                while size is None:  # (refused at once: NNG's thread had not let go of the last frame yet)
                    await trio.sleep(0.01)
                    size = await trio.to_thread.run_sync(send)
                a.count_sent(1, size)
                await read_one()
            await a.send_bytes(b"\xa1\x61v\x02")  # version 2: malformed
            await read_one()
            await a.send(b"y" * 70_000, inline=True)  # an envelope in parts: the general reader's
            await read_one()
            assert read[:3] == [("ask", "a", 2**62 + 1, {"v": b"x" * 64, "stream": False}, None, 1.5e9),
                                ("ask", "a", 2**62 + 2, {"v": {"not": "shaped"}, "stream": False}, None, 1.5e9),
                                ("msg", "a", 3, [1, "two"], None, None)]  # fmt: skip
            assert isinstance(read[3], MalformedMessage) and b.statistics().malformed == 1
            assert read[4][0] == "data" and read[4][3] == b"y" * 70_000
            assert b.receive_fields_nowait() is None
            assert a.statistics().messages_sent == 5 and b.statistics().messages_received == 5
    with pytest.raises(Closed):
        a.send_fields_threadsafe("msg", 4, b"late", None, None)
    with pytest.raises(Closed):
        a.send_shaped_threadsafe(ask, 2**62 + 3, None, 1.5e9, b"late")


async def test_a_sealed_pair_leaves_thread_sends_to_trio(address: Callable[[str], str]) -> None:
    """A guard's sequence is trio's alone: the thread-safe writers send nothing (None), and
    the line's frames keep going out sealed from trio."""
    addr = address("ipc")
    key = b"\1" * 32
    async with Pair(listen=addr, name="a", guard=_guard(key)) as a, Pair(dial=addr, name="b", guard=_guard(key)) as b:
        with trio.fail_after(10):
            await a.wait_for_peers(1)
            await b.wait_for_peers(1)
            shape: Shape = a.shape("reply", re=True, deadline=False)
            results = await trio.to_thread.run_sync(lambda: (
                a.send_fields_threadsafe("msg", 1, b"x", None, None),
                a.send_shaped_threadsafe(shape, 2**40, 2**41, None, b"x"),
                threading.current_thread() is not threading.main_thread()))  # fmt: skip
            assert results == (None, None, True)
            assert a.send_shaped_nowait(shape, 2**40, 2**41, None, b"y")
            envelope: Envelope = await b.receive_envelope()
            assert (envelope.kind, envelope.body, envelope.session) == ("reply", b"y", b"k" * 8)
