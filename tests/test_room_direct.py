"""Directed messages from the host to one member: room.ask(name, ...) and room.send(name, ...).

In memory (HostProtocol and MemberProtocol passing frames), in one process over ipc and
tcp (members in this trio loop), and with an agent process that dies while it answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio
from _rooms import ENDS, HEARTBEAT, wire
from conftest import Peers, read_line
from hypothesis import given
from hypothesis import strategies as st
from test_room_deliberation import joined

import consensus
from consensus.errors import PeerLost, RemoteError
from consensus.failure import Failure
from consensus.room import direct as X
from consensus.room.events import DirectAnswered, DirectLost, DirectReceived, Ignored, Left
from consensus.room.host_protocol import HostProtocol

values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                      max_leaves=12)  # fmt: skip


@given(values, st.booleans())
def test_an_ask_reaches_only_its_member_and_its_answer_only_its_asker(value: Any, ok: bool) -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann, bob = joined(host, "ann", pipe=1), joined(host, "bob", pipe=2)
    ident, frame = host.calls.direct_frame("ann", value, reply=True, timeout=5)
    assert bob.receive_control(wire(frame.kind, "host", frame.body), 0.0) == []  # not bob's: dropped
    (received,) = [o for o in ann.receive_control(wire(frame.kind, "host", frame.body), 0.0)
                   if isinstance(o, DirectReceived)]  # fmt: skip
    assert received.direct.value == value and received.direct.reply and received.direct.timeout == 5
    outcome = (True, [value]) if ok else (False, Failure("KeyError", "no such thing"))
    answer = ann.direct_reply(received.direct, outcome)
    impostor = bob.direct_reply(X.Direct("bob", bob.token, ident, value, True), (True, "me!"))
    assert host.receive_control(wire(impostor.kind, "bob", impostor.body), 2, 0.1) == []  # not the one asked
    (event,) = host.receive_control(wire(answer.kind, "ann", answer.body), 1, 0.1)
    assert isinstance(event, DirectAnswered) and event.reply.direct_id == ident and event.reply.ok == ok
    assert event.reply.value == ([value] if ok else Failure("KeyError", "no such thing"))
    assert host.receive_control(wire(answer.kind, "ann", answer.body), 1, 0.2) == []  # twice: late
    assert host.counts["late_replies"] == 2 and host.counts["directs"] == 1 and ann.counts["directs"] == 1


def test_asks_to_nobody_bad_timeouts_departures_and_malformed_replies() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    joined(host, "ann", pipe=1)
    with pytest.raises(LookupError, match="no member named 'zed'.*present: ann"):
        host.calls.direct_frame("zed", 1, reply=True, timeout=1)
    for timeout in (None, 0, -1, float("nan"), 1e9):
        with pytest.raises(ValueError, match="timeout"):
            host.calls.direct_frame("ann", 1, reply=True, timeout=timeout)
    _, send = host.calls.direct_frame("ann", "fyi", reply=False)  # a send waits for nothing
    assert send.body["reply"] is False and "timeout" not in send.body
    ident, _ = host.calls.direct_frame("ann", "q", reply=True, timeout=1)
    bad = host.receive_control(wire(X.DIRECT_REPLY, "ann", {"name": "ann", "token": 1, "id": ident}), 1, 0.1)
    assert isinstance(bad[0], Ignored) and host.counts["malformed"] == 1
    out = host.connection_closed(1, 0.2)
    assert isinstance(out[0], Left) and DirectLost(ident, "ann", "connection closed") in out


async def on_ask(value: Any) -> Any:
    if value == "fail":
        raise KeyError("no such thing")
    if value == "slow":
        await trio.sleep_forever()
    return {"got": value}


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_room_ask_and_send_in_one_process(transport: str, room_address: Callable[[str], str]) -> None:
    address = room_address(transport)
    sent: list[Any] = []

    def quiet(value: Any) -> None:  # a plain handler: runs in a thread
        sent.append(value)

    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_ask=on_ask) as ann,
        consensus.join(address, name="bob", on_ask=quiet) as bob,
        consensus.join(address, name="cy") as cy,
    ):
        await room.wait_for_members(3)
        assert await room.ask("ann", "hello", timeout=10) == {"got": "hello"}
        with pytest.raises(RemoteError) as failed:
            await room.ask("ann", "fail", timeout=10)
        assert failed.value.type == "KeyError"
        with pytest.raises(RemoteError, match="NotSupported"):
            await room.ask("cy", "anyone?", timeout=10)
        with pytest.raises(consensus.Timeout):
            await room.ask("ann", "slow", timeout=0.5)
        with pytest.raises(LookupError):
            await room.ask("zed", "hello", timeout=1)
        await room.send("bob", {"note": 1})
        with trio.fail_after(10):
            while not sent:
                await trio.sleep(0.01)
        assert sent == [{"note": 1}]
        assert await room.ask("bob", "sync handlers answer too", timeout=10) is None
        # A member counts a direct as it reads it; ann's "slow" one was given up without an
        # answer, so nothing orders its reading before this line: wait for it.
        with trio.fail_after(5):
            while ann.statistics().directs < 3:
                await trio.sleep(0.01)
        assert [m.statistics().directs for m in (ann, bob, cy)] == [3, 2, 1]
        assert room.statistics().directs == 6


async def test_an_ask_to_a_member_that_dies_ends_at_once(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("tcp")
    async with consensus.host(address) as room:
        agent = peers.agent(address, "ann", "--ask")
        assert await read_line(agent) == "joined"
        await room.wait_for_members(1)
        assert await room.ask("ann", [1, 2], timeout=10) == {"name": "ann", "value": [1, 2]}
        assert await read_line(agent) == f"asked {json.dumps([1, 2])}"
        with trio.fail_after(8), pytest.raises(PeerLost, match="'ann' left"):
            await room.ask("ann", "crash", timeout=30)
