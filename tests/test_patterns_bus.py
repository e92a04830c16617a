"""The pattern layer over real NNG sockets: the bus (no forwarding, a full mesh), and
garbage frames skipped, counted, followed by good ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from _patterns_cases import CROSS_PROCESS
from conftest import Peers, read_line

import patterns


# ---------------------------------------------------------------------------- bus
@pytest.mark.parametrize("transport", CROSS_PROCESS)
async def test_bus_does_not_forward(transport: str, address: Callable[[str], str], peers: Peers) -> None:
    """NNG's bus is one hop: in a chain A-B-C, C never hears A (rooms build a full mesh)."""
    a_addr, b_addr, c_addr = address(transport), address(transport), address(transport)
    async with patterns.Bus(listen=a_addr, name="A") as a:
        b = peers.start("bus", b_addr, "2", a_addr)  # B waits for A and C
        c = peers.start("bus", c_addr, "1", b_addr)
        assert await read_line(b) == "ready"
        assert await read_line(c) == "ready"
        await a.wait_for_peers(1)
        # Prove B-C is connected: B's broadcast reaches both A and C.
        assert b.stdin is not None
        b.stdin.write(json.dumps("hello from B") + "\n")
        b.stdin.flush()
        assert json.loads(await read_line(c)) == [b_addr, "hello from B"]
        assert (await a.receive_envelope()).body == "hello from B"
        # A speaks; B hears it. Then B sends a marker: C's next line is the marker, never A's words.
        await a.send("from A")
        assert json.loads(await read_line(b)) == ["A", "from A"]
        b.stdin.write(json.dumps("marker") + "\n")
        b.stdin.flush()
        assert json.loads(await read_line(c)) == [b_addr, "marker"]


async def test_bus_full_mesh_inproc(address: Callable[[str], str]) -> None:
    addrs = [address("inproc") for _ in range(3)]
    async with (
        patterns.Bus(listen=addrs[0], name="0") as n0,
        patterns.Bus(listen=addrs[1], dial=addrs[0], name="1") as n1,
        patterns.Bus(listen=addrs[2], dial=addrs[:2], name="2") as n2,
    ):
        for node in (n0, n1, n2):
            await node.wait_for_peers(2)
        await n0.send("hi")
        assert await n1.receive() == "hi" and await n2.receive() == "hi"
        with pytest.raises(patterns.WouldBlock):
            n0.receive_nowait()  # a sender does not hear itself


# ---------------------------------------------------------------------------- bad input
async def test_garbage_frames_then_a_good_one(address: Callable[[str], str], peers: Peers) -> None:
    good = patterns.encode(patterns.Envelope(kind="data", sender="foreign", id=7, body={"ok": True}))
    frames = [
        "ff",  # not CBOR
        "a2617601",  # truncated map
        "83010203",  # an array, not an envelope
        patterns.encode_body({"v": 2, "k": "data", "s": "", "id": 1}).hex(),  # unknown version
        patterns.encode_body({"v": 1, "k": "data", "s": "", "id": 1, "zz": 0}).hex(),  # unknown key
        "d82341",  # a tag
        good.hex(),
    ]
    async with patterns.Pull(listen=address("ipc")) as pull:
        child = peers.start("raw-push", pull.addresses[0], *frames)
        reasons = []
        for _ in range(len(frames) - 1):
            with pytest.raises(patterns.MalformedMessage) as info:
                await pull.receive()
            reasons.append(info.value.reason)
        assert reasons == ["cbor", "cbor", "shape", "version", "shape", "cbor"]
        envelope = await pull.receive_envelope()
        assert (envelope.sender, envelope.body) == ("foreign", {"ok": True})
        assert pull.statistics().malformed == len(frames) - 1
        assert await read_line(child) == "ready"


async def test_iteration_skips_garbage_and_keeps_going(address: Callable[[str], str], peers: Peers) -> None:
    frames = ["ff", patterns.encode(patterns.Envelope(kind="data", sender="x", id=1, body=1)).hex()] * 3
    async with patterns.Pull(listen=address("tcp")) as pull:
        peers.start("raw-push", pull.addresses[0], *frames)
        got = []
        async for value in pull:
            got.append(value)
            if len(got) == 3:
                break
        assert got == [1, 1, 1]
        assert pull.statistics().malformed == 3
