"""The pattern layer over real NNG sockets, lifecycle and errors: close wakes receivers and
ends surveys, address errors, quiet retried dials, size limits, peers tracked, ws and TLS
transports, undial and disconnect, no NNG panic at interpreter exit.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from conftest import Peers, read_line

import patterns


# ---------------------------------------------------------------------------- lifecycle and errors
@pytest.mark.parametrize("kind", ["Pair", "Pull", "Bus", "Respondent"])
async def test_close_wakes_a_blocked_receiver(kind: str, address: Callable[[str], str]) -> None:
    sock = getattr(patterns, kind)(listen=address("inproc"))
    async with sock:
        async with trio.open_nursery() as nursery:
            caught: list[BaseException] = []

            async def blocked() -> None:
                try:
                    await sock.receive()
                except patterns.Closed as exc:
                    caught.append(exc)

            nursery.start_soon(blocked)
            await trio.testing.wait_all_tasks_blocked()
            await sock.aclose()
        assert len(caught) == 1 and "closed" in str(caught[0])
    with pytest.raises(patterns.Closed, match="is closed"):
        await sock.receive()


@pytest.mark.parametrize("kind", ["Pair", "Push", "Pull", "Bus", "Surveyor", "Respondent"])
async def test_a_socket_never_opened_closes_quietly(kind: str) -> None:
    sock = getattr(patterns, kind)()
    await sock.aclose()
    sock.close()
    assert sock.closed
    with pytest.raises(patterns.Closed, match="is closed"):
        sock.listen("inproc://never-used")


async def test_close_ends_an_open_survey(address: Callable[[str], str]) -> None:
    async with patterns.Surveyor(listen=address("inproc")) as boss:
        replies = await boss.survey("q", timeout=30)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(boss.aclose)
            with pytest.raises(patterns.Closed):
                await replies.__anext__()


async def test_address_errors(address: Callable[[str], str]) -> None:
    addr = address("tcp")
    async with patterns.Pair(listen=addr):
        with pytest.raises(patterns.AddressInUse, match=addr.replace(".", r"\.")):
            async with patterns.Pair(listen=addr):
                pass
    with pytest.raises(patterns.AddressError, match="bogus"):
        async with patterns.Pair(listen="bogus://nowhere"):
            pass
    with pytest.raises(patterns.ConsensusError):
        async with patterns.Pair(dial="tcp://not an address"):
            pass


async def test_dialing_before_the_listener_exists_is_quiet_and_retried(address: Callable[[str], str]) -> None:
    addr = address("tcp")
    async with patterns.Pair(dial=addr) as early, patterns.Pair(listen=addr) as late:
        await early.wait_for_peers(1)
        await early.send("made it")
        assert await late.receive() == "made it"


async def test_message_size_limit(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Pair(listen=addr, max_message_size=1024) as a, patterns.Pair(dial=addr) as b:
        await a.wait_for_peers(1)
        with pytest.raises(patterns.MessageTooLarge, match="1024"):
            await a.send(b"x" * 2000)
        await b.send(b"y" * 2000)  # b allows it; a's strict decoder refuses it
        with pytest.raises(patterns.MalformedMessage) as info:
            await a.receive()
        assert info.value.reason == "size"


async def test_peer_set_tracks_disconnects(address: Callable[[str], str], peers: Peers) -> None:
    async with patterns.Surveyor(listen=address("ipc")) as boss:
        child = peers.start("respondent", boss.addresses[0], "short-lived")
        assert await read_line(child) == "ready"
        await boss.wait_for_peers(1)
        child.kill()
        while len(boss.peers):
            await boss.wait_peers_changed()
        stats = boss.statistics()
        assert (stats.peers, stats.peers_connected_total, stats.peers_disconnected_total) == (0, 1, 1)


async def test_ws_transport(address: Callable[[str], str]) -> None:
    addr = address("ws")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr) as b:
        await b.wait_for_peers(1)
        await b.send({"over": "websocket"})
        assert await a.receive() == {"over": "websocket"}


async def test_tls_transport(address: Callable[[str], str], short_tmp) -> None:  # type: ignore[no-untyped-def]
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_pem = short_tmp / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca_pem = short_tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    port = address("tcp").rsplit(":", 1)[1]
    addr = f"tls+tcp://127.0.0.1:{port}"
    server_tls = patterns.TLSConfig(mode=patterns.TLSMode.SERVER, cert_key_file=str(server_pem))
    client_tls = patterns.TLSConfig(
        mode=patterns.TLSMode.CLIENT, ca_file=str(ca_pem), server_name="localhost"
    )
    async with patterns.Pair(listen=addr, tls=server_tls) as a, patterns.Pair(dial=addr, tls=client_tls) as b:
        await b.wait_for_peers(1)
        await b.send("secret")
        assert await a.receive() == "secret"


async def test_receive_from_names_the_peer_and_undial_drops_it(address: Callable[[str], str]) -> None:
    hub_addr = address("inproc")
    async with patterns.Bus(listen=hub_addr) as hub, patterns.Bus(dial=hub_addr, name="spoke") as spoke:
        (peer,) = await hub.wait_for_peers(1)
        await spoke.wait_for_peers(1)  # a bus send with no pipe yet on the sender's side is dropped
        await spoke.send("hello")
        envelope, pipe_id = await hub.receive_from()
        assert (envelope.body, envelope.sender, pipe_id) == ("hello", "spoke", peer.id)
        spoke.undial(hub_addr)
        while hub.peers:
            await hub.wait_peers_changed()
        while spoke.peers:  # each side learns of the loss from its own NNG callback
            await spoke.wait_peers_changed()
        assert spoke.statistics().peers_disconnected_total == 1


def test_no_nng_panic_at_interpreter_exit(address: Callable[[str], str]) -> None:
    """Sockets left open (and a survey in flight) when the interpreter exits must not crash it."""
    import subprocess
    import sys

    from conftest import ROOT

    script = f"""
import trio, patterns
async def main():
    boss = patterns.Surveyor(listen={address("ipc")!r})
    boss.open()
    resp = patterns.Respondent(dial=boss.addresses[0])
    resp.open()
    await boss.wait_for_peers(1)
    replies = await boss.survey("left open", timeout=30)
    pair = patterns.Pair(listen={address("tcp")!r})
    pair.open()
trio.run(main)
print("exiting")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exiting"
    assert "panic" not in done.stderr.lower() and "Traceback" not in done.stderr


async def test_disconnect_of_a_connection_that_goes_meanwhile_says_false(
    address: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection NNG still lists but is closing (NNG_ENOENT on close) is already gone:
    ``disconnect`` says so instead of raising, so a hotline dropping a silent peer survives."""
    import pynng

    addr = address("ipc")
    async with patterns.Pair(listen=addr) as a, patterns.Pair(dial=addr) as b:
        [peer] = await a.wait_for_peers(1)
        [pipe] = [p for p in a._sock.pipes if p.id == peer.id]

        def closing() -> None:
            raise pynng.exceptions.NoEntry("Entry not found", pynng.lib.NNG_ENOENT)

        monkeypatch.setattr(type(pipe), "close", lambda self: closing())
        assert a.disconnect(peer.id) is False
        monkeypatch.undo()
        assert a.disconnect(peer.id) is True
        assert b.closed is False
