"""A stranger on the room's network, for tests/test_attacks.py: raw pynng (and raw tcp), no
toolkit socket, no secret (except ``member-frames`` and ``secret-joins``, which hold it).

    python tests/room_attacker.py survey ADDRESS NAMES CHOICE
    python tests/room_attacker.py control ADDRESS SECONDS
    python tests/room_attacker.py tap LISTEN_ADDRESS ROOM_ADDRESS
    python tests/room_attacker.py line ADDRESS VICTIM CLAIMED
    python tests/room_attacker.py hijack ADDRESS LISTENER PEER
    python tests/room_attacker.py garbage ADDRESS COUNT
    python tests/room_attacker.py member-frames ADDRESS COUNT      (NNGC_SECRET set)
    python tests/room_attacker.py secret-joins ADDRESS COUNT       (NNGC_SECRET set)

``survey`` answers every poll and vote of the room at ADDRESS for each of NAMES (commas)
with forged sender names, three ways per name (a plain frame; a frame sealed under a key
id of its own; one sealed under the name's real survey key id, learned from the roster,
with a made-up tag); polls get ``"forged"``, votes CHOICE. ``control`` listens on the
control bus for SECONDS, then sends a plain ``join`` as mallory, forged ``leave`` and
``join`` frames for every member (with the member's token: plain, and under its session
key id), and replays every frame it heard. ``tap`` is a tcp forwarder in front of a
room (five ports) that records what members send the host's control port; ``replay`` on
stdin replays it byte for byte over a new connection. ``line`` offers VICTIM a hotline
as CLAIMED on VICTIM's mesh (plain, under CLAIMED's signing key id with a made-up
signature, and signed with a key of its own), listening at the address it offers.
``hijack`` waits for LISTENER's line offer to PEER on LISTENER's mesh, dials the offered
address first, greets as PEER and answers every ask (the line itself has no guard yet).
``garbage`` sends COUNT garbage frames and every frame heard on the control bus to every
endpoint of the room and of its members. ``member-frames`` joins as mallory with the
secret and sends, signed as mallory on the host's mesh, the frames of
``bounds_attacker.py``. ``secret-joins`` makes COUNT sessions over one control
connection and joins each under a new name.

Each mode prints ``ready`` when set and ``sent N`` (or its own result) when done, then
waits for stdin to close (``line`` then prints ``connected K``: dials it had).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pynng
import trio
from bounds_attacker import amplification_frame, collision_frame
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consensus.endpoints import endpoints
from consensus.room import protocol as P
from consensus.trust.room import session_kid, session_token, sign_kid
from consensus.trust.seal import HEADER, MAGIC, TAG_SIZE, Scheme
from patterns import Envelope, MalformedMessage, decode, encode


def say(*parts: object) -> None:
    print(*parts, flush=True)


def payload(frame: bytes) -> bytes:
    """The envelope inside a frame, sealed or not: a seal authenticates, it does not hide."""
    if frame[:2] != MAGIC:
        return frame
    return frame[HEADER.size + TAG_SIZE[Scheme(frame[2])] :]


def peek(frame: bytes) -> Envelope | None:
    try:
        return decode(payload(frame))
    except (MalformedMessage, KeyError, ValueError):
        return None


def forge_seal(scheme: Scheme, kid: bytes, data: bytes, seq: int = 1) -> bytes:
    """A frame that looks sealed under ``kid``, with a tag made up (the key is not known)."""
    return HEADER.pack(MAGIC, scheme, kid, seq) + secrets.token_bytes(TAG_SIZE[scheme]) + data


def frame(kind: str, sender: str, body: Any, re: int | None = None) -> bytes:
    return encode(Envelope(kind, sender, secrets.randbits(62), body=body, re=re))


def wait_for_pipe(sock: Any) -> None:
    deadline = time.monotonic() + 10
    while not sock.pipes and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the other side registers the pipe a little later


class Roster:
    """What the control bus tells anyone who dials it: every member's mesh and public keys."""

    def __init__(self, address: str) -> None:
        self.bus = pynng.Bus0(dial=endpoints(address).control, block_on_dial=True, recv_timeout=100)
        self.heard: list[bytes] = []
        self.meshes: dict[str, str] = {}
        self.keys: dict[str, tuple[bytes, bytes]] = {}

    def listen(self, seconds: float, until: int = 0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and (not until or len(self.keys) < until):
            try:
                data = self.bus.recv()
            except pynng.Timeout:
                continue
            self.heard.append(data)
            envelope = peek(data)
            if (
                envelope is None
                or envelope.kind not in (P.WELCOME, P.ROSTER)
                or not isinstance(envelope.body, dict)
            ):
                continue
            self.meshes.update(envelope.body.get("members", {}))
            for name, (kx, sign) in envelope.body.get("keys", {}).items():
                self.keys[name] = (kx, sign)


# ---------------------------------------------------------------------------- modes
def survey(address: str, names: list[str], choice: str) -> None:
    roster = Roster(address)
    roster.listen(5, until=len(names))
    answered = [0]
    stop = threading.Event()

    def respond(name: str, way: str, sock: Any) -> None:
        while not stop.is_set():
            try:
                data = sock.recv()
            except pynng.Timeout:
                continue
            except pynng.Closed:
                return
            envelope = peek(data)
            if envelope is None:
                continue
            if envelope.kind == P.VOTE:
                body = {"choice": choice, "confidence": 1.0, "vote": envelope.body.get("vote")}
                reply = frame(P.BALLOT, name, body, re=envelope.id)
            else:
                reply = frame(P.ANSWER, name, {"answer": "forged"}, re=envelope.id)
            if way == "own key":
                reply = forge_seal(Scheme.MAC, secrets.token_bytes(8), reply)
            elif way == "their key":
                reply = forge_seal(Scheme.MAC, session_kid(roster.keys[name][0], b"survey"), reply)
            try:
                sock.send(reply)
                answered[0] += 1
            except pynng.Closed:
                return

    socks, threads = [], []
    for name in names:
        for way in ("plain", "own key", "their key"):
            sock = pynng.Respondent0(dial=endpoints(address).survey, block_on_dial=True, recv_timeout=100)
            socks.append(sock)
            threads.append(threading.Thread(target=respond, args=(name, way, sock), daemon=True))
            threads[-1].start()
    for sock in socks:
        wait_for_pipe(sock)
    say("ready", len(roster.keys))
    sys.stdin.read()
    stop.set()
    for thread in threads:
        thread.join(2)
    say("answered", answered[0])
    for sock in socks:
        sock.close()
    roster.bus.close()


def control(address: str, seconds: float) -> None:
    roster = Roster(address)
    roster.listen(seconds)
    bus, sent = roster.bus, 0
    mesh = "tcp://127.0.0.1:9"
    forged = [frame(P.JOIN, "mallory", P.hello_body("mallory", 1, mesh))]
    for name, (kx, _) in roster.keys.items():
        token = session_token(kx)
        leave = frame(P.LEAVE, name, P.hello_body(name, token))
        join = frame(P.JOIN, name, P.hello_body(name, token, mesh))
        control_kid = session_kid(kx, b"control")
        forged += [leave, join, forge_seal(Scheme.MAC, control_kid, leave, 2**40),
                   forge_seal(Scheme.MAC, control_kid, join, 2**40 + 1)]  # fmt: skip
    for data in forged + roster.heard:
        bus.send(data)
        sent += 1
        time.sleep(0.005)  # bus0 drops past a queue of 16: pace the attack
    say("sent", sent, len(forged), len(roster.heard))
    sys.stdin.read()
    bus.close()


async def tap(listen: str, room: str) -> None:
    """Forward the room's five tcp ports; keep what clients send the control port."""
    ours, theirs = endpoints(listen), endpoints(room)
    recorded = bytearray()

    def port(address: str) -> int:
        return int(address.rpartition(":")[2])

    async def pump(source: trio.SocketStream, sink: trio.SocketStream, record: bool) -> None:
        try:
            async for chunk in source:
                if record:
                    recorded.extend(chunk)
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def forward(mine: str, target: str, record: bool) -> None:
        async def handle(client: trio.SocketStream) -> None:
            upstream = await trio.open_tcp_stream("127.0.0.1", port(target))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, upstream, record)
                nursery.start_soon(pump, upstream, client, False)

        await trio.serve_tcp(handle, port(mine), host="127.0.0.1")

    async with trio.open_nursery() as nursery:
        pairs = zip((ours.survey, ours.control, ours.mesh, ours.tasks, ours.results),
                    (theirs.survey, theirs.control, theirs.mesh, theirs.tasks, theirs.results))  # fmt: skip
        for mine, target in pairs:
            nursery.start_soon(forward, mine, target, mine == ours.control)
        say("ready")
        while line := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
            if line.strip() == "replay":
                stream = await trio.open_tcp_stream("127.0.0.1", port(theirs.control))
                await stream.send_all(bytes(recorded))
                await trio.sleep(0.5)  # let the host read it all before the connection drops
                await stream.aclose()
                say("replayed", len(recorded))
        nursery.cancel_scope.cancel()


