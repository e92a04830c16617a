"""Both ends of ``bench.hotline_rtt``'s asks: the hotline echo child and the timed asker.

The pynng synchronous reference reuses :mod:`bench._pair_peers` (its ``pynng_sync``
client and echo child) unchanged.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import trio

import consensus

from ._pair_peers import CHILD_LIFETIME_S, JOIN_TIMEOUT_S, PAYLOAD, client_tls, server_tls

ASK_TIMEOUT_S = 10.0  # no single ask may hang longer than this
STOP = "stop"  # sent with Hotline.send: the echo child leaves its line and exits


# ===================================================================== echo side (child)
async def _echo(value: Any) -> Any:
    return value


async def echo_hotline(address: str, tls: dict[str, str] | None = None) -> None:
    """The echo end of a hotline (dials; answers each ask with its value) until it hears ``STOP``."""
    async with consensus.hotline(dial=address, name="echo", on_ask=_echo, tls=client_tls(tls)) as line:
        with trio.move_on_after(CHILD_LIFETIME_S):
            while await line.receive() != STOP:
                pass


def _echo_main(address: str, tls: dict[str, str] | None = None) -> None:
    """Entry point of the spawned echo process."""
    trio.run(echo_hotline, address, tls)


class HotlineEchoChild:
    """A spawned hotline echo process that is always reaped: join, then terminate, then kill."""

    variant = "hotline"

    def __init__(self, address: str, tls: dict[str, str] | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.process: multiprocessing.process.BaseProcess = ctx.Process(
            target=_echo_main, args=(address, tls), name="echo-hotline", daemon=True
        )
        self.stop_sent = False
        self.process.start()

    def check_alive(self) -> None:
        if not self.process.is_alive():
            raise RuntimeError(f"hotline echo child exited early (exit code {self.process.exitcode})")

    def stop(self) -> None:
        proc = self.process
        proc.join(JOIN_TIMEOUT_S if self.stop_sent else 0.1)
        if proc.is_alive():
            proc.terminate()
            proc.join(JOIN_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(JOIN_TIMEOUT_S)
        if proc.exitcode not in (0, None) and self.stop_sent:
            print(f"warning: hotline echo child exited with {proc.exitcode}", file=sys.stderr)
        proc.close()


# ===================================================================== asking side (parent)
class HotlineClient:
    """The listening hotline; times ``count`` asks per call (only the ask sits in the window)."""

    key = "hotline_ask"
    payload: Any = PAYLOAD  # what each ask sends (set another value on the instance)

    async def open(self, stack: AsyncExitStack, address: str, tls: dict[str, str] | None = None) -> str:
        self.line = await stack.enter_async_context(
            consensus.hotline(listen=address, name="bench", tls=server_tls(tls))
        )
        return self.line.bound_address

    def connected(self) -> bool:
        return self.line.connected

    async def roundtrips(self, count: int, samples: list[int] | None) -> None:
        line, payload, clock = self.line, self.payload, time.perf_counter_ns
        for _ in range(count):
            t0 = clock()
            reply = await line.ask(payload, timeout=ASK_TIMEOUT_S)
            t1 = clock()
            if samples is not None:
                samples.append(t1 - t0)
            if reply != payload:
                raise RuntimeError(
                    f"{self.key}: echo returned {reply!r:.80}, expected the {len(payload)}-byte payload"
                )

    async def send_stop(self) -> None:
        await self.line.send(STOP)
