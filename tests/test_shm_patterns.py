"""Every pattern carries a large payload through shared memory between real processes
(``tests/shm_peer.py``), and the consensus layers above them do too.

Each test gives its processes one segment directory (``NNG_CONSENSUS_SHM_DIR``) that
must be empty at the end: every receiver attached, so every name was released.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from _shm import no_leak, segments, shm_dir, unshare_works
from conftest import ROOT, Peers, read_line, tell

import consensus
import patterns

__all__ = ["no_leak", "shm_dir"]  # fixtures

pytestmark = pytest.mark.timeout(90)

MiB = 1024 * 1024
SIZE = 4 * MiB  # above the default threshold
PAYLOAD = bytes(range(256)) * (SIZE // 256)


@pytest.fixture
def folder(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("NNG_CONSENSUS_SHM_DIR", str(shm_dir))  # this process and its children
    yield shm_dir


async def start(peers: Peers, pattern: str, address: str) -> subprocess.Popen[str]:
    proc = peers.start(pattern, address, str(SIZE), script="shm_peer.py")
    with trio.fail_after(15):
        assert await read_line(proc) == "ready"
    return proc


async def child_got(proc: subprocess.Popen[str]) -> None:
    with trio.fail_after(15):
        assert await read_line(proc) == f"got view True {hashlib.sha256(PAYLOAD).hexdigest()}"


def from_child(body: Any) -> None:
    data = body["data"]
    assert isinstance(data, memoryview) and data.readonly, type(data)
    assert data == bytes([7]) * SIZE


@pytest.mark.parametrize("pattern", ["pair", "bus", "push"])
async def test_stream_patterns_carry_large_buffers_through_shared_memory(
    pattern: str, address: Callable[[str], str], peers: Peers, folder: Path
) -> None:
    addr = address("ipc")
    mine, theirs = {
        "pair": (patterns.Pair, "pair"),
        "bus": (patterns.Bus, "bus"),
        "push": (patterns.Push, "pull"),
    }[pattern]
    async with mine(listen=addr, name="test") as sock:
        proc = await start(peers, theirs, addr)
        await sock.wait_for_peers(1)
        before = sock.statistics().bytes_sent
        await sock.send({"data": PAYLOAD})
        assert sock.statistics().bytes_sent - before < 1024, "only a reference went through the socket"
        await child_got(proc)
        if pattern != "push":
            with trio.fail_after(15):
                from_child(await sock.receive())
        tell(proc, "quit")
    assert segments(folder) == []


async def test_surveys_and_their_replies_carry_large_buffers(
    address: Callable[[str], str], peers: Peers, folder: Path
) -> None:
    addr = address("ipc")
    async with patterns.Surveyor(listen=addr, name="test") as sock:
        proc = await start(peers, "respondent", addr)
        await sock.wait_for_peers(1)
        async with await sock.survey({"data": PAYLOAD}, timeout=10) as replies:
            await child_got(proc)
            async for reply in replies:
                from_child(reply.body)
                break
        tell(proc, "quit")
    assert segments(folder) == []


async def test_a_bus_counts_every_connection_nng_sends_to_not_only_those_noted(
    address: Callable[[str], str], folder: Path
) -> None:
    """NNG tells the socket of a new connection on its own thread, and the trio side notes
    it a moment later; a fan-out sent meanwhile goes to that connection too. Counted one
    receiver short, the segment went to the first receiver and the other got SegmentGone."""
    addr = address("ipc")
    async with patterns.Bus(listen=addr) as hub, patterns.Bus(dial=addr) as first:
        await hub.wait_for_peers(1)
        noted, arrived = hub._connected, trio.Event()
        late: list[Any] = []

        def hold_back(peer: Any) -> None:
            late.append(peer)
            arrived.set()

        hub._connected = hold_back  # type: ignore[method-assign]  # noted late
        async with patterns.Bus(dial=addr) as second:
            with trio.fail_after(15):
                await arrived.wait()  # NNG has it, the socket's peer set not yet
                assert len(hub.peers) == 1
                await hub.send({"data": PAYLOAD})
                for sock in (first, second):
                    got = await sock.receive()
                    assert isinstance(got["data"], memoryview) and got["data"] == PAYLOAD
            hub._connected = noted  # type: ignore[method-assign]
            for peer in late:
                noted(peer)
            del got
    assert segments(folder) == []


async def test_a_numpy_like_buffer_and_the_zero_copy_producer(
    address: Callable[[str], str], folder: Path
) -> None:
    addr = address("ipc")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr) as b:
        await a.wait_for_peers(1)
        buf = patterns.shared_buffer(SIZE)
        buf.view[:4] = b"mesh"  # filled in place; nothing copies it
        await a.send({"data": buf, "small": b"x"})
        got = await b.receive()
        assert got["data"][:4] == b"mesh" and got["data"].readonly and got["small"] == b"x"
        with pytest.raises(patterns.Closed):
            buf.view  # noqa: B018  # handed over
        del got
    assert segments(folder) == []


async def test_switched_off_the_bytes_go_inline(address: Callable[[str], str], folder: Path) -> None:
    for addr, options in (
        (address("ipc"), {"shared_memory": False}),
        (address("tcp"), {"shared_memory": False}),
    ):
        async with patterns.Pair(listen=addr, **options) as a, patterns.Pair(dial=addr, **options) as b:
            await a.wait_for_peers(1)
            await a.send({"data": PAYLOAD})
            got = await b.receive()
            assert type(got["data"]) is bytes and got["data"] == PAYLOAD
            assert a.statistics().bytes_sent > SIZE
    assert segments(folder) == []


async def test_a_hotline_ask_and_its_reply_go_through_shared_memory(
    address: Callable[[str], str], peers: Peers, folder: Path
) -> None:
    addr = address("ipc")
    async with consensus.hotline(listen=addr, name="test") as line:
        proc = peers.start(addr, "--dial", "--name", "echo", script="hotline_agent.py")
        with trio.fail_after(15):
            assert await read_line(proc) == "ready"
            reply = await line.ask(PAYLOAD, timeout=10)  # the child echoes the view it got
        assert isinstance(reply["echo"], memoryview) and reply["echo"] == PAYLOAD
        del reply
    assert segments(folder) == []


def _payload_task(task: Any) -> Any:
    view = task["data"]
    return {
        "kind": type(view).__name__,
        "sum": hashlib.sha256(view).hexdigest(),
        "data": bytes(view[:16]) * (SIZE // 16),
    }


async def test_tasks_and_results_go_through_shared_memory(
    address: Callable[[str], str], folder: Path
) -> None:
    addr = address("ipc")
    async with (
        consensus.Dispatcher(addr) as dispatcher,
        consensus.Worker(addr, handler=_payload_task, name="w"),
    ):
        await dispatcher.wait_for_workers(1)
        async with dispatcher.distribute([{"data": PAYLOAD}, {"data": PAYLOAD[::-1]}]) as outcomes:
            results = [o async for o in outcomes]
    assert all(o.ok for o in results), results
    assert {o.result["kind"] for o in results} == {"memoryview"}
    assert {o.result["sum"] for o in results} == {
        hashlib.sha256(PAYLOAD).hexdigest(),
        hashlib.sha256(PAYLOAD[::-1]).hexdigest(),
    }
    assert all(isinstance(o.result["data"], memoryview) and len(o.result["data"]) == SIZE for o in results)
    del results
    assert segments(folder) == []


async def test_a_poll_answer_and_a_broadcast_go_through_shared_memory(
    room_address: Callable[[str], str], folder: Path
) -> None:
    addr = room_address("ipc")

    async def on_poll(question: Any) -> Any:
        return {"echo": question["data"], "kind": type(question["data"]).__name__}

    async with consensus.host(addr) as room, consensus.join(addr, name="m", on_poll=on_poll) as member:
        await room.wait_for_members(1)
        result = await room.poll({"data": PAYLOAD}, timeout=10)
        [answer] = result.answers.values()
        assert answer["kind"] == "memoryview" and isinstance(answer["echo"], memoryview)
        assert answer["echo"] == PAYLOAD
        await member.wait_for_mesh()
        await room.wait_for_mesh()  # the host counts its own ends of the mesh as the broadcast's receivers
        await room.broadcast({"data": PAYLOAD})
        async for sender, value in member.messages():
            assert isinstance(value["data"], memoryview) and value["data"] == PAYLOAD
            break
        del result, answer, value
    assert segments(folder) == []


async def test_wait_for_members_waits_for_the_hosts_end_of_the_survey_connection(
    room_address: Callable[[str], str], folder: Path
) -> None:
    """Why the poll above once went inline: a member joins once its end of the survey
    connection is up, and the host may note its own end later; a poll counts the host's
    ends as its receivers. Held back here, that end keeps ``wait_for_members`` waiting."""
    addr = room_address("ipc")

    async def on_poll(question: Any) -> Any:
        return type(question["data"]).__name__

    async with consensus.host(addr) as room:
        surveyor = room._surveyor
        noted, late = surveyor._connected, list[Any]()
        surveyor._connected = late.append  # type: ignore[method-assign,assignment]  # noted late
        async with consensus.join(addr, name="m", on_poll=on_poll), trio.open_nursery() as nursery:
            waited = trio.Event()

            async def wait() -> None:
                await room.wait_for_members(1)
                waited.set()

            nursery.start_soon(wait)
            while not room.members:
                await room.wait_members_changed()
            await trio.testing.wait_all_tasks_blocked()
            assert not waited.is_set(), "wait_for_members returned before the host's end of the survey"
            surveyor._connected = noted  # type: ignore[method-assign]
            for peer in late:
                noted(peer)
            await waited.wait()
            result = await room.poll({"data": PAYLOAD}, timeout=10)
            assert list(result.answers.values()) == ["memoryview"]
    assert segments(folder) == []


_SMALL_SHM_CHILD = """
import sys, trio
sys.path.insert(0, sys.argv[1])
import patterns

