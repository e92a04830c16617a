"""The near ends of the scenarios of :mod:`bench.calls`, run in the bench's process: the
asker, the surveyor or the room's host. Each switches its ``counter`` on at the first
message it counts and off after the last (:mod:`bench._calls_ends`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pynng
import trio

import consensus
import patterns
from consensus import aio, blocking

from ._calls_ends import MEMBERS, PAYLOAD, SECRET, Switch

__all__ = ["NEAR"]


async def _near_floor(address: str, warmup: int, n: int, counter: Switch) -> None:
    with pynng.Pair1() as sock:
        sock.listen(address)
        fd = sock.recv_fd
        for i in range(warmup + n):
            if i == warmup:
                counter.on()
            sock.send(PAYLOAD)
            while True:
                try:
                    sock.recv(block=False)
                    break
                except pynng.TryAgain:
                    await trio.lowlevel.wait_readable(fd)
        counter.off()
        sock.send(b"stop")


async def _near_pair(address: str, warmup: int, n: int, counter: Switch) -> None:
    async with patterns.Pair(listen=address) as line:
        await line.wait_for_peers()
        for i in range(warmup + n):
            if i == warmup:
                counter.on()
            await line.send(PAYLOAD)
            await line.receive()
        counter.off()
        await line.send(None)
        await trio.sleep(0.2)


async def _near_hotline(address: str, warmup: int, n: int, counter: Switch, secret: str | None = None) -> None:
    async with consensus.hotline(listen=address, name="asker", secret=secret) as line:
        await line.wait_connected()
        for i in range(warmup + n + 1):  # one more ask: the far end stops counting when it sees it
            if i == warmup:
                counter.on()
            await line.ask(PAYLOAD, timeout=5)
            if i == warmup + n - 1:
                counter.off()
        await line.send("stop")
        await trio.sleep(0.2)


def _near_hotline_aio(address: str, warmup: int, n: int, counter: Switch) -> None:
    """``consensus.aio`` asks from an asyncio loop (which reads the line itself)."""

    async def run() -> None:
        async with aio.hotline(listen=address, name="asker") as line:
            await line.wait_connected()
            for i in range(warmup + n + 1):  # one more ask: the far end stops counting when it sees it
                if i == warmup:
                    counter.on()
                await line.ask(PAYLOAD, timeout=5)
                if i == warmup + n - 1:
                    counter.off()
            await line.send("stop")
            await asyncio.sleep(0.2)

    asyncio.run(run())


def _near_hotline_blocking(address: str, warmup: int, n: int, counter: Switch) -> None:
    """``consensus.blocking`` asks from this (plain) thread, which reads the line while it waits."""
    with blocking.hotline(listen=address, name="asker") as line:
        line.wait_connected()
        for i in range(warmup + n + 1):
            if i == warmup:
                counter.on()
            line.ask(PAYLOAD, timeout=5)
            if i == warmup + n - 1:
                counter.off()
        line.send("stop")
        time.sleep(0.2)


async def _near_survey_floor(address: str, warmup: int, n: int, counter: Switch) -> None:
    pipes = [0]
    # Raw, as bench._poll_phases' floor: a cooked Surveyor0's recv(block=False) blocks.
    with pynng.Surveyor0(opener=pynng.lib.nng_surveyor0_open_raw) as sock:
        sock.add_post_pipe_connect_cb(lambda _pipe: pipes.__setitem__(0, pipes[0] + 1))
        sock.listen(address)
        while pipes[0] < MEMBERS:
            await trio.sleep(0.01)
        await trio.sleep(0.3)
        fd = sock.recv_fd
        for i in range(warmup + n + 1):
            if i == warmup:
                counter.on()
            sock.send((0x8000_0000 | (i + 1)).to_bytes(4, "big") + b"q%d" % i)  # NNG's survey id first
            for _ in range(MEMBERS):
                while True:
                    try:
                        sock.recv(block=False)
                        break
                    except pynng.TryAgain:
                        await trio.lowlevel.wait_readable(fd)
            if i == warmup + n - 1:
                counter.off()  # one more survey: the far end stops counting when it sees it


async def _near_survey(address: str, warmup: int, n: int, counter: Switch) -> None:
    async with patterns.Surveyor(listen=address, name="boss") as boss:
        await boss.wait_for_peers(MEMBERS)
        await trio.sleep(0.3)
        for i in range(warmup + n + 1):
            if i == warmup:
                counter.on()
            replies = await boss.survey(i, timeout=5)
            got = replies.take()
            while len(got) < MEMBERS:
                await replies.wait()
                got += replies.take()
            replies.close()
            if i == warmup + n - 1:
                counter.off()  # one more survey: the far end stops counting when it sees it


async def _near_poll(address: str, warmup: int, n: int, counter: Switch, secret: str | None = None) -> None:
    async with consensus.host(address, secret=secret) as room:
        await room.wait_for_members(MEMBERS)
        await trio.sleep(0.5)
        for i in range(warmup + n + 1):  # one more poll: the far end stops counting when it sees it
            if i == warmup:
                counter.on()
            result = await room.poll(i, timeout=5)
            assert len(result.answers) == MEMBERS, result
            if i == warmup + n - 1:
                counter.off()
        await trio.sleep(0.3)


def _both(counter: Switch, trio_counter: Switch, room: Any) -> tuple[Callable[[], None], Callable[[], None]]:
    """Switch the caller's thread's ``counter`` and the front's trio thread's together (the
    room proxy's lease runs a plain call there)."""

    def on() -> None:
        room._thread.call_sync(trio_counter.on)
        counter.on()

    def off() -> None:
        counter.off()
        room._thread.call_sync(trio_counter.off)

    return on, off


def _near_poll_aio(address: str, warmup: int, n: int, counter: Switch, trio_counter: Switch) -> None:
    """``room.poll`` awaited on an asyncio loop (``consensus.aio``): the loop's calls, and the trio thread's."""

    async def run() -> None:
        async with aio.host(address) as room:
            await room.wait_for_members(MEMBERS)
            await asyncio.sleep(0.5)
            on, off = _both(counter, trio_counter, room)
            for i in range(warmup + n + 1):  # one more poll: the far end stops counting when it sees it
                if i == warmup:
                    on()
                result = await room.poll(i, timeout=5)
                assert len(result.answers) == MEMBERS, result
                if i == warmup + n - 1:
                    off()
            await asyncio.sleep(0.3)

    asyncio.run(run())


def _near_poll_blocking(address: str, warmup: int, n: int, counter: Switch, trio_counter: Switch) -> None:
    """``room.poll`` from this plain thread (``consensus.blocking``): its calls, and the trio thread's."""
    with blocking.host(address) as room:
        room.wait_for_members(MEMBERS)
        time.sleep(0.5)
        on, off = _both(counter, trio_counter, room)
        for i in range(warmup + n + 1):
            if i == warmup:
                on()
            result = room.poll(i, timeout=5)
            assert len(result.answers) == MEMBERS, result
            if i == warmup + n - 1:
                off()
        time.sleep(0.3)


NEAR: dict[str, Callable[..., Any]] = {"floor": _near_floor, "pair": _near_pair, "hotline": _near_hotline,
                                       "hotline_secret": partial(_near_hotline, secret=SECRET),
                                       "hotline_aio": _near_hotline_aio, "hotline_blocking": _near_hotline_blocking,
                                       "survey_floor": _near_survey_floor, "survey": _near_survey,
                                       "poll": _near_poll, "poll_secret": partial(_near_poll, secret=SECRET),
                                       "poll_aio": _near_poll_aio, "poll_blocking": _near_poll_blocking}  # fmt: skip
