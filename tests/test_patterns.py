"""The pattern layer over real NNG sockets: in-process (inproc) and between processes (ipc, tcp)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

import pytest
import trio
from conftest import Peers, read_line

import patterns

CROSS_PROCESS = ["ipc", "tcp"]
VALUES = [None, 0, -1, 2**70, 1.5, "héllo", b"\x00\xff" * 40, [1, [2, [3]]], {"a": {"b": [True, False]}}]


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


# ---------------------------------------------------------------------------- survey
async def test_survey_inproc_concurrent_surveys_do_not_mix(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r") as resp,
    ):
        await boss.wait_for_peers(1)

        async def answer_all() -> None:
            async for survey in resp:
                await survey.reply(survey.body * 10)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_all)
            first = await boss.survey(1, timeout=5)
            second = await boss.survey(2, timeout=5)
            assert boss.statistics().surveys_open == 2
            a = await first.__anext__()
            b = await second.__anext__()
            assert (a.body, b.body) == (10, 20)
            assert a.re == first.id and b.re == second.id
            await first.aclose()
            await second.aclose()
            assert boss.statistics().surveys_open == 0
            nursery.cancel_scope.cancel()


async def test_survey_replies_taken_in_batches_and_a_cancelled_wait_keeps_the_survey(
    address: Callable[[str], str],
) -> None:
    addr = address("inproc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r1") as r1,
        patterns.Respondent(dial=addr, name="r2") as r2,
    ):
        await boss.wait_for_peers(2)
        replies = await boss.survey("q", timeout=5)
        assert replies.take() == []
        with trio.move_on_after(0.05) as scope:  # nobody answered yet: the wait is cancelled
            await replies.wait()
        assert scope.cancelled_caught and not replies.done
        for resp in (r1, r2):
            survey = await resp.receive()
            await survey.reply(resp.name)
        got: list[str] = []
        with trio.fail_after(5):
            while len(got) < 2:
                await replies.wait()
                got += [reply.body for reply in replies.take()]
        assert sorted(got) == ["r1", "r2"]
        replies.close()
        assert replies.done and replies.take() == [] and boss.statistics().surveys_open == 0
        await replies.wait()  # a finished survey: returns at once


@pytest.mark.parametrize("transport", CROSS_PROCESS)
async def test_survey_across_processes(transport: str, address: Callable[[str], str], peers: Peers) -> None:
    async with patterns.Surveyor(listen=address(transport), name="boss") as boss:
        names = ["ann", "bob", "cy"]
        children = [peers.start("respondent", boss.addresses[0], name) for name in names]
        for child in children:
            assert await read_line(child) == "ready"
        await boss.wait_for_peers(3)
        start = trio.current_time()
        async with await boss.survey({"q": "ready?"}, timeout=10) as replies:
            got = {}
            async for reply in replies:
                got[reply.sender] = reply.body
                if len(got) == 3:
                    break
        assert trio.current_time() - start < 5, "stopping early must not wait for the deadline"
        assert got == {n: {"name": n, "echo": {"q": "ready?"}} for n in names}


async def test_survey_deadline_is_honoured(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Surveyor(listen=addr) as boss, patterns.Respondent(dial=addr) as silent:
        await boss.wait_for_peers(1)
        start = trio.current_time()
        replies = await boss.survey("anyone?", timeout=0.3)
        assert await replies.collect() == []
        elapsed = trio.current_time() - start
        assert 0.3 <= elapsed < 3, elapsed
        assert replies.done and boss.statistics().surveys_open == 0
        survey = await silent.receive()  # it arrived; nobody answered in time
        assert survey.body == "anyone?" and survey.deadline is not None
        # Every public deadline is on trio's clock; the wire's wall-clock 'dl' is converted once.
        assert abs(survey.deadline - replies.deadline) < 0.1, (survey.deadline, replies.deadline)
        assert survey.deadline < trio.current_time() and survey.envelope.deadline is not None
        assert abs(survey.envelope.deadline - (time.time() - trio.current_time() + survey.deadline)) < 0.1
        survey.decline()


async def test_late_reply_is_not_delivered(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Surveyor(listen=addr) as boss, patterns.Respondent(dial=addr) as resp:
        await boss.wait_for_peers(1)
        replies = await boss.survey("q1", timeout=0.1)
        assert await replies.collect() == []
        survey = await resp.receive()
        await survey.reply("too late")
        fresh = await boss.survey("q2", timeout=5)
        await (await resp.receive()).reply("on time")
        reply = await fresh.__anext__()
        assert reply.body == "on time"
        assert boss.statistics().stray == 1  # the late reply: dropped, and counted
        await fresh.aclose()
        with pytest.raises(patterns.Closed, match="already answered"):
            await survey.reply("twice")


async def test_surveyor_and_respondent_talk_to_plain_nng_peers(
    address: Callable[[str], str], peers: Peers
) -> None:
    """Our surveyor and respondent are raw NNG sockets; the wire stays NNG's survey
    protocol, so cooked peers (here plain pynng in another process) work with both."""
    addr = address("ipc")
    async with patterns.Surveyor(listen=addr, name="boss") as boss:
        child = peers.start("raw-respondent", addr)
        assert await read_line(child) == "ready"
        await boss.wait_for_peers(1)
        async with await boss.survey("ping", timeout=10) as replies:
            reply = await replies.__anext__()
        assert (reply.sender, reply.body) == ("foreign", {"echo": "ping", "to": "boss"})
    addr = address("ipc")
    surveyor = peers.start("raw-surveyor", addr)
    assert await read_line(surveyor) == "ready"
    async with patterns.Respondent(dial=addr, name="us") as resp:
        await resp.wait_for_peers(1)
        assert surveyor.stdin is not None
        surveyor.stdin.write("go\n")
        surveyor.stdin.flush()
        survey = await resp.receive()
        assert (survey.sender, survey.body) == ("foreign", "who?")
        await survey.reply({"hello": "foreign"})
        assert json.loads(await read_line(surveyor)) == ["us", 7, {"hello": "foreign"}]
        assert await read_line(surveyor) == "done"


async def test_a_malformed_reply_is_counted_and_the_next_survey_still_answered(
    address: Callable[[str], str], peers: Peers
) -> None:
    addr = address("ipc")
    async with patterns.Surveyor(listen=addr, name="boss") as boss:
        child = peers.start("raw-respondent", addr, "ff00ff")
        assert await read_line(child) == "ready"
        await boss.wait_for_peers(1)
        first = await boss.survey("one", timeout=3)
        assert await first.collect() == []
        assert boss.statistics().malformed == 1
        async with await boss.survey("two", timeout=10) as replies:
            reply = await replies.__anext__()
        assert reply.body == {"echo": "two", "to": "boss"}


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
