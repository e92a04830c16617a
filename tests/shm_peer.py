"""A child process for the shared-memory pattern tests: the other end of one pattern.

    python tests/shm_peer.py PATTERN ADDRESS SIZE

It dials ADDRESS with the pattern's counterpart (``pair``, ``pull``, ``bus``,
``respondent``), takes one message whose body is ``{"data": buffer}``, prints
``got <view|bytes> <readonly> <sha256>``, and, for the two-way patterns, answers with
``{"data": buffer}`` of SIZE bytes of its own (``bytes([7]) * SIZE``). Then it waits
for ``quit`` on stdin.

    python tests/shm_peer.py stream ADDRESS COUNT

dials ADDRESS with a Pair, takes COUNT messages ``{"tag": n, "data": buffer}`` whose
buffer is filled with the byte ``n``, keeps the views of the last few (as a consumer
that is still working on them) and checks each again when it lets it go: a view must
never change while held, whatever its sender reuses. Prints ``stream ok COUNT`` or
``stream bad <why>``, and acknowledges every message with its tag (so the sender
knows which were released).

    python tests/shm_peer.py spare DIRECTORY SIZE

uses DIRECTORY as a socket would, places two segments of SIZE bytes there (each
removed at once) so that a spare segment is prepared, prints ``spare <name>``, waits
for ``quit`` (or to be killed), then exits without giving the directory up: the
spare must go at interpreter exit.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say, wait_for_quit

import patterns


def report(body: Any) -> None:
    data = body["data"]
    kind = "view" if isinstance(data, memoryview) else type(data).__name__
    readonly = data.readonly if isinstance(data, memoryview) else True
    say("got", kind, readonly, hashlib.sha256(data).hexdigest())


async def main(pattern: str, address: str, size: int) -> None:
    answer = {"data": bytes([7]) * size}
    if pattern == "respondent":
        async with patterns.Respondent(dial=address, name="child") as sock:
            say("ready")
            survey = await sock.receive()
            report(survey.body)
            await survey.reply(answer)
    else:
        kind = {"pair": patterns.Pair, "pull": patterns.Pull, "bus": patterns.Bus}[pattern]
        async with kind(dial=address, name="child") as sock:
            await sock.wait_for_peers(1)  # connected (over tcp: its same-host beacon is written)
            say("ready")
            report(await sock.receive())
            if pattern != "pull":
                await sock.send(answer)
    await wait_for_quit()


async def stream(address: str, count: int) -> None:
    held: list[tuple[int, memoryview]] = []
    bad = ""

    def check(tag: int, view: memoryview) -> str:
        ends = (view[0], view[len(view) // 2], view[-1])
        return "" if ends == (tag, tag, tag) else f"message {tag} reads {ends}"

    async with patterns.Pair(dial=address, name="child") as sock:
        await sock.wait_for_peers(1)
        say("ready")
        for i in range(count):
            body = await sock.receive()
            tag, view = body["tag"], body["data"]
            bad = bad or ("" if isinstance(view, memoryview) else f"message {tag} came inline")
            bad = bad or check(tag, view)
            held.append((tag, view))
            while len(held) > i % 4:  # hold 0 to 3 views at a time
                old_tag, old = held.pop(0)
                bad = bad or check(old_tag, old)
                old.release()
            await sock.send({"ack": tag})
        for old_tag, old in held:
            bad = bad or check(old_tag, old)
            old.release()
    say("stream", "bad " + bad if bad else f"ok {count}")
    await wait_for_quit()


async def spare(directory: str, size: int) -> None:
    from patterns.shm import spare as _shm_spare
    from patterns.shm.segment import place

    _shm_spare.register(spare, directory)
    for _ in range(2):
        place(bytes(size), lease=30, directory=directory).discard()
    assert _shm_spare.settle(30)
    say("spare", *[held.path.name for held in _shm_spare.held(directory)])
    await wait_for_quit()


if __name__ == "__main__":
    if sys.argv[1] == "spare":
        trio.run(spare, sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "stream":
        trio.run(stream, sys.argv[2], int(sys.argv[3]))
    else:
        trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
