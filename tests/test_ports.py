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
            while "ann" not in bob.members:
                await bob.wait_members_changed()
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
