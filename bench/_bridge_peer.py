"""The child side of ``bench.bridge``: poll members or a hotline echo, written for one front.

    python -m bench._bridge_peer members FRONT ADDRESS N    # N members answering at once
    python -m bench._bridge_peer echo FRONT ADDRESS          # a hotline listener echoing asks

``FRONT`` is ``trio`` (``consensus``, async handlers in trio), ``trio-plain`` (the same with
plain handlers, in threads), ``aio`` (``consensus.aio``
under ``asyncio.run``, async handlers on its loop) or ``blocking`` (``consensus.blocking``,
plain handlers in threads). Prints ``ready``, then leaves at the end of stdin.
``NNGC_BENCH_TRIO_ANSWERS=1`` in the environment: handlers' answers go back through trio
(the path before ``consensus/hotline/threaded.py``), for a before/after comparison;
``NNGC_BENCH_TRIO_SERVE=1``: a blocking line's plain ``on_ask`` is reached through trio's
reader (the path before ``consensus/hotline/thread_serve.py``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import AsyncExitStack, ExitStack
from typing import Any

import trio

import consensus
from consensus import aio, blocking
from consensus.hotline import serve, thread_serve

if os.environ.get("NNGC_BENCH_TRIO_ANSWERS"):  # the old path, for a before/after run of bench.bridge
    serve.ANSWER_FROM_THREAD = False
if os.environ.get("NNGC_BENCH_TRIO_SERVE"):  # blocking lines' asks read by trio (before thread_serve)
    thread_serve.SERVE_IN_THREADS = False


async def _answer(value: Any) -> Any:
    return value


def _answer_plain(value: Any) -> Any:
    return value


def _ready() -> None:
    print("ready", flush=True)


async def run_trio(role: str, address: str, n: int, plain: bool = False) -> None:
    answer = _answer_plain if plain else _answer
    async with AsyncExitStack() as stack:
        if role == "members":
            for i in range(n):
                await stack.enter_async_context(consensus.join(address, name=f"m{i}", on_poll=answer))
        else:
            await stack.enter_async_context(consensus.hotline(listen=address, on_ask=answer))
        _ready()
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def run_aio(role: str, address: str, n: int) -> None:
    async def answer(value: Any) -> Any:  # a coroutine of this asyncio loop
        return value

    async with AsyncExitStack() as stack:
        if role == "members":
            for i in range(n):
                await stack.enter_async_context(aio.join(address, name=f"m{i}", on_poll=answer))
        else:
            await stack.enter_async_context(aio.hotline(listen=address, on_ask=answer))
        _ready()
        await asyncio.to_thread(sys.stdin.read)


def run_blocking(role: str, address: str, n: int) -> None:
    with ExitStack() as stack:
        if role == "members":
            for i in range(n):
                stack.enter_context(blocking.join(address, name=f"m{i}", on_poll=_answer_plain))
        else:
            stack.enter_context(blocking.hotline(listen=address, on_ask=_answer_plain))
        _ready()
        sys.stdin.read()


def main(argv: list[str]) -> None:
    role, front, address = argv[:3]
    n = int(argv[3]) if len(argv) > 3 else 1
    if front in ("trio", "trio-plain"):
        trio.run(run_trio, role, address, n, front == "trio-plain")
    elif front == "aio":
        asyncio.run(run_aio(role, address, n))
    else:
        run_blocking(role, address, n)


if __name__ == "__main__":
    main(sys.argv[1:])
