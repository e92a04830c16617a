"""Ports a firewall can name: a member's own mesh endpoint (``join(..., listen=...)``) and
the ports its room hotlines listen at (``join(..., line_ports=...)``).

The pure address helpers are tested alone; the rest joins real members over tcp on
loopback and checks the ports in use from the other end of each connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio
from conftest import free_tcp_port, free_tcp_port_run
from hypothesis import given
from hypothesis import strategies as st

import consensus
from consensus.endpoints import (
    announced_address,
    check_listen,
    line_listen_addresses,
    member_mesh_address,
    port_range,
)
from consensus.errors import LineError

# ---------------------------------------------------------------------- pure helpers


def test_a_listener_opens_its_line_next_to_its_mesh_address() -> None:
    assert line_listen_addresses("ipc:///tmp/room.m-3f9a0c1be47d", "0a1b2c3d") == [
        "ipc:///tmp/room.m-3f9a0c1be47d.l-0a1b2c3d"
    ]
    assert line_listen_addresses("inproc://room.m-1", "ff") == ["inproc://room.m-1.l-ff"]
    assert line_listen_addresses("tcp://10.0.0.2:40123", "ff") == ["tcp://10.0.0.2:0"]
    assert line_listen_addresses("tcp6://[::1]:40123", "ff") == ["tcp6://[::1]:0"]
    assert line_listen_addresses("tcp://0.0.0.0:7410", "ff", range(7420, 7423)) == [
        "tcp://0.0.0.0:7420",
        "tcp://0.0.0.0:7421",
        "tcp://0.0.0.0:7422",
    ]
    assert line_listen_addresses("ipc:///r.m-1", "ff", range(7420, 7423)) == ["ipc:///r.m-1.l-ff"]


def test_port_ranges_are_a_range_or_text() -> None:
    assert port_range(None) is None
    assert port_range("7420-7429") == range(7420, 7430)
    assert port_range(" 7420 - 7429 ") == range(7420, 7430)
    assert port_range("7420") == range(7420, 7421)
    assert port_range(range(7420, 7430)) == range(7420, 7430)
    for bad in ("7429-7420", "x-7", "7420-", "0-3", "65535-65536", "", "1,2"):
        with pytest.raises(ValueError, match="line_ports"):
            port_range(bad)
    for bad_range in (range(7420, 7420), range(7420, 7430, 2), range(3)):
        with pytest.raises(ValueError, match="line_ports"):
            port_range(bad_range)


@given(st.integers(1, 65535), st.integers(0, 200))
def test_text_ranges_include_both_ends(low: int, width: int) -> None:
    high = min(low + width, 65535)
    ports = port_range(f"{low}-{high}")
    assert ports is not None and ports[0] == low and ports[-1] == high


def test_a_wildcard_bind_is_announced_as_the_control_connection_address() -> None:
    assert announced_address("tcp://0.0.0.0:7410", "10.0.0.2") == "tcp://10.0.0.2:7410"
    assert announced_address("tcp6://[::]:7410", "[fe80::1]") == "tcp6://[fe80::1]:7410"
    assert announced_address("tcp://10.0.0.9:7410", "10.0.0.2") == "tcp://10.0.0.9:7410"
    assert announced_address("tcp://0.0.0.0:7410", None) == "tcp://0.0.0.0:7410"
    assert announced_address("ipc:///tmp/r.m-1", "10.0.0.2") == "ipc:///tmp/r.m-1"


def test_listen_must_match_the_room_transport() -> None:
    room = "tcp://10.0.0.1:7000"
    assert check_listen(room, "tcp://0.0.0.0:7410") == "tcp://0.0.0.0:7410"
    assert member_mesh_address(room, "10.0.0.2", "tcp://0.0.0.0:7410") == "tcp://0.0.0.0:7410"
    assert member_mesh_address(room, "10.0.0.2") == "tcp://10.0.0.2:0"
    with pytest.raises(ValueError, match="listens with tcp://"):
        check_listen(room, "ipc:///tmp/mesh")
    with pytest.raises(ValueError, match="needs a port"):
        check_listen(room, "tcp://0.0.0.0")
    with pytest.raises(ValueError, match="ipc:// or inproc://"):
        check_listen("ipc:///tmp/room", "tcp://0.0.0.0:7410")
    assert check_listen("ipc:///tmp/room", "ipc:///tmp/my-mesh") == "ipc:///tmp/my-mesh"


def test_join_refuses_a_bad_listen_before_connecting() -> None:
    async def main() -> None:
        async with consensus.join("tcp://127.0.0.1:7000", name="a", listen="ws://0.0.0.0:1"):
            pass  # pragma: no cover

    with pytest.raises(ValueError, match="listen="):
        trio.run(main)


# ---------------------------------------------------------------------- real sockets


@contextmanager
def occupied(port: int) -> Iterator[None]:
    """Another program listens at ``port`` on every interface."""
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", port))
        blocker.listen()
        yield


def remote_ports(sock: object) -> set[int]:
    """The ports at the far end of a socket's connections (from NNG's pipes)."""
    return {int(peer.address.rpartition(":")[2]) for peer in sock.peers}  # type: ignore[attr-defined]


async def test_fixed_mesh_and_line_ports_are_the_ones_used(room_address: Callable[[str], str]) -> None:
    address = room_address("tcp")
    mesh_port = free_tcp_port()
    lines = free_tcp_port_run(3)
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", listen=f"tcp://0.0.0.0:{mesh_port}",
                       line_ports=f"{lines}-{lines + 2}", on_ask=lambda v: ["ann", v]) as ann,
        consensus.join(address, name="bob", on_ask=lambda v: ["bob", v]) as bob,
    ):  # fmt: skip
        await room.wait_for_members(2)
        with trio.fail_after(15):
            for me, other in ((bob, "ann"), (ann, "bob")):
                while other not in me.members:
                    await me.wait_members_changed()
            await bob.wait_for_mesh()
        # the room was told ann's reachable address, and bob's link to ann ends at that port
        assert bob._protocol.members["ann"] == f"tcp://127.0.0.1:{mesh_port}"
        assert ann._mesh.addresses == (f"tcp://0.0.0.0:{mesh_port}",)
        assert mesh_port in remote_ports(bob._mesh)
        with occupied(lines), trio.fail_after(15):  # the first port of the range is taken
            line = await ann.hotline("bob")  # "ann" sorts first: ann listens
            assert line.bound_address == f"tcp://0.0.0.0:{lines + 1}"
            theirs = await bob.hotline("ann")
            assert theirs.address == f"tcp://127.0.0.1:{lines + 1}"  # the offer named the reachable host
            await theirs._link.pair.wait_for_peers(1)  # the line is returned while it connects
            assert remote_ports(theirs._link.pair) == {lines + 1}
            assert await theirs.ask(1, timeout=5) == ["ann", 1]
            assert await line.ask(2, timeout=5) == ["bob", 2]


async def test_a_line_finding_every_port_taken_fails_saying_so(room_address: Callable[[str], str]) -> None:
    address = room_address("tcp")
    port = free_tcp_port()
    async with (
        consensus.host(address),
        consensus.join(address, name="ann", line_ports=range(port, port + 1)) as ann,
        consensus.join(address, name="bob") as bob,
    ):
        with trio.fail_after(15):
            while "bob" not in ann.members:
                await ann.wait_members_changed()
        with occupied(port), pytest.raises(LineError, match=f"no free port .* line_ports {port}-{port}"):
            await ann.hotline("bob", timeout=10)
        assert bob.members == ("ann", "bob")


# ---------------------------------------------------------------------- one port: ws
def test_a_ws_room_serves_every_endpoint_on_one_port() -> None:
    assert consensus.endpoints("ws://10.0.0.1:7000") == consensus.Endpoints(
        "ws://10.0.0.1:7000/survey", "ws://10.0.0.1:7000/control", "ws://10.0.0.1:7000/mesh",
        "ws://10.0.0.1:7000/tasks", "ws://10.0.0.1:7000/results",
    )  # fmt: skip
    assert consensus.endpoints("wss://h:443/rooms/a/").survey == "wss://h:443/rooms/a/survey"
    assert consensus.work_endpoints("ws://h:7000/w") == consensus.WorkEndpoints("ws://h:7000/w/tasks",
                                                                                  "ws://h:7000/w/results")  # fmt: skip
    for bad in ("ws://h/room", "ws://h:0", "ws://h:x/room"):
        with pytest.raises(ValueError, match="port"):
            consensus.endpoints(bad)
    room = "ws://10.0.0.1:7000"
    assert member_mesh_address(room, "10.0.0.2") == "ws://10.0.0.2:0/mesh"
    assert member_mesh_address(room, "10.0.0.2", "ws://0.0.0.0:7410") == "ws://0.0.0.0:7410/mesh"
    assert member_mesh_address(room, None, "ws://0.0.0.0:7410/m") == "ws://0.0.0.0:7410/m"
    assert announced_address("ws://0.0.0.0:7410/mesh", "10.0.0.2") == "ws://10.0.0.2:7410/mesh"
    assert line_listen_addresses("ws://0.0.0.0:7410/mesh", "ab", range(1, 3)) == ["ws://0.0.0.0:7410/mesh/l-ab"]
    with pytest.raises(ValueError, match="listens with ws://"):
        check_listen(room, "tcp://0.0.0.0:7410")


def listeners(port: int) -> int:
    """How many sockets on this machine listen at tcp ``port`` (from /proc/net/tcp and tcp6)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as file:
            for row in file.read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                found += state == "0A" and int(local.rpartition(":")[2], 16) == port
    return found


