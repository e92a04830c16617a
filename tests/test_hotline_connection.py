"""Hotlines: who gets on a line and when it is dropped: a second dialer refused (against
child processes and in process), a silent peer disconnected by the heartbeats, and how a
line is opened (listen= or dial=).

No test sleeps to synchronise; every wait is bounded (the conftest deadline, or an
explicit ``fail_after``).
"""

from __future__ import annotations

import pytest
import trio
from _hotline import Address, greet, launch_agent, line_to_alice
from conftest import Peers, read_line

import consensus
from patterns import Pair

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------- a second dialer is refused
async def test_second_dialer_is_refused_first_conversation_goes_on(address: Address, peers: Peers) -> None:
    addr = address("ipc")
    async with line_to_alice(peers, addr) as line:
        assert await line.ask(0, timeout=5) == {"echo": 0, "by": "alice"}
        intruder = launch_agent(peers, addr, "bob")
        # keep the conversation going while bob starts and tries to dial in
        count = 0
        with trio.move_on_after(2):
            while True:
                count += 1
                assert await line.ask(count, timeout=5) == {"echo": count, "by": "alice"}
                await line.send({"n": count})
                assert await line.receive() == {"n": count}
        assert count > 5
        stats = line.statistics()  # (before the reply to the ask cut short comes, stale)
        assert stats.connections == 1 and stats.connected
        assert stats.asks_failed == 0 and stats.stale_replies == 0
        with trio.fail_after(10):  # bob learns that the line is taken, and never says it is connected
            assert await read_line(intruder) == "taken TAKEN connected=False"
        assert intruder.poll() is None  # bob is still there, not crashed


async def test_a_second_dialer_learns_the_line_is_taken_and_never_says_connected(address: Address) -> None:
    """pair1 refuses the second dialer: its connection closes before any hello. It is
    TAKEN (not connected) while NNG dials again and again; its waits, sends and asks raise
    LineTaken. Once the first dialer leaves, it gets in."""
    addr = address("ipc")
    leave = trio.Event()

    async def first_dialer(task_status: trio.TaskStatus[consensus.Hotline]) -> None:
        async with consensus.hotline(dial=addr, name="first") as first:
            await first.wait_connected()
            task_status.started(first)
            await leave.wait()

    async with (
        consensus.hotline(listen=addr, name="server", on_ask=lambda v: ["server", v]) as server,
        trio.open_nursery() as nursery,
    ):
        with trio.fail_after(30):  # NNG redials with a growing back-off; 10 s ran out beside two busy loops
            first = await nursery.start(first_dialer)
            await server.wait_connected()
            async with consensus.hotline(dial=addr, name="second") as second:
                with pytest.raises(consensus.LineTaken, match="already has a peer"):
                    await second.wait_connected()
                while second.statistics().refused < 3:  # NNG dials again: refused each time
                    assert second.state is consensus.LineState.TAKEN and not second.connected
                    await second._reader.changed.wait()
                assert not second.statistics().connected and second.statistics().connections == 0
                with pytest.raises(consensus.LineTaken):
                    await second.ask("me too?", timeout=5)
                with pytest.raises(consensus.LineTaken):
                    await second.send("me too")
                assert await first.ask(1, timeout=5) == ["server", 1]  # the first conversation goes on
                assert server.statistics().connections == 1

                leave.set()  # the first dialer leaves: the second gets in
                while second.state is not consensus.LineState.CONNECTED:
                    await second._reader.changed.wait()
                assert await second.ask(2, timeout=5) == ["server", 2]
                assert second.statistics().connections == 1 and server.statistics().connections == 2


# ---------------------------------------------------------------- heartbeats
async def test_a_silent_peer_is_disconnected_and_its_asks_fail(address: Address) -> None:
    """A peer that sends nothing (not even pongs) is dropped after its missed heartbeats;
    the ask waiting on it fails with PeerLost, long before its own timeout."""
    addr = address("ipc")
    async with (
        consensus.hotline(listen=addr, name="test", heartbeat=0.1, missed_heartbeats=2) as line,
        Pair(dial=addr, name="mute") as mute,
    ):
        with trio.fail_after(10):
            await mute.wait_for_peers(1)
            await greet(mute)  # then not a word
            await line.wait_connected()
            start = trio.current_time()
            with pytest.raises(consensus.PeerLost):
                await line.ask("anyone?", timeout=30)
            assert trio.current_time() - start < 5
            heard = [(await mute.receive_envelope()).kind for _ in range(2)]
            assert heard[0] == "hello" and heard[1] in ("ask", "ping")  # it did hear us
        stats = line.statistics()
        assert stats.silent_disconnects >= 1 and stats.asks_failed >= 1 and stats.asks_open == 0


# ---------------------------------------------------------------- opening a line
async def test_a_line_listens_or_dials_at_an_address_exactly_one(address: Address) -> None:
    addr = address("inproc")
    with pytest.raises(ValueError, match="exactly one of listen= or dial="):
        async with consensus.hotline(listen=addr, dial=addr):
            pass
    with pytest.raises(ValueError, match="exactly one of listen= or dial="):
        async with consensus.hotline():
            pass
    with pytest.raises(TypeError, match="must be text"):
        async with consensus.hotline(listen=True):  # type: ignore[arg-type]  # the old flag
            pass
    async with consensus.hotline(listen=addr) as line:
        assert line.state is consensus.LineState.WAITING and not line.connected
        assert line.bound_address == addr and "waiting for a peer" in repr(line)
