"""Room options end to end, in one process: TLS on every socket, and members that take
no shared-memory references (``join(..., shared_memory=False)``, ``"refs": false``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import consensus
import patterns
from patterns.shm.codec import DEFAULT_THRESHOLD

BIG = b"x" * (DEFAULT_THRESHOLD * 2)  # large enough to go through shared memory between same-host peers


async def test_a_member_without_references_gets_large_frames_inline(
    room_address: Callable[[str], str],
) -> None:
    """Over ipc the host places large buffers in shared memory; a member that joined with
    ``shared_memory=False`` cannot attach them, so the room sends inline while it is present,
    and the other members' broadcasts go inline too."""
    address = room_address("ipc")
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_poll=len, shared_memory=False) as ann,
        consensus.join(address, name="bob", on_poll=len) as bob,
    ):
        await room.wait_for_members(2)
        while "bob" not in ann.members or not bob._protocol.inline:  # the roster reached both
            await ann.wait_members_changed()
        result = await room.poll(BIG, timeout=10)
        assert dict(result.answers) == {"ann": len(BIG), "bob": len(BIG)}
        await bob.wait_for_mesh()
        await ann.wait_for_mesh()
        await bob.broadcast(BIG)
        async for sender, value in ann.messages():
            assert (sender, value) == ("bob", BIG)
            break
        assert ann.statistics().malformed == 0


async def test_a_whole_room_over_tls(room_address: Callable[[str], str], short_tmp: Path) -> None:
    """host(tls=server config) and join(tls=client config): join, poll, vote and the mesh
    link between a member and the host all run over tls+tcp."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(short_tmp / "s.pem")
    )
    ca.cert_pem.write_to_path(str(short_tmp / "ca.pem"))
    server = patterns.TLSConfig(mode=patterns.TLSMode.SERVER, cert_key_file=str(short_tmp / "s.pem"))
    client = patterns.TLSConfig(
        mode=patterns.TLSMode.CLIENT, ca_file=str(short_tmp / "ca.pem"), server_name="localhost"
    )
    address = "tls+tcp://" + room_address("tcp").partition("://")[2]
    async with (
        consensus.host(address, tls=server) as room,
        consensus.join(address, name="ann", tls=client, on_poll=str.upper, on_vote=lambda m, o: o[1]) as ann,
    ):
        assert await room.wait_for_members(1) == ("ann",)
        assert dict((await room.poll("hi", timeout=10)).answers) == {"ann": "HI"}
        assert (await room.vote("m", options=["a", "b"], timeout=10)).outcome == "b"
        await room.wait_for_mesh()
        await ann.wait_for_mesh()
        await room.broadcast("over tls")
        async for sender, value in ann.messages():
            assert (sender, value) == ("host", "over tls")
            break
