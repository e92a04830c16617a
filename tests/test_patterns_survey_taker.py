"""``patterns.SurveyTaker``: a respondent's surveys taken in another thread than trio's (the
asyncio loop of an aio member, docs/asyncio.md §4.6), against a plain NNG surveyor.

A small plain survey comes decoded; a malformed one comes as a ``Taken`` that trio opens
(and counts); nothing queued is None; a closed socket says ``Closed``; the reply leaves from
the same thread and the counters stay exact.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pynng
import pytest
import trio

import patterns
from patterns import Closed, Envelope, IncomingSurvey, MalformedMessage


async def test_the_taker_decodes_plain_surveys_and_leaves_the_rest_to_trio(address: Callable[[str], str]) -> None:
    addr = address("ipc")
    connected = threading.Event()
    with pynng.Surveyor0(survey_time=5000, recv_timeout=5000) as raw:
        raw.add_post_pipe_connect_cb(lambda _pipe: connected.set())
        raw.listen(addr)
        async with patterns.Respondent(dial=addr, name="r") as resp:
            await resp.wait_for_peers(1)
            # The dialer may see the connection before the surveyor does: a survey sent before
            # that goes to nobody (it happened on a busy machine).
            assert await trio.to_thread.run_sync(connected.wait, 10)
            taker = patterns.SurveyTaker(resp)
            assert await trio.to_thread.run_sync(taker.take) is None  # nothing queued

            raw.send(patterns.encode(Envelope("poll", "host", 7, {"question": 1})))
            await trio.lowlevel.wait_readable(resp.receive_descriptor)
            got = await trio.to_thread.run_sync(taker.take)
            assert isinstance(got, IncomingSurvey) and got.body == {"question": 1}

            def reply() -> int | Callable[[], int] | None:
                return got.reply_threadsafe({"answer": 2}, kind="answer", ident=resp.next_id())

            size = await trio.to_thread.run_sync(reply)
            assert isinstance(size, int)
            got.release_elsewhere()
            resp.count_sent(1, size)
            answer = patterns.decode(await trio.to_thread.run_sync(raw.recv))
            assert (answer.kind, answer.body, answer.re) == ("answer", {"answer": 2}, 7)

            raw.send(b"\xff not a frame")
            await trio.lowlevel.wait_readable(resp.receive_descriptor)
            taken = await trio.to_thread.run_sync(taker.take)
            assert isinstance(taken, patterns.Taken)
            with pytest.raises(MalformedMessage):
                taken.open()  # trio's: decoded and counted here
            stats = resp.statistics()
            assert (stats.messages_received, stats.messages_sent, stats.malformed) == (2, 1, 1)
            assert stats.bytes_sent == size
        with pytest.raises(Closed):
            taker.take()
