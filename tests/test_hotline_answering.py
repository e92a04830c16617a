"""Hotlines: the answering side in one process: ``receive_ask`` with no ``on_ask`` (replies,
chunks, failures), and async ``on_ask`` handlers that run inline until they wait (and may
ask back before they answer).

No test sleeps to synchronise; every wait is bounded (the conftest deadline, or an
explicit ``fail_after``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from _hotline import Address, two_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consensus

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------- receive_ask without on_ask
async def test_receive_ask_reply_and_stream_in_process(address: Address) -> None:
    addr = address("inproc")
    async with two_lines(addr) as (server, client):
        with trio.fail_after(10):

            async def serve() -> None:
                ask = await server.receive_ask()
                assert ask.value == {"q": "plain"} and not ask.stream
                with pytest.raises(ValueError):
                    await ask.chunk("no chunks for a plain ask")
                await ask.reply({"a": 1})
                with pytest.raises(ValueError):
                    await ask.reply("twice")

                ask = await server.receive_ask()
                assert ask.value == "count" and ask.stream
                for i in range(3):
                    await ask.chunk(i)
                await ask.end()

                ask = await server.receive_ask()
                assert ask.stream
                await ask.chunk("x")
                await ask.end("last")

                ask = await server.receive_ask()
                await ask.fail(ValueError("nope"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)
                assert await client.ask({"q": "plain"}, timeout=5) == {"a": 1}
                assert [c async for c in client.ask_stream("count", timeout=5)] == [0, 1, 2]
                assert [c async for c in client.ask_stream("with end", timeout=5)] == ["x", "last"]
                with pytest.raises(consensus.RemoteError) as info:
                    await client.ask("fail", timeout=5)
                assert info.value.type == "ValueError"

        assert server.statistics().asks_open == 0
        assert client.statistics().asks_answered >= 3
        assert client.statistics().stale_replies == 0


async def test_receive_ask_refused_when_on_ask_is_set(address: Address) -> None:
    async with consensus.hotline(listen=address("inproc"), on_ask=lambda v: v) as line:
        with pytest.raises(RuntimeError):
            await line.receive_ask()


# ---------------------------------------------------------------- inline answers (async on_ask)
async def test_an_async_handler_that_waits_never_stalls_the_line(address: Address) -> None:
    """An async on_ask runs inline until it suspends; then the line reads on without it."""
    addr = address("inproc")
    gate = trio.Event()

    async def on_ask(value: Any) -> Any:
        if value == "wait":
            await gate.wait()
            return "released"
        if value == "raise":
            raise ValueError("asked to fail")
        return {"echo": value}

    async with two_lines(addr, server_on_ask=on_ask) as (server, client):
        with trio.fail_after(10):
            result: list[Any] = []

            async def slow() -> None:
                result.append(await client.ask("wait", timeout=5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                for i in range(3):  # answered while the first handler still waits
                    assert await client.ask(i, timeout=5) == {"echo": i}
                await client.send("one-way")
                assert await server.receive() == "one-way"
                assert not result
                gate.set()
            assert result == ["released"]
            with pytest.raises(consensus.RemoteError) as info:
                await client.ask("raise", timeout=5)
            assert info.value.type == "ValueError"
            # an async (not generator) handler answers a streamed ask with one last item
            assert [c async for c in client.ask_stream("s", timeout=5)] == [{"echo": "s"}]
        assert server.statistics().asks_served == 6
        stats = client.statistics()
        assert stats.asks_answered == 6 and stats.asks_open == 0 and stats.stale_replies == 0


async def test_an_async_handler_may_ask_back_before_it_answers(address: Address) -> None:
    """Both ends answer inline; a handler that asks the other side first suspends, hands
    the line to a new receiving task, and still gets its answer through it."""
    addr = address("inproc")
    lines: dict[str, consensus.Hotline] = {}

    async def server_on_ask(value: Any) -> Any:
        return [value, await lines["server"].ask("and you?", timeout=5)]

    async def client_on_ask(value: Any) -> Any:
        return f"client heard {value}"

    async with two_lines(addr, server_on_ask=server_on_ask, client_on_ask=client_on_ask) as (server, client):
        lines["server"] = server
        with trio.fail_after(10):
            for i in range(3):
                assert await client.ask(i, timeout=5) == [i, "client heard and you?"]
        assert server.statistics().asks_served == 3 and client.statistics().asks_served == 3


# ---------------------------------------------------------------- inline answers against a reference
# What an inline handler does with an ask: answer at once, fail at once, or the same after
# suspending (a bare checkpoint, or a gate the test opens once every ask is out; a gated one
# may also be cancelled by the line closing, which the reference below does not cover).
BEHAVIOURS = ("now", "raise", "yield", "yield raise", "gate", "gate raise")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=10), stream=st.lists(st.booleans(), max_size=10))
def test_inline_handlers_answer_as_a_reference_says(plan: list[str], stream: list[bool], address: Address) -> None:
    """Asks answered inline by a handler that returns at once, raises, or does either after
    suspending (one at a time and all at once): each gets what the handler gave it, the
    context (``handler_context``) is its own ask's before and after any suspension, and the
    books count every ask served and answered."""

    def expected(i: int, behaviour: str) -> Any:
        return ("raise", i) if behaviour.endswith("raise") else {"answer": i, "behaviour": behaviour}

    async def main() -> None:
        gate = trio.Event()
        seen: dict[int, tuple[str, str, int | None]] = {}  # i -> (kind, asker, ask id)

        async def on_ask(value: Any) -> Any:
            i, behaviour = value
            ctx = consensus.handler_context()
            seen[i] = (ctx.kind, ctx.asker, ctx.ask_id)
            if behaviour.startswith("yield"):
                await trio.lowlevel.checkpoint()
            elif behaviour.startswith("gate"):
                await gate.wait()
            after = consensus.handler_context()
            assert (after.kind, after.asker, after.ask_id) == seen[i], (i, behaviour)
            if behaviour.endswith("raise"):
                raise KeyError(i)
            return {"answer": i, "behaviour": behaviour}

        async def one(client: consensus.Hotline, i: int, behaviour: str, got: dict[int, Any],
                      answered: Callable[[], None] = lambda: None) -> None:  # fmt: skip
            try:
                if i < len(stream) and stream[i]:
                    items = [x async for x in client.ask_stream((i, behaviour), timeout=10)]
                    assert len(items) == 1
                    got[i] = items[0]
                else:
                    got[i] = await client.ask((i, behaviour), timeout=10)
            except consensus.RemoteError as exc:
                assert exc.type == "KeyError"
                got[i] = ("raise", i)
            answered()

        async with two_lines(address("inproc"), server_on_ask=on_ask) as (server, client):
            with trio.fail_after(30):
                # One at a time (a gated ask waits for its gate, opened at once)...
                got: dict[int, Any] = {}
                for i, behaviour in enumerate(plan):
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(one, client, i, behaviour, got)
                        if behaviour.startswith("gate"):
                            gate.set()
                    gate = trio.Event()
                assert got == {i: expected(i, b) for i, b in enumerate(plan)}
                first = dict(seen)
                # ... then all at once, the gated ones opened once every other ask is answered.
                got = {}
                seen.clear()
                ungated = {i for i, b in enumerate(plan) if not b.startswith("gate")}
                all_ungated = trio.Event()

                def answered() -> None:
                    if ungated <= got.keys():
                        all_ungated.set()

                async with trio.open_nursery() as nursery:
                    for i, behaviour in enumerate(plan):
                        nursery.start_soon(one, client, i, behaviour, got, answered)
                    answered()  # (none ungated)
                    await all_ungated.wait()
                    assert not any(i in got for i in range(len(plan)) if i not in ungated)  # still waiting
                    gate.set()
                assert got == {i: expected(i, b) for i, b in enumerate(plan)}
            assert all(kind == "ask" and asker == "client" for kind, asker, _ in first.values())
            ids = [ask_id for _, _, ask_id in first.values()] + [ask_id for _, _, ask_id in seen.values()]
            assert len(set(ids)) == 2 * len(plan)  # every ask saw its own id
            assert server.statistics().asks_served == 2 * len(plan)
            stats = client.statistics()
            assert stats.asks_answered == 2 * len(plan) and stats.asks_open == 0 and stats.stale_replies == 0

    trio.run(main)


@pytest.mark.parametrize("waits", [False, True])
async def test_an_inline_handler_raising_stop_iteration_fails_its_ask_only(address: Address, waits: bool) -> None:
    """The inline step catches the handler coroutine's StopIteration (its return): one the
    handler raises becomes a RuntimeError (PEP 479), the asker's RemoteError, and the line
    goes on serving; a StopAsyncIteration is an error like any other."""

    async def on_ask(value: Any) -> Any:
        if waits:
            await trio.lowlevel.checkpoint()
        if value == "stop":
            raise StopIteration("not a return")
        if value == "async stop":
            raise StopAsyncIteration
        return value

    async with two_lines(address("inproc"), server_on_ask=on_ask) as (server, client):
        with trio.fail_after(20):
            with pytest.raises(consensus.RemoteError) as stopped:
                await client.ask("stop", timeout=5)
            assert stopped.value.type == "RuntimeError"
            with pytest.raises(consensus.RemoteError) as async_stopped:
                await client.ask("async stop", timeout=5)
            assert async_stopped.value.type == "StopAsyncIteration"
            assert await client.ask("after", timeout=5) == "after"
        assert server.statistics().asks_served == 3 and client.statistics().asks_answered == 3
