"""Peer programs the tests run as separate processes: ``python tests/peer.py ROLE ADDRESS ...``.

Each prints ``ready`` once its socket is open, then one line per event. Most roles
use the toolkit; the ``raw-*`` roles use plain pynng to act as a foreign agent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

import patterns


def say(*parts: object) -> None:
    print(*parts, flush=True)


async def pair_echo(address: str) -> None:
    async with patterns.Pair(dial=address, name="echo") as line:
        say("ready")
        async for value in line:
            await line.send(value)


async def respondent(address: str, name: str) -> None:
    async with patterns.Respondent(dial=address, name=name) as resp:
        say("ready")
        async for survey in resp:
            await survey.reply({"name": name, "echo": survey.body})


async def pull(address: str) -> None:
    async with patterns.Pull(dial=address, name="puller") as sock:
        say("ready")
        async for value in sock:
            say(json.dumps(value))


async def push(address: str, count: str) -> None:
    async with patterns.Push(dial=address, name="pusher") as sock:
        say("ready")
        for i in range(int(count)):
            await sock.send(i)
        say("sent")
        await trio.sleep_forever()


async def bus(listen: str, peers: str, *dial: str) -> None:
    async with patterns.Bus(listen=listen, dial=list(dial), name=listen) as sock:
        await sock.wait_for_peers(int(peers))
        say("ready")
        async with trio.open_nursery() as nursery:

            async def report() -> None:
                async for envelope in sock.envelopes():
                    say(json.dumps([envelope.sender, envelope.body]))

            nursery.start_soon(report)
            # Each stdin line is a value to broadcast.
            stdin = trio.wrap_file(sys.stdin)
            async for line in stdin:
                await sock.send(json.loads(line))
            nursery.cancel_scope.cancel()


def raw_push(address: str, *hex_frames: str) -> None:
    """Plain pynng push of each frame given in hex: a foreign (or hostile) agent."""
    import pynng

    with pynng.Push0(dial=address) as sock:
        say("ready")
        for frame in hex_frames:
            sock.send(bytes.fromhex(frame))
        say("sent")
        sys.stdin.readline()  # stay connected until the test is done


def raw_respondent(address: str, first_reply_hex: str = "") -> None:
    """Plain (cooked) pynng respondent: answers each survey with its body and sender;
    the first answer is replaced by ``first_reply_hex`` if given (garbage, say)."""
    import pynng

    with pynng.Respondent0(dial=address) as sock:
        say("ready")
        first = True
        while True:
            survey = patterns.decode(sock.recv())
            if first and first_reply_hex:
                sock.send(bytes.fromhex(first_reply_hex))
            else:
                body = {"echo": survey.body, "to": survey.sender}
                sock.send(patterns.encode(patterns.Envelope("reply", "foreign", 1, body, re=survey.id)))
            first = False


def raw_tap(address: str) -> None:
    """Plain (cooked) pynng respondent that never answers: prints each survey it receives
    as ``frame <hex>``, the bytes exactly as they came (what every member receives)."""
    import pynng

    with pynng.Respondent0(dial=address) as sock:
        say("ready")
        while True:
            say("frame", sock.recv().hex())


def raw_surveyor(address: str) -> None:
    """Plain (cooked) pynng surveyor: waits for a line on stdin, surveys, prints each
    reply's sender and body until its survey time ends."""
    import threading

    import pynng

    connected = threading.Event()
    with pynng.Surveyor0(survey_time=3000) as sock:
        sock.add_post_pipe_connect_cb(lambda _pipe: connected.set())
        sock.listen(address)
        say("ready")
        sys.stdin.readline()
        connected.wait(30)  # the dialer may see the connection before this side does
        sock.send(patterns.encode(patterns.Envelope("survey", "foreign", 7, "who?")))
        try:
            while True:
                reply = patterns.decode(sock.recv())
                say(json.dumps([reply.sender, reply.re, reply.body]))
        except pynng.Timeout:
            say("done")


ROLES = {"pair-echo": pair_echo, "respondent": respondent, "pull": pull, "push": push, "bus": bus}

if __name__ == "__main__":
    role, *args = sys.argv[1:]
    if role == "raw-push":
        raw_push(*args)
    elif role == "raw-respondent":
        raw_respondent(*args)
    elif role == "raw-tap":
        raw_tap(*args)
    elif role == "raw-surveyor":
        raw_surveyor(*args)
    else:
        trio.run(ROLES[role], *args)
