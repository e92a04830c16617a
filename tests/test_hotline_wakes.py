"""Hotlines: the run's instrument that wakes a receive loop an asker left parked
(:mod:`consensus.hotline.wakes`) is there only while lines ask: a line that only answers
never installs it, an idle one removes it after :data:`~consensus.hotline.wakes.DISARM_AFTER`
passes, and an ask after that installs it again, so a frame that comes once the ask is
over is still read at once. And the link's count of queued senders, which replaced a look
at its lock per frame.

No test sleeps to synchronise; every wait is bounded.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from _hotline import Address, greet, two_lines

import consensus
from consensus.hotline import wakes
from consensus.hotline.link import Link
from patterns import Envelope, Pair

pytestmark = pytest.mark.timeout(60)


class _Line:
    """An :class:`~consensus.hotline.wakes.Owing` that records being settled."""

    def __init__(self) -> None:
        self.unread = True
        self.settled = 0

    def settle_unread(self) -> bool:
        self.unread = False
        self.settled += 1
        return False


async def _passes(count: int) -> None:
    for _ in range(count):
        await trio.lowlevel.checkpoint()  # (one pass of trio's scheduler each)


async def test_armed_only_while_something_is_owed() -> None:
    run = wakes.attach()
    try:
        assert wakes.current() is run and not run.armed  # attached, not yet an instrument
        run.arm()
        run.arm()  # (idempotent)
        line = _Line()
        run.owing.append(line)
        await _passes(2)
        assert line.settled == 1 and not run.owing
        await _passes(wakes.DISARM_AFTER + 2)
        assert not run.armed  # nothing owed for DISARM_AFTER passes: removed
        run.arm()
        again = _Line()
        run.owing.append(again)
        await _passes(2)
        assert again.settled == 1
    finally:
        wakes.detach(run)
    assert wakes.current() is None and not run.armed


async def test_a_line_that_only_answers_installs_nothing(address: Address) -> None:
    addr = address("ipc")

    async def echo(value: Any) -> Any:
        return value

    async with (
        consensus.hotline(listen=addr, name="answers", on_ask=echo) as line,
        Pair(dial=addr, name="raw") as pair,
    ):
        with trio.fail_after(5):
            await pair.wait_for_peers(1)
            await greet(pair)
            await line.wait_connected()
            for i in range(3):
                ask = Envelope(kind="ask", sender="raw", id=10 + i, body={"v": i, "stream": False})
                await pair.send_envelope(ask)
                reply = await pair.receive_envelope()
                while reply.kind != "reply":  # (its hello, a ping)
                    reply = await pair.receive_envelope()
                assert (reply.kind, reply.re, reply.body) == ("reply", 10 + i, i)
        run = wakes.current()
        assert run is not None and not run.armed


async def test_an_ask_after_the_instrument_left_installs_it_again(address: Address) -> None:
    """After an idle spell removed the instrument, an ask puts it back before its step ends:
    a value the peer sends once that ask is over reaches ``receive()`` (the receive loop the
    asker left parked is woken), as it does right after the first ask."""
    async with two_lines(address("ipc"), server_on_ask=_echo) as (server, client):
        with trio.fail_after(10):
            assert await client.ask("first", timeout=5) == "first"
            await server.send("one")
            assert await client.receive() == "one"
            await _passes(wakes.DISARM_AFTER + 2)
            run = wakes.current()
            assert run is not None and not run.armed
            assert await client.ask("second", timeout=5) == "second"
            assert run.armed
            await server.send("two")
            assert await client.receive() == "two"


async def _echo(value: Any) -> Any:
    return value


async def test_a_send_cancelled_in_the_queue_leaves_the_link_free(address: Address) -> None:
    """A send that waits (no peer yet) and is cancelled there no longer counts as queued:
    once a peer is there, frames go out at once again (``Link.send_now``)."""
    addr = address("ipc")
    link = Link(addr, listen=True, name="link", max_message_size=1 << 20, tls=None)
    frame = Envelope(kind="msg", sender="link", id=1, body="x")
    async with link.pair:
        with trio.move_on_after(0.05) as waited:
            await link.send(frame)  # no peer: it waits, queued, until cancelled
        assert waited.cancelled_caught and not link.send_now(frame)
        async with Pair(dial=addr, name="raw") as raw:
            with trio.fail_after(5):
                await link.pair.wait_for_peers(1)
                assert link.send_now(frame)
                assert (await raw.receive_envelope()).body == "x"
