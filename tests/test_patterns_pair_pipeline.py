"""The pattern layer over real NNG sockets, pair and push/pull: both directions in
process, echo across processes (ipc, tcp), a second peer refused, round robin, a push
with no puller.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pytest
import trio
from _patterns_cases import CROSS_PROCESS, VALUES
from conftest import Peers, read_line

import patterns


# ---------------------------------------------------------------------------- pair
async def test_pair_inproc_both_directions(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Pair(listen=addr, name="a") as a, patterns.Pair(dial=addr, name="b") as b:
        await a.wait_for_peers(1)
        for value in VALUES:
            await a.send(value)
            assert await b.receive() == value
            await b.send(value)
            assert await a.receive() == value
        envelope_id = a.statistics().messages_sent
        assert envelope_id == len(VALUES)


@pytest.mark.parametrize("transport", CROSS_PROCESS)
async def test_pair_echo_across_processes(
    transport: str, address: Callable[[str], str], peers: Peers
) -> None:
    async with patterns.Pair(listen=address(transport), name="me") as line:
        child = peers.start("pair-echo", line.addresses[0])
        assert await read_line(child) == "ready"
        await line.wait_for_peers(1)
        for value in VALUES:
            await line.send(value)
            envelope = await line.receive_envelope()
            assert envelope.body == value
            assert envelope.sender == "echo"
        stats = line.statistics()
        assert stats.messages_received == len(VALUES) and stats.malformed == 0


async def test_pair_refuses_a_second_peer(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr) as b:
        await a.wait_for_peers(1)
        async with patterns.Pair(dial=addr) as intruder:
            with contextlib.suppress(patterns.WouldBlock):
                intruder.send_nowait("intrusion")  # has no peer to go to: NNG refuses the pipe
            await b.send("first line still works")
            assert await a.receive() == "first line still works"
            assert len(a.peers) == 1


# ---------------------------------------------------------------------------- push / pull
@pytest.mark.parametrize("transport", CROSS_PROCESS)
async def test_push_to_pull_process(transport: str, address: Callable[[str], str], peers: Peers) -> None:
    async with patterns.Push(listen=address(transport)) as push:
        child = peers.start("pull", push.addresses[0])
        assert await read_line(child) == "ready"
        await push.wait_for_peers(1)
        for i in range(20):
            await push.send({"task": i})
        got = [json.loads(await read_line(child)) for _ in range(20)]
        assert got == [{"task": i} for i in range(20)]


@pytest.mark.parametrize("transport", CROSS_PROCESS)
async def test_pull_from_push_process(transport: str, address: Callable[[str], str], peers: Peers) -> None:
    async with patterns.Pull(listen=address(transport)) as pull:
        child = peers.start("push", pull.addresses[0], "500")
        got = [await pull.receive() for _ in range(500)]
        assert got == list(range(500))
        assert await read_line(child) == "ready"


async def test_push_pull_inproc_round_robin(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with (
        patterns.Push(listen=addr) as push,
        patterns.Pull(dial=addr) as p1,
        patterns.Pull(dial=addr) as p2,
    ):
        await push.wait_for_peers(2)
        got: list[int] = []

        async def drain(pull: patterns.Pull) -> None:
            async for value in pull:
                got.append(value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, p1)
            nursery.start_soon(drain, p2)
            for i in range(100):
                await push.send(i)
            while len(got) < 100:
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert sorted(got) == list(range(100))
        assert p1.statistics().messages_received > 0 and p2.statistics().messages_received > 0


async def test_push_without_puller_would_block(address: Callable[[str], str]) -> None:
    async with patterns.Push(listen=address("inproc")) as push:
        with pytest.raises(patterns.WouldBlock, match="send_nowait"):
            push.send_nowait("nobody is listening")
        with trio.move_on_after(0.05) as scope:
            await push.send("still nobody")
        assert scope.cancelled_caught
