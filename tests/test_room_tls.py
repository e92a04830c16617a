"""A tls+tcp room end to end: host, members' mesh links and lines between members over TLS,
with and without a secret (certificates from a throwaway CA, trustme)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio

import consensus
from consensus import TLSConfig, TLSMode

trustme = pytest.importorskip("trustme")


def certificates(where: Path, *names: str) -> dict[str, Path]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    files = {}
    for name in names:
        files[name] = where / f"{name}.pem"
        ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(files[name]))
    return files


def client(where: Path, pem: Path | None) -> TLSConfig:
    return TLSConfig(mode=TLSMode.CLIENT, ca_file=str(where / "ca.pem"), server_name="localhost",
                     cert_key_file=None if pem is None else str(pem))  # fmt: skip


@pytest.mark.parametrize("secret", [None, "tls and a secret"])
async def test_a_tls_room_polls_broadcasts_and_opens_lines_between_members(
    secret: str | None, room_address: Callable[[str], str], short_tmp: Path
) -> None:
    pems = certificates(short_tmp, "host", "ann", "bob")
    address = "tls+tcp://" + room_address("tcp").partition("://")[2]
    server = TLSConfig(mode=TLSMode.SERVER, cert_key_file=str(pems["host"]))
    async with consensus.host(address, tls=server, secret=secret) as room, \
            consensus.join(address, name="ann", on_poll=lambda q: "A", on_ask=lambda v: ("ann", v),
                           tls=client(short_tmp, pems["ann"]), secret=secret) as ann, \
            consensus.join(address, name="bob", on_poll=lambda q: "B", on_ask=lambda v: ("bob", v),
                           tls=client(short_tmp, pems["bob"]), secret=secret) as bob:  # fmt: skip
        await room.wait_for_members(2)
        assert (await room.poll("ready?", timeout=20)).answers == {"ann": "A", "bob": "B"}
        with trio.fail_after(20):  # the members' own mesh link is TLS too
            await ann.wait_for_mesh()
            await bob.wait_for_mesh()
        await bob.broadcast("over tls")
        with trio.fail_after(20):
            async for sender, value in ann.messages():
                assert (sender, value) == ("bob", "over tls")
                break
        line = await ann.hotline("bob", timeout=20)
        assert await line.ask(1, timeout=10) == ["bob", 1]
