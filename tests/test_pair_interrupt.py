"""``Pair.receive_fields_once`` and ``Pair.interrupt_receive``: a receive that waits for NNG at
most once and can be ended by another task without a cancel scope (the hotline asker's wait).

No test sleeps to synchronise: a task is known to be parked on the descriptor by
``trio.testing.wait_all_tasks_blocked``; every wait is bounded by ``fail_after``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from patterns import Closed, Pair

pytestmark = pytest.mark.timeout(60)

Address = Callable[[str], str]


async def _connected(a: Pair, b: Pair) -> None:
    await a.wait_for_peers(1)
    await b.wait_for_peers(1)


@pytest.mark.parametrize("transport", ["inproc", "ipc"])
async def test_a_queued_frame_comes_at_once(address: Address, transport: str) -> None:
    addr = address(transport)
    async with Pair(listen=addr, name="a") as a, Pair(dial=addr, name="b") as b:
        with trio.fail_after(5):
            await _connected(a, b)
            await b.send({"n": 1})
            got = None
            while got is None:  # (the frame may still be on its way: one wait at a time)
                got = await a.receive_fields_once()
            (kind, sender, _ident, body, _re, _deadline), pipe = got
            assert kind == "data" and body == {"n": 1} and sender == "b"
            assert pipe in {peer.id for peer in a.peers}


async def test_an_interrupt_ends_the_wait_and_the_socket_reads_on(address: Address) -> None:
    addr = address("ipc")
    async with Pair(listen=addr, name="a") as a, Pair(dial=addr, name="b") as b:
        with trio.fail_after(5):
            await _connected(a, b)
            results: list[object] = []

            async def read_once() -> None:
                results.append(await a.receive_fields_once())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_once)
                await trio.testing.wait_all_tasks_blocked()
                a.interrupt_receive()
            assert results == [None]
            assert not a.closed
            a.interrupt_receive()  # nobody waits: nothing happens, the next wait still works
            await b.send("after")
            got = None
            while got is None:
                got = await a.receive_fields_once()
            assert got[0][3] == "after"
            await b.send("plain")
            assert await a.receive() == "plain"  # the ordinary receive is not disturbed


async def test_closing_the_socket_raises_closed_not_none(address: Address) -> None:
    addr = address("ipc")
    async with Pair(listen=addr, name="a") as a:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:

                async def read_once() -> None:
                    with pytest.raises(Closed):
                        await a.receive_fields_once()

                nursery.start_soon(read_once)
                await trio.testing.wait_all_tasks_blocked()
                a.interrupt_receive()  # an interrupt, then a close before the reader ran: the close wins
                a.close()
    async with Pair(listen=address("ipc"), name="c") as c:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:

                async def read_until_closed() -> None:
                    with pytest.raises(Closed):
                        await c.receive_fields_once()

                nursery.start_soon(read_until_closed)
                await trio.testing.wait_all_tasks_blocked()
                c.close()
            c.interrupt_receive()  # after close: a no-op


async def test_a_cancelled_wait_raises_cancelled(address: Address) -> None:
    async with Pair(listen=address("ipc"), name="a") as a:
        with trio.move_on_after(0.05) as scope:
            await a.receive_fields_once()
        assert scope.cancelled_caught


async def test_just_sent_waits_at_once_and_still_takes_a_queued_frame(address: Address) -> None:
    addr = address("ipc")
    async with Pair(listen=addr, name="a") as a, Pair(dial=addr, name="b") as b:
        with trio.fail_after(5):
            await _connected(a, b)
            await b.send("early")
            assert a._recv_fd is not None
            await trio.lowlevel.wait_readable(a._recv_fd)  # it is queued now
            got = await a.receive_fields_once(just_sent=True)  # the descriptor is readable: no real wait
            assert got is not None and got[0][3] == "early"
            a.close()
            with pytest.raises(Closed):
                await a.receive_fields_once(just_sent=True)
