"""The surveyor's send and the respondent's deadline on their fast paths (issue 18).

A non-blocking send that NNG refuses for a moment (EAGAIN with nothing queued) is retried
once blocking, without asking for the send descriptor (which NNG would signal on every later
send); a survey's deadline reaches trio's clock only when somebody reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from pynng import lib

import patterns
import patterns._raw as raw


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
