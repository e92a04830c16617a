"""Shared by the hotline tests (``tests/test_hotline*.py``): child agents, a raw peer's
greeting, and lines set up connected."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from conftest import Peers, read_line

import consensus
from patterns import Envelope, Pair

Address = Callable[[str], str]


async def start_agent(peers: Peers, address: str, name: str, side: str = "--dial") -> subprocess.Popen[str]:
    """Start ``hotline_agent.py`` and return once it printed ``ready`` (it is connected)."""
    proc = peers.start(address, side, "--name", name, script="hotline_agent.py")
    with trio.fail_after(15):
        assert await read_line(proc) == "ready"
    return proc


def launch_agent(peers: Peers, address: str, name: str, side: str = "--dial") -> subprocess.Popen[str]:
    """Start ``hotline_agent.py`` without waiting for it."""
    return peers.start(address, side, "--name", name, script="hotline_agent.py")


async def greet(pair: Pair) -> None:
    """A raw peer's first frame on a connection: without it the line is not connected."""
    await pair.send_envelope(Envelope(kind="hello", sender="raw", id=0, body={"hotline": 1}))


@asynccontextmanager
async def line_to_alice(peers: Peers, address: str) -> AsyncIterator[consensus.Hotline]:
    """A listening line named "test", connected to a child agent "alice" that dials it."""
    async with consensus.hotline(listen=address, name="test") as line:
        await start_agent(peers, address, "alice")
        await line.wait_connected()
        yield line


@asynccontextmanager
async def two_lines(
    address: str,
    *,
    server_on_ask: Callable[..., Any] | None = None,
    client_on_ask: Callable[..., Any] | None = None,
) -> AsyncIterator[tuple[consensus.Hotline, consensus.Hotline]]:
    """A listening line "server" and a dialing line "client" in this process, both connected."""
    async with (
        consensus.hotline(listen=address, name="server", on_ask=server_on_ask) as server,
        consensus.hotline(dial=address, name="client", on_ask=client_on_ask) as client,
    ):
        with trio.fail_after(10):
            await client.wait_connected()
            await server.wait_connected()
        yield server, client
