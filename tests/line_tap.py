"""A tcp tap in front of a hotline's listener, for the replay tests.

    python tests/line_tap.py LISTEN_PORT TARGET_PORT

Forwards every connection made to 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT and keeps
the messages the dialer sends (NNG's tcp framing: an 8-byte SP header, then each message
after its 8-byte big-endian length), by connection. Prints ``ready``; then, on stdin:

* ``replay hellos`` writes every ``hello`` the *first* connection's dialer sent into the
  stream of the *latest* connection, between two of its messages, and prints
  ``replayed N`` (a recording of an earlier run of the dialer, replayed to the listener
  while a new run of it is connected);
* ``hold`` keeps what dialers send from now on (recorded as ``held``) instead of forwarding
  it, and ``release`` forwards again (a tap that keeps the listener from hearing a dialer:
  the hellos it sends meanwhile are authentic and never read); ``held`` prints ``held N``,
  the hellos held so far;
* ``inject held`` makes the *next* connection carry the held hellos to the listener before
  anything its dialer sends; ``cut`` closes every connection (the dialer dials again);
  both print ``ok``;
* ``quit`` (or the end of input) stops.
"""

from __future__ import annotations

import functools
import os
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from consensus.trust.seal import HEADER, MAGIC, TAG_SIZE, Scheme
from patterns import MalformedMessage, decode

LENGTH = struct.Struct(">Q")
PAIR1_HEADER = 4  # pair1 puts a 4-byte hop count before each message's body


def say(*parts: object) -> None:
    print(*parts, flush=True)


def kind(message: bytes) -> str | None:
    """The kind of the envelope in a message (sealed or not: a seal hides nothing)."""
    frame = message[PAIR1_HEADER:]
    if frame[:2] == MAGIC:
        frame = frame[HEADER.size + TAG_SIZE[Scheme(frame[2])] :]
    try:
        return decode(frame).kind
    except (MalformedMessage, KeyError, ValueError):
        return None


class Tap:
    def __init__(self) -> None:
        self.recorded: list[list[bytes]] = []  # by connection: what its dialer sent
        self.latest: tuple[trio.SocketStream, trio.Lock] | None = None
        self.hold = False
        self.held: list[bytes] = []  # what dialers sent while held: never forwarded
        self.inject: list[bytes] = []  # for the next connection, before its dialer's messages
        self.open: list[trio.SocketStream] = []  # every stream of the connections open

    async def handle(self, client: trio.SocketStream, target: int) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", target)
        lock = trio.Lock()  # a replayed message goes between two of the dialer's, never inside one
        messages: list[bytes] = []
        self.recorded.append(messages)
        self.latest = (upstream, lock)
        self.open += [client, upstream]
        inject, self.inject = self.inject, []
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.framed, client, upstream, lock, messages, inject)
                nursery.start_soon(self.raw, upstream, client)
        finally:
            self.open = [stream for stream in self.open if stream not in (client, upstream)]

    async def framed(self, source: trio.SocketStream, sink: trio.SocketStream, lock: trio.Lock,
                     messages: list[bytes], inject: list[bytes]) -> None:  # fmt: skip
        buffer = bytearray()

        async def take(count: int) -> bytes:
            while len(buffer) < count:
                chunk = await source.receive_some()
                if not chunk:
                    raise trio.EndOfChannel
                buffer.extend(chunk)
            data = bytes(buffer[:count])
            del buffer[:count]
            return data

        try:
            header = await take(8)
            async with lock:
                await sink.send_all(header)
                for message in inject:
                    await sink.send_all(LENGTH.pack(len(message)) + message)
            while True:
                (size,) = LENGTH.unpack(await take(8))
                message = await take(size)
                if self.hold:
                    self.held.append(message)
                    continue
                messages.append(message)
                async with lock:
                    await sink.send_all(LENGTH.pack(size) + message)
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def raw(self, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            async for chunk in source:
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await sink.aclose()

    async def replay_hellos(self) -> int:
        assert self.latest is not None and self.recorded
        hellos = [message for message in self.recorded[0] if kind(message) == "hello"]
        upstream, lock = self.latest
        async with lock:
            for message in hellos:
                await upstream.send_all(LENGTH.pack(len(message)) + message)
        return len(hellos)


async def main(listen: int, target: int) -> None:
    tap = Tap()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, functools.partial(tap.handle, target=target), listen, host="127.0.0.1")
        await nursery.start(serve)
        say("ready")
        while line := await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True):
            if line.strip() == "replay hellos":
                say("replayed", await tap.replay_hellos())
            elif line.strip() in ("hold", "release"):
                tap.hold = line.strip() == "hold"
                say("ok")
            elif line.strip() == "held":
                say("held", sum(kind(message) == "hello" for message in tap.held))
            elif line.strip() == "inject held":
                tap.inject = [message for message in tap.held if kind(message) == "hello"]
                say("ok")
            elif line.strip() == "cut":
                for stream in tap.open:
                    await stream.aclose()
                say("ok")
            elif line.strip() == "quit":
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
