"""A sealed hotline's greeting must be fresh, over real processes (in memory:
``tests/test_line_replay.py``).

A tcp tap (``tests/line_tap.py``) records a dialer's hellos; the listener restarts, a new
dialer connects, the recording is replayed into its line: the line keeps working and the
replay is counted (``stale_hellos``).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conftest import Peers, free_tcp_port_run, read_line, tell

import consensus

SECRET = "the line's secret, for the replay test"


async def start_tap(peers: Peers) -> tuple[str, str, Any]:
    """A tcp tap (a child, tests/line_tap.py): the address a dialer dials, the one the
    listener listens on, and the tap's process."""
    port = free_tcp_port_run(2)
    tap = peers.start(str(port), str(port + 1), script="line_tap.py")
    assert await read_line(tap) == "ready"
    return f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}", tap


async def start_dialer(peers: Peers, address: str, name: str, heartbeat: str | None = None) -> Any:
    """A sealed hotline agent (a child process) dialing ``address``, with ``--heartbeat`` if given."""
    beat = () if heartbeat is None else ("--heartbeat", heartbeat)
    agent = peers.start(address, "--dial", "--name", name, "--secret-env", *beat, script="hotline_agent.py")
    with trio.fail_after(20):
        assert await read_line(agent) == "ready"
    return agent


# ---------------------------------------------------------------- over real processes
@pytest.mark.deadline(90)
async def test_a_recorded_hello_replayed_after_the_listener_restarted_switches_nothing(
    peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1: a dialer (a child process) reaches the listener through a tcp tap, which
    records its hellos. Both ends stop; the listener starts again (a new key id: the old
    dialer's greeting key is unknown to it), a new dialer connects through the tap, and the
    tap replays run 1's hellos into the live connection. On the code before the fresh
    greeting the listener agreed a session with the recorded key id and dropped the live
    one: its next ask went unanswered. Now the line goes on and the replay is counted."""
    monkeypatch.setenv("NNGC_SECRET", SECRET)
    front, target, tap = await start_tap(peers)
    secret = consensus.Secret(SECRET.encode())

    async with consensus.hotline(listen=target, name="listener", secret=secret) as line:
        first = await start_dialer(peers, front, "dialer")
        await line.wait_connected()
        assert (await line.ask("run 1", timeout=10))["by"] == "dialer"
        tell(first, "quit")
        await line.wait_disconnected()
    async with consensus.hotline(listen=target, name="listener", secret=secret) as line:
        await start_dialer(peers, front, "dialer")
        await line.wait_connected()
        assert (await line.ask("run 2", timeout=10))["by"] == "dialer"
        guard = line._link.pair.guard
        assert guard is not None
        sealing = guard.sender.kid  # type: ignore[attr-defined]
        received = line._link.pair.statistics().messages_received
        tell(tap, "replay hellos")
        replayed = await read_line(tap)
        assert replayed.startswith("replayed") and int(replayed.split()[1]) >= 1
        count = int(replayed.split()[1])
        with trio.fail_after(10):  # the replayed hellos checked out (a recording is authentic)...
            while line._link.pair.statistics().messages_received < received + count:
                await trio.sleep(0.05)
        assert (await line.ask("after the replay", timeout=10))["by"] == "dialer"  # ...and the line goes on
        assert guard.sender.kid == sealing  # type: ignore[attr-defined]
        stats = line.statistics()
        assert stats.stale_hellos == count and stats.connected and stats.connections == 1
        print(f"\nreplayed {count} recorded hellos: stale_hellos={stats.stale_hellos}, the session kept")
    tell(tap, "quit")


@pytest.mark.deadline(120)
async def test_a_dead_dialers_unread_hello_does_not_take_the_next_reconnection(
    peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack on an echo of key ids (real processes; the in-memory twin is above): a tap
    keeps a dialer's hellos of a reconnection from the listener (``hold``), so they echo the
    listener's live id and were never read; that dialer dies, a new one connects; at their
    next reconnection the tap sends the held hellos first. On the code that echoed key ids
    the listener agreed its session with the dead dialer, dropped the live one's hello as a
    replay and its next ask went unanswered (until the heartbeats, 15 s here, gave up). Now
    the held hello is answered at most once and the line goes on."""
    monkeypatch.setenv("NNGC_SECRET", SECRET)
    front, target, tap = await start_tap(peers)
    secret = consensus.Secret(SECRET.encode())

    async def dialer(name: str) -> Any:
        return await start_dialer(peers, front, name, "5")

    async def command(text: str) -> str:
        tell(tap, text)
        with trio.fail_after(10):
            return await read_line(tap)

    async with consensus.hotline(listen=target, name="listener", secret=secret, heartbeat=5) as line:
        first = await dialer("first")
        await line.wait_connected()
        assert (await line.ask("run 1", timeout=10))["by"] == "first"
        assert await command("hold") == "ok"
        assert await command("cut") == "ok"  # the first dialer dials again; its hellos are held
        with trio.fail_after(20):
            while await command("held") == "held 0":
                await trio.sleep(0.05)
        first.kill()
        first.wait()
        assert await command("release") == "ok"
        assert await command("cut") == "ok"
        await line.wait_disconnected()
        await dialer("second")
        await line.wait_connected()
        assert (await line.ask("run 2", timeout=10))["by"] == "second"
        connections = line.statistics().connections
        assert await command("inject held") == "ok"
        assert await command("cut") == "ok"  # a reconnection: the held hellos go first
        with trio.fail_after(20):
            while line.statistics().connections == connections or not line.connected:
                await trio.sleep(0.05)
        assert (await line.ask("after the reconnection", timeout=5))["by"] == "second"
        print(f"\na dead dialer's held hellos, sent first: {line.statistics()}")
    tell(tap, "quit")



@pytest.mark.deadline(120)
async def test_a_sealed_line_reconnects_when_either_end_restarts(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fresh greeting between real processes: the dialer (a child) restarted three times,
    then the listener (a new line, a new key id) while the dialer runs on, whose first hello
    may then echo the listener's earlier id (answered, counted), then both at once."""
    monkeypatch.setenv("NNGC_SECRET", SECRET)
    target = f"tcp://127.0.0.1:{free_tcp_port_run(1)}"
    secret = consensus.Secret(SECRET.encode())

    async def dialer(name: str) -> Any:
        return await start_dialer(peers, target, name, "0.3")

    async with consensus.hotline(listen=target, name="listener", secret=secret, heartbeat=0.3) as line:
        for run in range(3):
            agent = await dialer(f"dialer-{run}")
            await line.wait_connected()
            assert (await line.ask(run, timeout=10))["by"] == f"dialer-{run}"
            agent.kill()
            agent.wait()
            await line.wait_disconnected()
        agent = await dialer("dialer-3")
        await line.wait_connected()
        assert line.statistics().stale_hellos == 0  # (each new dialer's first hello was blind)
    async with consensus.hotline(listen=target, name="listener", secret=secret, heartbeat=0.3) as line:
        with trio.fail_after(20):
            await line.wait_connected()  # the same dialer, connected again on its own
        assert (await line.ask("again", timeout=10))["by"] == "dialer-3"
        # Its first hello echoed the listener before (counted), unless the new listener's came
        # first: then it answered that one, echoing the new id.
        assert line.statistics().stale_hellos <= 1
    agent.kill()
    agent.wait()
    async with consensus.hotline(listen=target, name="listener", secret=secret, heartbeat=0.3) as line:
        await dialer("dialer-4")
        await line.wait_connected()
        assert (await line.ask("both", timeout=10))["by"] == "dialer-4"
