"""Plain (non-async) handlers: run in trio's cached threads, answered, failed, abandoned, limited.

``consensus.runtime.handlers.run_handler`` hands a plain handler to a thread with
``trio.lowlevel.start_thread_soon`` (issue 18); these tests pin the contract that
``trio.to_thread.run_sync`` gave before: the result or the failure comes back, the
caller's contextvars are seen, a handler past its deadline is abandoned and keeps its
limiter token until it returns, and a hotline answers plain asks and plain failures.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

import pytest
import trio

import consensus
from consensus.failure import Failure
from consensus.runtime.handlers import run_handler

pytestmark = pytest.mark.timeout(60)

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_a_plain_handler_runs_in_another_thread_and_sees_the_callers_context() -> None:
    def handler(value: int) -> tuple[int, bool, str]:
        return value + 1, threading.current_thread() is not threading.main_thread(), WHO.get()

    WHO.set("caller")
    with trio.fail_after(10):
        ok, result = await run_handler(handler, 41, deadline=trio.current_time() + 5,
                                       limiter=trio.CapacityLimiter(2))  # fmt: skip
    assert ok and result == (42, True, "caller")


async def test_a_plain_handler_that_raises_is_a_failure_not_a_crash() -> None:
    def handler(value: int) -> int:
        raise ValueError(f"bad value {value}")

    with trio.fail_after(10):
        ok, result = await run_handler(handler, 7, deadline=trio.current_time() + 5,
                                       limiter=trio.CapacityLimiter(1))  # fmt: skip
    assert not ok and isinstance(result, Failure) and "bad value 7" in str(result.to_wire())


async def test_a_late_plain_handler_is_abandoned_and_holds_its_token_until_it_returns() -> None:
    release = threading.Event()
    limiter = trio.CapacityLimiter(1)

    def slow(_: object) -> str:
        release.wait(10)
        return "late"

    with trio.fail_after(10):
        ok, result = await run_handler(slow, None, deadline=trio.current_time() + 0.2, limiter=limiter)
        assert not ok and result.type == "Timeout"
        assert limiter.borrowed_tokens == 1  # the abandoned thread still holds it
        ok, result = await run_handler(lambda v: v, 1, deadline=trio.current_time() + 5, limiter=limiter)
        assert not ok and result.type == "Busy"
        release.set()
        while limiter.borrowed_tokens:  # the thread gives its token back when it returns
            await trio.sleep(0.01)
        ok, result = await run_handler(lambda v: v, 2, deadline=trio.current_time() + 5, limiter=limiter)
        assert ok and result == 2


async def test_a_hotline_answers_plain_asks_and_plain_failures(address: Callable[[str], str]) -> None:
    def on_ask(value: object) -> object:
        if value == "fail":
            raise RuntimeError("asked to fail")
        return ["plain", value]

    addr = address("inproc")
    async with (
        consensus.hotline(listen=addr, name="server", on_ask=on_ask) as server,
        consensus.hotline(dial=addr, name="client") as client,
    ):
        with trio.fail_after(10):
            await client.wait_connected()
            await server.wait_connected()
            assert [await client.ask(i, timeout=5) for i in range(20)] == [["plain", i] for i in range(20)]
            with pytest.raises(consensus.RemoteError) as info:
                await client.ask("fail", timeout=5)
            assert info.value.type == "RuntimeError"
            assert await client.ask("after", timeout=5) == ["plain", "after"]