def line(address: str, victim: str, claimed: str) -> None:
    roster = Roster(address)
    roster.listen(5, until=2)
    trap = f"tcp://127.0.0.1:{port_free()}"
    dials = [0]
    listener = pynng.Pair1(listen=trap)
    listener.add_post_pipe_connect_cb(lambda _pipe: dials.__setitem__(0, dials[0] + 1))
    mesh = pynng.Bus0(dial=roster.meshes[victim], block_on_dial=True)
    wait_for_pipe(mesh)
    offer = frame(P.LINE, claimed, P.line_body(victim, trap))
    mine = Ed25519PrivateKey.generate()
    sent = 0
    for seq in range(1, 21):  # the mesh is best effort: offer again, as a real member would
        for data in (offer, forge_seal(Scheme.SIG, sign_kid(roster.keys[claimed][1]), offer, seq)):
            mesh.send(data)
            sent += 1
        head = HEADER.pack(MAGIC, Scheme.SIG, hashlib.blake2b(b"mine", digest_size=8).digest(), seq)
        mesh.send(head + mine.sign(head + offer) + offer)
        sent += 1
        time.sleep(0.05)
    say("sent", sent)
    sys.stdin.read()
    say("connected", dials[0])
    mesh.close()
    listener.close()
    roster.bus.close()


