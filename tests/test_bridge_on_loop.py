"""An asyncio handler started on its loop by a driver (``OnLoop`` in ``consensus/bridge/handlers.py``):
each outcome reported once, from the handler's own task, also when it is cancelled before it ran."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest
import trio

from consensus.bridge.handlers import OnLoop

pytestmark = pytest.mark.timeout(60)


def run_calls(handler: Any, calls: list[tuple[Any, ...]], *, cancel_at_once: bool = False) -> list[tuple[bool, Any]]:
    """Submit each call's args from the loop's own thread; return the reports, in order."""
    reports: list[tuple[bool, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        on_loop = OnLoop(loop, handler)
        everything = asyncio.Event()

        def done(ok: bool, value: Any) -> None:
            assert threading.current_thread() is threading.main_thread()  # the loop's thread
            reports.append((ok, value))
            if len(reports) == len(calls):
                everything.set()

        for args in calls:
            cancel = on_loop.submit(args, contextvars.copy_context(), done)
            if cancel_at_once:
                cancel()
        async with asyncio.timeout(20):
            await everything.wait()
        await asyncio.sleep(0.01)  # nothing else arrives
        assert len(reports) == len(calls)

    asyncio.run(main())
    return reports


def test_answers_and_failures_are_reported_once_each() -> None:
    async def handler(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise ValueError(f"negative {x}")
        return 2 * x

    reports = run_calls(handler, [(1,), (-1,), (3,)])
    assert reports[0] == (True, 2) and reports[2] == (True, 6)
    assert reports[1][0] is False and isinstance(reports[1][1], ValueError)


def test_a_handler_cancelled_before_it_ran_is_reported_cancelled() -> None:
    ran: list[int] = []

    async def handler(x: int) -> int:
        ran.append(x)
        return x

    reports = run_calls(handler, [(1,), (2,)], cancel_at_once=True)
    assert ran == []
    assert all(not ok and "cancelled" in str(value) for ok, value in reports)


def test_a_handler_cancelled_while_waiting_is_reported_cancelled() -> None:
    seen: list[str] = []

    async def handler(x: int) -> int:
        try:
            await asyncio.sleep(0)  # started, then cancelled at its next wait
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return x

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        cancel = OnLoop(loop, handler).submit((1,), contextvars.copy_context(), lambda ok, v: got.set_result((ok, v)))
        for _ in range(5):
            await asyncio.sleep(0)
        cancel()
        async with asyncio.timeout(20):
            ok, value = await got
        assert not ok and "cancelled" in str(value) and seen == ["cancelled"]

    asyncio.run(main())


def test_a_closed_loop_refuses_at_once() -> None:
    loop = asyncio.new_event_loop()

    async def handler() -> None:
        return None

    on_loop = OnLoop(loop, handler)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        on_loop.submit((), contextvars.copy_context(), lambda ok, value: None)


async def test_batched_calls_start_at_the_end_of_trios_batch() -> None:
    """From trio with ``batched=True``: nothing is posted before trio's batch ends, then all at once."""
    started = threading.Event()
    reports: list[tuple[bool, Any]] = []
    ready = threading.Event()
    box: dict[str, Any] = {}

    def loop_thread() -> None:
        async def main() -> None:
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = asyncio.Event()
            ready.set()
            await box["stop"].wait()

        asyncio.run(main())

    async def handler(x: int) -> int:
        started.set()
        return x

    thread = threading.Thread(target=loop_thread)
    thread.start()
    try:
        assert await trio.to_thread.run_sync(ready.wait, 20)
        loop = box["loop"]
        on_loop = OnLoop(loop, handler)
        all_in = threading.Event()

        def done(ok: bool, value: Any) -> None:
            reports.append((ok, value))
            if len(reports) == 8:
                all_in.set()

        for i in range(8):
            on_loop.submit((i,), contextvars.copy_context(), done, batched=True)
        assert not started.wait(0.05)  # held until this task lets the batch end
        await trio.lowlevel.checkpoint()
        assert await trio.to_thread.run_sync(all_in.wait, 20)
        assert sorted(reports) == [(True, i) for i in range(8)]
    finally:
        if "stop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        await trio.to_thread.run_sync(thread.join, 20)
