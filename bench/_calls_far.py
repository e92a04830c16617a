"""The far ends of the scenarios of :mod:`bench.calls`, each run in a spawned child: an echo,
8 respondents or 8 members that answer at once. Each switches its ``counter`` on at the
first message it counts and off after the last (:mod:`bench._calls_ends`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pynng
import trio

import consensus
import patterns
from consensus import aio, blocking

from ._calls_ends import MEMBERS, SECRET, Switch

__all__ = ["FAR"]


async def _far_floor(address: str, warmup: int, n: int, counter: Switch) -> None:
    with pynng.Pair1() as sock:
        sock.dial(address, block=True)
        fd, seen = sock.recv_fd, 0
        while True:
            try:
                data = sock.recv(block=False)
            except pynng.TryAgain:
                await trio.lowlevel.wait_readable(fd)
                continue
            if data == b"stop":
                return
            seen += 1
            if seen == warmup + 1:
                counter.on()
            sock.send(data)
            if seen == warmup + n:
                counter.off()


async def _far_pair(address: str, warmup: int, n: int, counter: Switch) -> None:
    async with patterns.Pair(dial=address) as line:
        seen = 0
        while (value := await line.receive()) is not None:
            seen += 1
            if seen == warmup + 1:
                counter.on()
            await line.send(value)
            if seen == warmup + n:
                counter.off()


async def _far_hotline(address: str, warmup: int, n: int, counter: Switch, secret: str | None = None) -> None:
    seen = [0]

    async def echo(value: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup + 1:
            counter.on()
        elif seen[0] == warmup + n + 1:
            counter.off()
        return value

    async with consensus.hotline(dial=address, name="echo", on_ask=echo, secret=secret) as line:
        while await line.receive() != "stop":
            pass
    counter.off()


def _far_hotline_aio(address: str, warmup: int, n: int, counter: Switch) -> None:
    """The echo as an ``async def`` on an asyncio loop (``consensus.aio``): the loop reads the line."""
    seen = [0]

    async def echo(value: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup + 1:
            counter.on()
        elif seen[0] == warmup + n + 1:
            counter.off()
        return value

    async def run() -> None:
        async with aio.hotline(dial=address, name="echo", on_ask=echo) as line:
            while await line.receive() != "stop":
                pass

    asyncio.run(run())
    counter.off()


def _far_hotline_blocking(address: str, warmup: int, n: int, counter: Switch) -> None:
    """The echo as a plain function (``consensus.blocking``): the thread that reads the ask runs it
    (and counts: the leader keeps the line while a handler this short runs)."""
    seen = [0]

    def echo(value: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup + 1:
            counter.on()
        elif seen[0] == warmup + n + 1:
            counter.off()
        return value

    with blocking.hotline(dial=address, name="echo", on_ask=echo) as line:
        while line.receive() != "stop":
            pass
    counter.off()


async def _far_survey_floor(address: str, warmup: int, n: int, counter: Switch) -> None:
    seen = [0]

    async def one(sock: Any, first: bool) -> None:
        fd = sock.recv_fd
        while True:
            try:
                question = sock.recv(block=False)
            except pynng.TryAgain:
                await trio.lowlevel.wait_readable(fd)
                continue
            if first:
                seen[0] += 1
                if seen[0] == warmup + 1:
                    counter.on()
                elif seen[0] == warmup + n + 1:
                    counter.off()
            sock.send(question)

    socks = [pynng.Respondent0() for _ in range(MEMBERS)]
    async with trio.open_nursery() as nursery:
        for i, sock in enumerate(socks):
            sock.dial(address, block=False)
            nursery.start_soon(one, sock, i == 0)


async def _far_survey(address: str, warmup: int, n: int, counter: Switch) -> None:
    seen = [0]

    async def one(resp: patterns.Respondent, first: bool) -> None:
        async for survey in resp:
            if first:
                seen[0] += 1
                if seen[0] == warmup + 1:
                    counter.on()
                elif seen[0] == warmup + n + 1:
                    counter.off()
            await survey.reply(survey.body)

    async with trio.open_nursery() as nursery:
        for i in range(MEMBERS):
            resp = patterns.Respondent(dial=address, name=f"r{i}")
            await resp.__aenter__()
            nursery.start_soon(one, resp, i == 0)
        await trio.sleep(3600)


async def _far_poll(address: str, warmup: int, n: int, counter: Switch, secret: str | None = None) -> None:
    seen = [0]

    async def on_poll(question: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup * MEMBERS + 1:
            counter.on()
        elif seen[0] == (warmup + n) * MEMBERS + 1:
            counter.off()
        return question

    async def one(name: str) -> None:
        async with consensus.join(address, name=name, on_poll=on_poll, join_timeout=30, secret=secret):
            await trio.sleep(3600)

    async with trio.open_nursery() as nursery:
        for i in range(MEMBERS):
            nursery.start_soon(one, f"m{i}")


def _far_poll_aio(address: str, warmup: int, n: int, counter: Switch) -> None:
    """8 members on an asyncio loop (``consensus.aio``), ``async def`` handlers: the loop reads their surveys."""
    seen = [0]

    async def on_poll(question: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup * MEMBERS + 1:
            counter.on()
        elif seen[0] == (warmup + n) * MEMBERS + 1:
            counter.off()
        return question

    async def one(name: str) -> None:
        async with aio.join(address, name=name, on_poll=on_poll, join_timeout=30):
            await asyncio.sleep(3600)

    async def run() -> None:
        await asyncio.gather(*(one(f"m{i}") for i in range(MEMBERS)))

    asyncio.run(run())


def _far_poll_blocking(address: str, warmup: int, n: int, counter: Switch) -> None:
    """8 members through ``consensus.blocking``, plain handlers: the process's survey reader
    thread reads their surveys and runs the handlers (and counts: they answer at once)."""
    seen = [0]

    def on_poll(question: Any) -> Any:
        seen[0] += 1
        if seen[0] == warmup * MEMBERS + 1:
            counter.on()
        elif seen[0] == (warmup + n) * MEMBERS + 1:
            counter.off()
        return question

    with contextlib.ExitStack() as stack:
        for i in range(MEMBERS):
            stack.enter_context(blocking.join(address, name=f"m{i}", on_poll=on_poll, join_timeout=30))
        time.sleep(3600)


FAR: dict[str, Callable[..., Any]] = {"floor": _far_floor, "pair": _far_pair, "hotline": _far_hotline,
                                      "hotline_secret": partial(_far_hotline, secret=SECRET),
                                      "hotline_aio": _far_hotline_aio, "hotline_blocking": _far_hotline_blocking,
                                      "survey_floor": _far_survey_floor, "survey": _far_survey,
                                      "poll": _far_poll, "poll_secret": partial(_far_poll, secret=SECRET),
                                      "poll_aio": _far_poll_aio, "poll_blocking": _far_poll_blocking}  # fmt: skip
