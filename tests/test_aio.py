"""consensus.aio with real processes: asyncio agents, asyncio handlers, cancellation from asyncio.

The tests are plain functions that run asyncio under a deadline (``_bridge.run``): pytest-trio
does not run asyncio, and the point is code that never saw trio. Each ends by checking
that no bridge thread outlived its ``async with``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _bridge import Lines, agent, ready, run
from conftest import Peers, free_tcp_port_run, tell

from consensus import NameTaken, RoomClosed, RoomUnavailable, aio
from consensus.decide.tally import Decision

pytestmark = pytest.mark.timeout(120)


def test_poll_and_vote_with_asyncio_handlers_here_and_in_processes(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    children = [agent(peers, "aio", "member", address, name) for name in ("p1", "p2")]

    async def main() -> tuple[Any, Decision, list[str]]:
        loop = asyncio.get_running_loop()
        tickets: asyncio.Queue[str] = asyncio.Queue()
        lock = asyncio.Lock()  # made on this loop: only usable from it
        seen: list[str] = []

        async def on_poll(question: Any) -> Any:
            assert asyncio.get_running_loop() is loop
            async with lock:
                ticket = await tickets.get()
                seen.append(ticket)
            return {"q": question, "by": "local", "ticket": ticket}

        async def on_vote(motion: Any, options: list[Any]) -> Any:
            await asyncio.sleep(0.01)
            return options[0]

        async with aio.host(address) as room:
            await ready(*children)
            async with aio.join(address, name="local", on_poll=on_poll, on_vote=on_vote):
                assert sorted(await room.wait_for_members(3)) == ["local", "p1", "p2"]
                polling = asyncio.create_task(room.poll("ready?", timeout=10))
                await asyncio.sleep(0.05)
                await tickets.put("t1")  # the handler waits for this, on this loop
                result = await polling
                decision = await room.vote("ship it?", options=["yes", "no"], timeout=10)
            for child in children:
                tell(child, "quit")
        return result, decision, seen

    result, decision, seen = run(main())
    assert dict(result.answers) == {
        "local": {"q": "ready?", "by": "local", "ticket": "t1"},
        "p1": {"q": "ready?", "by": "p1"},
        "p2": {"q": "ready?", "by": "p2"},
    }
    assert not result.missing and not result.errors and seen == ["t1"]
    assert decision.outcome == "yes" and sorted(decision.ballots) == ["local", "p1", "p2"]


def test_cancelling_the_task_and_asyncio_timeout_cancel_the_poll(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    slow = agent(peers, "aio", "member", address, "slow", "--slow", "30")

    async def main() -> None:
        async with aio.host(address) as room:
            await ready(slow)
            await room.wait_for_members(1)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await room.poll("never", timeout=25)
            polling = asyncio.create_task(room.poll("never either", timeout=25))
            await asyncio.sleep(0.2)
            polling.cancel()
            with pytest.raises(asyncio.CancelledError):
                await polling
            assert time.monotonic() - started < 10, "the polls were not cancelled at once"
            result = await room.poll("quick?", timeout=0.5)  # the room goes on after both
            assert not result.answers and "slow" in {*result.missing, *result.errors}
            assert room.statistics().polls == 3
            tell(slow, "quit")

    run(main())


def test_a_handler_that_raises_is_reported_as_its_exception(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("ipc")
    child = agent(peers, "aio", "member", address, "far", "--raise")

    async def main() -> Any:
        async def on_poll(question: Any) -> Any:
            await asyncio.sleep(0)
            raise KeyError(f"no answer to {question!r}")

        async with aio.host(address) as room, aio.join(address, name="near", on_poll=on_poll):
            await ready(child)
            await room.wait_for_members(2)
            result = await room.poll("why?", timeout=10)
            tell(child, "quit")
        return result

    result = run(main())
    assert not result.answers
    assert {name: f.type for name, f in result.errors.items()} == {"far": "ValueError", "near": "KeyError"}
    assert "far refuses 'why?'" in result.errors["far"].message


def test_work_sharing_from_asyncio_survives_a_killed_worker(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
    workers = {name: agent(peers, "aio", "worker", address, name) for name in ("w0", "w1", "w2")}
    made = 0
    killed_at: list[int] = []  # how many tasks were made when w1 was killed

    async def tasks() -> AsyncIterator[dict[str, Any]]:  # an asyncio source of tasks
        # From task 40 on, w1 keeps whichever task it gets until it is killed: the kill then
        # always finds it holding one (the dispatcher's in_flight could be a finished task
        # whose result was on its way: then nothing was redelivered). Tasks keep coming
        # until 20 after the kill, so w1 is sure to get one.
        nonlocal made
        while made < (max(200, killed_at[0] + 20) if killed_at else 5000):  # (5000: w1 never held one)
            if made % 20 == 0:
                await asyncio.sleep(0)
            yield {"n": made, "sleep": 0.004, **({"hold": "w1"} if made >= 40 else {})}
            made += 1

    async def kill_w1_when_it_holds(w1: Lines) -> None:
        said = await w1.next()
        assert said.startswith("holding "), said
        workers["w1"].send_signal(signal.SIGKILL)
        killed_at.append(made)

    async def main() -> tuple[list[Any], Any]:
        outcomes: list[Any] = []
        async with aio.Dispatcher(address) as dispatcher:
            readers = await ready(*workers.values())
            await dispatcher.wait_for_workers(3)
            killing = asyncio.create_task(kill_w1_when_it_holds(readers[1]))
            async with dispatcher.distribute(tasks(), lease=30, claim_timeout=1) as stream:
                async for outcome in stream:
                    outcomes.append(outcome)
                stats = stream.statistics()
            assert killing.done() and killed_at, "w1 never held a task"
            await killing
            for name in ("w0", "w2"):
                tell(workers[name], "quit")
        return outcomes, stats

    outcomes, stats = run(main())
    assert sorted(o.task_id for o in outcomes) == list(range(made))
    assert all(o.ok and o.result["n"] == o.task["n"] for o in outcomes)
    assert stats.ok == made and stats.redelivered >= 1
    assert {o.result["by"] for o in outcomes[-20:]} <= {"w0", "w2"}


def test_a_streamed_ask_and_a_plain_ask_on_a_hotline(peers: Peers, address: Callable[[str], str]) -> None:
    where = address("ipc")
    child = agent(peers, "aio", "line", where, "far")

    async def main() -> tuple[list[Any], Any, Any]:
        await ready(child)
        async with aio.hotline(dial=where, name="near") as line:
            await line.wait_connected()
            chunks = [chunk async for chunk in line.ask_stream({"stream": 5}, timeout=10)]
            async with line.ask_stream({"stream": 1000}, timeout=10) as stream:
                async for chunk in stream:  # leaving early ends the streamed ask in trio
                    break
            assert chunk == {"chunk": 0, "by": "far"}
            echo = await line.ask("hello", timeout=10)
            stats = line.statistics()
        tell(child, "quit")
        return chunks, echo, stats

    chunks, echo, stats = run(main())
    assert chunks == [{"chunk": i, "by": "far"} for i in range(5)]
    assert echo == {"echo": "hello", "by": "far"}
    assert stats.asks_open == 0 and stats.asks_answered >= 2


def test_mixed_room_trio_host_asyncio_and_blocking_members(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("tcp")
    host = peers.start(address, script="room_host.py")
    members = [agent(peers, "aio", "member", address, "asyncio"),
               agent(peers, "blocking", "member", address, "plain")]  # fmt: skip

    async def main() -> str:
        host_lines = Lines(host)
        assert await host_lines.next() == "up"
        await ready(*members)

        async def on_poll(question: Any) -> Any:
            await asyncio.sleep(0.01)
            return {"q": question, "by": "here"}

        async with aio.join(address, name="here", on_poll=on_poll) as me:
            tell(host, "members 3")
            assert (await host_lines.next()).startswith("members")
            assert sorted(me.members) == ["asyncio", "here", "plain"]
            tell(host, "poll")
            polled = await host_lines.next()
        for proc in (*members, host):
            tell(proc, "quit")
        return polled

    polled = run(main())
    expected = {name: {"q": "here?", "by": name} for name in ("asyncio", "here", "plain")}
    _, answers, missing = polled.split(" ")
    assert json.loads(answers) == expected and json.loads(missing) == []


def test_several_rooms_from_one_asyncio_program(room_address: Callable[[str], str]) -> None:
    addresses = [room_address("ipc"), room_address("ipc")]

    async def main() -> list[Any]:
        lock = asyncio.Lock()
        calls: list[str] = []

        def member(room: int, n: int) -> Any:
            async def on_poll(question: Any) -> Any:
                async with lock:  # one lock of this loop, shared by the handlers of both rooms
                    calls.append(f"{room}.{n}")
                    await asyncio.sleep(0.001)
                return f"{room}.{n}"

            return aio.join(addresses[room], name=f"m{n}", on_poll=on_poll)

        async with (aio.host(addresses[0]) as first, aio.host(addresses[1]) as second,
                    member(0, 0), member(0, 1), member(1, 0), member(1, 1)):  # fmt: skip
            await asyncio.gather(first.wait_for_members(2), second.wait_for_members(2))
            results = await asyncio.gather(first.poll("q", timeout=10), second.poll("q", timeout=10))
        assert sorted(calls) == ["0.0", "0.1", "1.0", "1.1"]
        return [dict(r.answers) for r in results]

    assert run(main()) == [{"m0": "0.0", "m1": "0.1"}, {"m0": "1.0", "m1": "1.1"}]


def test_the_block_ends_with_room_closed_when_the_host_closes(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")

    async def main() -> float:
        async with aio.host(address) as room:
            with pytest.raises(RoomClosed):
                async with aio.join(address, name="m"):
                    await room.wait_for_members(1)
                    started = time.monotonic()
                    await room.close()
                    await asyncio.sleep(30)  # cancelled when the trio block ends
            return time.monotonic() - started

    assert run(main()) < 10


def test_errors_are_the_consensus_exceptions(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")

    async def main() -> None:
        with pytest.raises(RoomUnavailable):
            async with aio.join(address, name="early", join_timeout=0.3):
                pass
        async with aio.host(address), aio.join(address, name="twin"):
            with pytest.raises(NameTaken):
                async with aio.join(address, name="twin", join_timeout=5):
                    pass

    run(main())


def test_a_handler_past_its_deadline_is_cancelled_on_its_loop(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")

    async def main() -> tuple[Any, list[str]]:
        never, cancelled = asyncio.Event(), asyncio.Event()
        seen: list[str] = []

        async def on_poll(question: Any) -> Any:
            try:
                await never.wait()
            except asyncio.CancelledError:
                seen.append("cancelled")  # the trio deadline reached the asyncio task
                cancelled.set()
                raise

        async with aio.host(address) as room, aio.join(address, name="m", on_poll=on_poll, handler_timeout=0.2):
            await room.wait_for_members(1)
            result = await room.poll("stuck?", timeout=10)
            await cancelled.wait()
        return result, seen

    result, seen = run(main())
    assert result.errors["m"].type == "Timeout" and seen == ["cancelled"]


def test_members_open_a_hotline_by_name_and_ask_across_it(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")

    async def main() -> tuple[Any, list[Any], str]:
        async def on_ask(value: Any) -> Any:
            await asyncio.sleep(0)
            return {"twice": value * 2}

        async with aio.host(address) as room, aio.join(address, name="a") as a, \
                aio.join(address, name="b", on_ask=on_ask) as b:  # fmt: skip
            await room.wait_for_members(2)
            line = await a.hotline("b", timeout=10)
            answer = await line.ask(21, timeout=10)
            async for peer, incoming in b.hotlines():  # the same line, seen from b
                await incoming.send("hello a")
                break
            heard = await line.receive()
        return answer, [type(line).__name__, type(incoming).__name__, peer], heard

    answer, kinds, heard = run(main())
    assert answer == {"twice": 42} and heard == "hello a"
    assert kinds == ["Hotline", "Hotline", "a"]


def _bridge_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("consensus-bridge"))


def test_objects_share_one_trio_thread_and_one_failing_leaves_the_others(
    room_address: Callable[[str], str],
) -> None:
    address = room_address("ipc")

    async def main() -> tuple[list[str], Any]:
        async def on_poll(question: Any) -> Any:
            return question

        async with aio.host(address) as room, aio.join(address, name="a", on_poll=on_poll), \
                aio.join(address, name="b", on_poll=on_poll):  # fmt: skip
            threads = _bridge_threads()
            await room.wait_for_members(2)
            with pytest.raises(NameTaken):  # fails in the shared thread: the others go on
                async with aio.join(address, name="a", join_timeout=5):
                    pass
            result = await room.poll("still here?", timeout=10)
        return threads, result

    for _ in range(2):  # asyncio.run twice in one process: a fresh thread each time, none left after
        threads, result = run(main())
        assert threads == ["consensus-bridge aio"]
        assert dict(result.answers) == {"a": "still here?", "b": "still here?"}


def test_cancelling_an_opening_stops_it_alone(room_address: Callable[[str], str]) -> None:
    address, nowhere = room_address("ipc"), room_address("ipc")

    async def main() -> Any:
        async def on_poll(question: Any) -> Any:
            return question

        async with aio.host(address) as room:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):  # no host there: the opening waits, then is cancelled
                    async with aio.join(nowhere, name="lost", join_timeout=30):
                        pass
            async with aio.join(address, name="m", on_poll=on_poll):
                await room.wait_for_members(1)
                return await room.poll("after?", timeout=10)

    assert dict(run(main()).answers) == {"m": "after?"}