async def main():
    for fallback in (True, False):
        policy = patterns.SharedMemory(fallback=fallback)
        address = f"inproc://small-shm-{fallback}"
        async with patterns.Pair(listen=address, shared_memory=policy) as a, patterns.Pair(dial=address) as b:
            await a.wait_for_peers(1)
            try:
                await a.send({"data": bytes(4 << 20)})
            except patterns.SharedMemoryFull as exc:
                print("full", exc.reason, flush=True)
                continue
            got = (await b.receive())["data"]
            print("inline" if type(got) is bytes and len(got) == 4 << 20 else "wrong", flush=True)

trio.run(main)
"""


def test_a_small_dev_shm_falls_back_inline_or_raises() -> None:
    if not unshare_works():
        pytest.skip("`unshare -rm` is unavailable here: cannot give a child its own small /dev/shm")
    script = 'unset NNG_CONSENSUS_SHM_DIR; mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$0" "$@"'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, sys.executable, "-c", _SMALL_SHM_CHILD, str(ROOT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["inline", "full space"], done.stdout + done.stderr


async def test_over_tcp_a_peer_on_this_host_is_proven_by_its_beacon(
    address: Callable[[str], str], peers: Peers, folder: Path
) -> None:
    addr = address("tcp")
    async with patterns.Push(listen=addr, name="test") as push:
        proc = await start(peers, "pull", addr)  # a child: another process, the same /dev/shm
        await push.wait_for_peers(1)
        assert len(segments(folder)) == 2  # both ends' beacons for the connection
        await push.send({"data": PAYLOAD})
        assert push.statistics().bytes_sent < 1024, "only a reference went through the socket"
        await child_got(proc)
        tell(proc, "quit")
        assert await trio.to_thread.run_sync(proc.wait, 10) == 0  # its socket, and beacon, are gone
    assert segments(folder) == []  # beacons go with their connections


async def test_over_tcp_a_peer_without_a_beacon_gets_the_bytes_inline(
    address: Callable[[str], str], folder: Path
) -> None:
    addr = address("tcp")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr, shared_memory=False) as b:
        await a.wait_for_peers(1)
        await a.send({"data": PAYLOAD})  # b left no beacon: it does not take references
        got = await b.receive()
        assert type(got["data"]) is bytes and got["data"] == PAYLOAD
    assert segments(folder) == []
