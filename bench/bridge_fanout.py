"""Eight asyncio handlers started from trio at once and answered: a poll of 8 members held
by one asyncio program, without the network (the crossings alone).

Variants, alternating over rounds in one process:

* ``per-object``: eight trio threads, one handler each (one trio thread per opened object,
  the bridge's first design);
* ``shared``: one trio thread starting the eight handlers, one ``call_soon_threadsafe``
  and one ``run_sync_soon`` per handler;
* ``shared+mailbox``: the same through ``consensus.bridge.mailbox`` (what the bridge does):
  the handlers posted before the loop woke ride along with the first, and so do their
  answers back into trio.

Each sample is one fan-out: the asyncio side asks the trio thread(s) to start the handlers
and waits until every one has answered in trio.

    python -m bench.bridge_fanout            # 6 rounds of 200 fan-outs per variant
    python -m bench.bridge_fanout --quick    # 3 rounds of 100
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

from consensus.bridge import handlers, mailbox
from consensus.bridge.thread import TrioThread

from . import _cli
from ._common import format_table, median, percentile

FAN = 8
# (name, trio threads, through the mailbox)
VARIANTS = (("per-object", FAN, False), ("shared", 1, False), ("shared+mailbox", 1, True))


class _Direct:
    """A mailbox that sends each post on its own (the bridge without batching)."""

    def __init__(self, send: Callable[..., object]) -> None:
        self._send = send

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._send(fn, *args)


def _use_mailbox(on: bool, real: tuple[Any, Any]) -> None:
    if on:
        mailbox.for_loop, mailbox.for_trio_run = real
    else:  # the bridge's lookups, swapped for one wake-up per post
        mailbox.for_loop = lambda loop: _Direct(loop.call_soon_threadsafe)  # type: ignore[assignment,return-value]
        mailbox.for_trio_run = lambda: _Direct(trio.lowlevel.current_trio_token().run_sync_soon)  # type: ignore[assignment,return-value]


async def _answer(x: int) -> int:
    return x


async def _measure(rounds: int, fans: int) -> dict[str, list[float]]:
    loop = asyncio.get_running_loop()
    threads = [TrioThread(f"fanout {i}") for i in range(FAN)]
    for thread in threads:
        thread.start()
    real = (mailbox.for_loop, mailbox.for_trio_run)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}

    async def fan(k: int) -> None:  # in trio: k handlers on the loop at once
        async with trio.open_nursery() as nursery:
            for i in range(k):
                nursery.start_soon(handlers.run_on_loop, loop, _answer(i))

    try:
        for n in range(rounds):
            for name, count, on in VARIANTS if n % 2 == 0 else VARIANTS[::-1]:
                _use_mailbox(on, real)
                for _ in range(fans):
                    started = time.perf_counter()
                    await asyncio.gather(*(threads[i].acall(fan, FAN // count) for i in range(count)))
                    samples[name].append(time.perf_counter() - started)
    finally:
        _use_mailbox(True, real)
        for thread in threads:
            await thread.astop()
    return samples


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("bridge_fanout", "Eight asyncio handlers started from trio at once, per bridge design.",
                    "3 rounds of 100 fan-outs")  # fmt: skip
    args = p.parse_args(argv)
    rounds, fans = (3, 100) if args.quick else (6, 200)

    def run(machine: dict[str, Any]) -> dict[str, Any]:
        samples = asyncio.run(_measure(rounds, fans))
        return {"params": {"rounds": rounds, "fans_per_round": fans, "handlers": FAN},
                "results": [{"variant": k, "median_us": median(v) * 1e6, "p90_us": percentile(v, 90) * 1e6}
                            for k, v in samples.items()]}  # fmt: skip

    def render(report: dict[str, Any]) -> str:
        rows = [(r["variant"], f"{r['median_us']:.0f}", f"{r['p90_us']:.0f}") for r in report["results"]]
        return format_table(("variant", "median µs per fan-out of 8", "p90 µs"), rows)

    return _cli.run(args, "bridge_fanout", "bridge_fanout: 8 asyncio handlers from trio at once", run, render)


if __name__ == "__main__":
    sys.exit(main())
