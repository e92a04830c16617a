"""The surveyor's send and the respondent's deadline on their fast paths (issue 18).

A non-blocking send that NNG refuses for a moment (EAGAIN with nothing queued) is retried
once blocking, without asking for the send descriptor (which NNG would signal on every later
send); a survey's deadline reaches trio's clock only when somebody reads it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _frames import plain_values
from hypothesis import given, settings
from hypothesis import strategies as st
from pynng import lib

import patterns
import patterns._raw as raw
import patterns._survey as survey_module
from patterns import HOLE
from patterns._wire import MAX_SENDER_LENGTH


class _Refusing:
    """``pynng.lib`` with the first ``refusals`` non-blocking ``nng_sendmsg`` calls refused."""

    def __init__(self, lib: Any, refusals: int) -> None:
        self._lib, self.refusals, self.blocking = lib, refusals, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def nng_sendmsg(self, handle: Any, msg: Any, flags: int) -> int:
        if flags & self._lib.NNG_FLAG_NONBLOCK and self.refusals:
            self.refusals -= 1
            return int(self._lib.NNG_EAGAIN)  # NNG keeps the message: the caller still owns it
        if not flags & self._lib.NNG_FLAG_NONBLOCK:
            self.blocking += 1
        return int(self._lib.nng_sendmsg(handle, msg, flags))


async def test_a_refused_send_is_retried_blocking_without_the_send_descriptor(
    address: Callable[[str], str], monkeypatch: Any
) -> None:
    refusing = _Refusing(lib, refusals=3)  # the library patterns._raw calls
    monkeypatch.setattr(raw, "lib", refusing)
    monkeypatch.setattr(raw, "SEND_STALL_MS", 2000)  # a loaded machine's real stall: still no descriptor
    addr = address("ipc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r") as resp,
        trio.open_nursery() as nursery,
    ):
        await boss.wait_for_peers(1)
        assert boss._sock.send_timeout == 2000  # SEND_STALL_MS bounds the blocking retry

        async def answer() -> None:
            async for survey in resp:
                await survey.reply({"answer": survey.body["question"]}, kind="answer")

        nursery.start_soon(answer)
        for i in range(6):
            async with await boss.survey({"question": i}, timeout=5) as replies:
                reply = await replies.__anext__()
            assert reply.body == {"answer": i}
        nursery.cancel_scope.cancel()
    assert refusing.refusals == 0 and refusing.blocking >= 3  # (NNG may refuse one more itself)
    assert boss._send_fd is None  # NNG would signal it on every send once asked for
    assert boss.statistics().messages_sent == 6


async def test_a_surveys_deadline_reaches_trios_clock_when_read(address: Callable[[str], str]) -> None:
    addr = address("ipc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r") as resp,
    ):
        await boss.wait_for_peers(1)
        sent = trio.current_time()
        replies = await boss.survey("q", timeout=2.0)
        survey = await resp.receive()
        first = survey.deadline
        assert first is not None and abs(first - (sent + 2.0)) < 0.5
        assert survey.deadline == first  # converted once
        await survey.reply("a")
        assert (await replies.__anext__()).body == "a"
        replies.close()


class _Clock:
    """``time`` for ``patterns._survey``: one wall-clock reading for every survey."""

    @staticmethod
    def time() -> float:
        return 1.7e9


@settings(max_examples=300)
@given(question=st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.integers(-30, 30)
       | st.floats(allow_nan=False) | st.text(max_size=300) | st.binary(max_size=300) | plain_values(40),
       inline=st.booleans(), name=st.sampled_from(["boss", "b" * 200]))  # fmt: skip
def test_a_survey_written_from_its_shape_is_the_common_writers_frame(question: Any, inline: bool, name: str) -> None:
    """A room's poll written from the surveyor's shape (its question in the hole) is the
    very frame ``survey`` writes of the body the shape fills, from the common writer or the
    envelope's encoder (a value of no common form: a long byte string, a list)."""
    sock = patterns.Surveyor(name=name, max_message_size=4096)  # never opened: its writing alone
    sock._routes, sock._nng_ids = {}, itertools.count(1)  # (set when opened)
    sock._require_open = lambda operation: None  # type: ignore[method-assign]
    sock.next_id = lambda: 2**62 + 7  # type: ignore[method-assign]
    sent: list[bytes] = []

    async def capture(header: bytes, data: bytes, operation: str) -> None:
        sent.append(data)

    sock._send_message = capture  # type: ignore[method-assign]
    try:
        shape = sock.shape("poll", body={"question": HOLE}, scalars=True)
    except ValueError:  # a name with no common form: the room writes its polls the common way
        assert len(name.encode()) > MAX_SENDER_LENGTH
        return

    async def both() -> None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(survey_module, "time", _Clock)
            await sock.survey({"question": question}, kind="poll", timeout=5, inline=inline)
            await sock.survey("not read", kind="poll", timeout=5, inline=inline, shape=shape, hole=question)

    trio.run(both)
    assert sent[0] == sent[1]