async def test_a_room_over_ws_uses_one_port_for_the_host_and_one_per_member() -> None:
    port, ann_port, bob_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    address = f"ws://127.0.0.1:{port}/room"
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", listen=f"ws://0.0.0.0:{ann_port}", on_poll=lambda q: "a",
                       on_ask=lambda v: ["ann", v], on_task=lambda t: t * 2),
        consensus.join(address, name="bob", listen=f"ws://127.0.0.1:{bob_port}", on_poll=lambda q: "b") as bob,
    ):  # fmt: skip
        await room.wait_for_members(2, timeout=15)
        assert listeners(port) == 1  # the host's five endpoints: one listening socket, one port
        assert (listeners(ann_port), listeners(bob_port)) == (1, 1)
        result = await room.poll("q", timeout=5)
        assert result.answers == {"ann": "a", "bob": "b"}
        async with room.distribute([1, 2, 3]) as outcomes:
            assert sorted([o.result async for o in outcomes]) == [2, 4, 6]
        with trio.fail_after(15):
            while "ann" not in bob.members:
                await bob.wait_members_changed()
            await bob.wait_for_mesh()
            await room.wait_for_mesh()
            await room.broadcast("hello")
            assert await anext(aiter(bob.messages())) == (room.name, "hello")
            line = await bob.hotline("ann")  # ann listens, at a path on her one port
            assert line.address.startswith(f"ws://127.0.0.1:{ann_port}/mesh/l-")
            assert await line.ask(1, timeout=5) == ["ann", 1]
            assert listeners(ann_port) == 1  # her line shares her mesh's port
        assert bob._protocol.members["ann"] == f"ws://127.0.0.1:{ann_port}/mesh"