def hijack(address: str, listener: str, peer: str) -> None:
    """Wait for ``listener``'s line offer to ``peer`` (broadcast on its mesh), dial the
    offered address first, greet as ``peer`` and answer every ask."""
    roster = Roster(address)
    roster.listen(5, until=2)
    mesh = pynng.Bus0(dial=roster.meshes[listener], block_on_dial=True, recv_timeout=100)
    wait_for_pipe(mesh)
    say("ready")
    offered = None
    while offered is None:
        try:
            envelope = peek(mesh.recv())
        except pynng.Timeout:
            continue
        body = envelope.body if envelope is not None and envelope.kind == P.LINE else None
        if isinstance(body, dict) and body.get("to") == peer and "address" in body:
            offered = body["address"]
    line = pynng.Pair1(dial=offered, block_on_dial=True, recv_timeout=100)
    line.send(encode(Envelope("hello", peer, 1, body={"hotline": 1})))
    say("dialed")
    answered, ids = 0, 2
    while not select_stdin_closed():
        try:
            envelope = peek(line.recv())
        except pynng.Timeout:
            continue
        if envelope is not None and envelope.kind == "ask" and isinstance(envelope.body, dict):
            line.send(encode(Envelope("reply", peer, ids, body=f"a stranger read {envelope.body.get('v')!r}",
                                      re=envelope.id)))  # fmt: skip
            answered, ids = answered + 1, ids + 1
    say("hijacked", answered)
    for sock in (line, mesh, roster.bus):
        sock.close()


def port_free() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def garbage(address: str, count: int) -> None:
    roster = Roster(address)
    roster.listen(1.5)
    ends = endpoints(address)
    socks = [pynng.Respondent0(dial=ends.survey), roster.bus, pynng.Bus0(dial=ends.mesh),
             pynng.Push0(dial=ends.results, send_timeout=100)]  # fmt: skip
    socks += [pynng.Bus0(dial=mesh) for mesh in roster.meshes.values()]
    for sock in socks:
        wait_for_pipe(sock)
    junk = [b"", b"\xff", b"\xffS" + bytes(40), b"\xa0", secrets.token_bytes(100),
            b"\xffS\x01" + secrets.token_bytes(200), b"\xffS\x02" + secrets.token_bytes(300)]  # fmt: skip
    sent = 0
    for i in range(count):
        data = junk[i % len(junk)] if i % 4 else roster.heard[i % len(roster.heard)]
        for sock in socks:
            try:
                if isinstance(sock, pynng.Respondent0):
                    continue  # a respondent may only answer a survey: it does below
                sock.send(data)
                sent += 1
            except pynng.Timeout:
                pass
        if i % 8 == 7:
            time.sleep(0.01)  # bus0 drops past a queue of 16
    say("sent", sent)
    survey = socks[0]
    survey.recv_timeout = 100
    while not select_stdin_closed():
        try:
            survey.recv()
            survey.send(junk[secrets.randbelow(len(junk))])
        except pynng.Timeout:
            pass
    for sock in socks:
        sock.close()


def select_stdin_closed() -> bool:
    import select

    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable) and not sys.stdin.readline()


async def member_frames(address: str, count: int) -> None:
    import consensus

    # Built first: a dict of colliding keys takes seconds to build here too (and a member
    # whose loop stalls that long misses its heartbeats).
    frames = [collision_frame(40_000), collision_frame(30_000), amplification_frame(2_000_000)]
    try:
        await _member_frames(address, count, frames)
    except consensus.RoomClosed:
        pass  # the test ended the room first


async def _member_frames(address: str, count: int, frames: list[bytes]) -> None:
    import consensus

    async with consensus.join(address, name="mallory", secret=consensus.Secret.from_env()) as member:
        keys = member._protocol.keys
        assert keys is not None
        guard = keys.mesh  # the member's own signing key: its frames authenticate
        bus = pynng.Bus0(dial=endpoints(address).mesh, block_on_dial=True)
        wait_for_pipe(bus)
        sent = 0
        for _ in range(count):
            for data in frames:
                await bus.asend(guard.seal(data, P.SAY))
                sent += 1
                await trio.sleep(0.03)  # bus0 drops past a queue of 16: pace the attack
        say("sent", sent)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        bus.close()


def secret_joins(address: str, count: int) -> None:
    from consensus.room.credentials import host_keys_of
    from consensus.trust import MemberKeys, Secret

    secret = Secret.from_env()
    first = MemberKeys(secret, "fake0")
    bus = pynng.Bus0(dial=endpoints(address).control, block_on_dial=True, recv_timeout=100)
    wait_for_pipe(bus)
    host = None
    while host is None:  # a hello brings a beat, which brings the host's keys
        bus.send(first.control.seal(frame("hello", "fake0", first.hello_body()), "hello"))
        try:
            data = bus.recv()
        except pynng.Timeout:
            continue
        envelope = decode(first.control.open(data).payload)
        host = host_keys_of(envelope) if envelope.kind == P.BEAT else None
    sent = 0
    for i in range(count):
        keys = first if i == 0 else MemberKeys(secret, f"fake{i}")
        keys.host_keys(host)
        name = f"fake{i}"
        bus.send(keys.control.seal(frame("hello", name, keys.hello_body()), "hello"))
        body = P.hello_body(name, keys.token, f"tcp://127.0.0.1:{1024 + i}")
        bus.send(keys.control.seal(frame(P.JOIN, name, body), P.JOIN))
        sent += 2
        if i % 8 == 7:
            time.sleep(0.01)  # bus0 drops past a queue of 16
    say("sent", sent)
    sys.stdin.read()
    bus.close()


def main() -> None:
    mode, address, *rest = sys.argv[1:]
    if mode == "survey":
        survey(address, rest[0].split(","), rest[1])
    elif mode == "control":
        control(address, float(rest[0]))
    elif mode == "tap":
        trio.run(tap, address, rest[0])
    elif mode == "line":
        line(address, rest[0], rest[1])
    elif mode == "hijack":
        hijack(address, rest[0], rest[1])
    elif mode == "garbage":
        garbage(address, int(rest[0]))
    elif mode == "member-frames":
        trio.run(member_frames, address, int(rest[0]))
    elif mode == "secret-joins":
        secret_joins(address, int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
