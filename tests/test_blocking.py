"""consensus.blocking with real processes: plain scripts host, dispatch and ask.

Plain test functions (no trio, no asyncio), each under pytest-timeout; each ends by
checking that no bridge thread outlived its ``with``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio
from _bridge import agent, assert_no_bridge_threads, wait_ready
from conftest import Peers, free_tcp_port_run, tell

from consensus import RoomClosed, Timeout, blocking
from consensus.bridge.shared import lease
from patterns import Closed

pytestmark = pytest.mark.timeout(120)


def test_poll_and_vote_from_a_plain_script(peers: Peers, room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    children = [agent(peers, "blocking", "member", address, "plain"),
                agent(peers, "aio", "member", address, "asyncio"),
                agent(peers, "blocking", "member", address, "grumpy", "--raise")]  # fmt: skip
    with blocking.host(address) as room:
        for child in children:
            wait_ready(child)
        assert sorted(room.wait_for_members(3)) == ["asyncio", "grumpy", "plain"]
        result = room.poll("ready?", timeout=10)
        decision = room.vote("ship it?", options=["yes", "no"], timeout=10)
        assert room.statistics().polls == 1
        for child in children:
            tell(child, "quit")
    assert dict(result.answers) == {name: {"q": "ready?", "by": name} for name in ("asyncio", "plain")}
    assert result.errors["grumpy"].type == "ValueError"
    assert decision.outcome == "yes"
    assert room.statistics().votes == 1  # still answers after the block, from this thread
    assert_no_bridge_threads()


def test_work_sharing_from_a_plain_script_survives_a_killed_worker(peers: Peers) -> None:
    address = f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
    workers = {name: agent(peers, "blocking", "worker", address, name) for name in ("w0", "w1", "w2")}

    def tasks(count: int) -> Iterator[dict[str, Any]]:
        for n in range(count):
            yield {"n": n, "sleep": 0.004}

    outcomes = []
    with blocking.Dispatcher(address) as dispatcher:
        for proc in workers.values():
            wait_ready(proc)
        dispatcher.wait_for_workers(3)
        killed = False
        with dispatcher.distribute(tasks(200), lease=30, claim_timeout=1) as stream:
            for outcome in stream:
                outcomes.append(outcome)
                holding = stream.statistics().per_worker if len(outcomes) >= 40 and not killed else {}
                if "w1" in holding and holding["w1"].in_flight:
                    workers["w1"].send_signal(signal.SIGKILL)
                    killed = True
            stats = stream.statistics()
        for name in ("w0", "w2"):
            tell(workers[name], "quit")
    assert killed, "w1 never held a task once 40 outcomes were in"
    assert sorted(o.task_id for o in outcomes) == list(range(200))
    assert all(o.ok and o.result["n"] == o.task["n"] for o in outcomes)
    assert stats.ok == 200 and stats.redelivered >= 1
    assert_no_bridge_threads()


def test_asks_and_a_streamed_ask_from_a_plain_script(peers: Peers, address: Callable[[str], str]) -> None:
    where = address("ipc")
    child = agent(peers, "aio", "line", where, "far")
    wait_ready(child)
    with blocking.hotline(dial=where, name="near") as line:
        line.wait_connected()
        assert line.ask("hello", timeout=10) == {"echo": "hello", "by": "far"}
        chunks = list(line.ask_stream({"stream": 4}, timeout=10))
        assert line.statistics().asks_answered == 2
    tell(child, "quit")
    assert chunks == [{"chunk": i, "by": "far"} for i in range(4)]
    assert_no_bridge_threads()


def test_a_plain_handler_answers_asks_and_timeouts_are_the_consensus_timeout(
    address: Callable[[str], str],
) -> None:
    where = address("ipc")

    def on_ask(value: Any) -> Any:
        return {"twice": value * 2}

    with blocking.hotline(listen=where, on_ask=on_ask), blocking.hotline(dial=where) as line:
        line.wait_connected()
        assert line.ask(21, timeout=10) == {"twice": 42}
    with blocking.hotline(dial=address("ipc")) as lonely, pytest.raises(Timeout):
        lonely.ask("anyone?", timeout=0.2)
    assert_no_bridge_threads()


def test_the_with_ends_with_room_closed_when_the_host_closes(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    with blocking.host(address) as room, pytest.raises(RoomClosed), blocking.join(address, name="m") as me:
        room.wait_for_members(1)
        room.close()
        for _ in me.messages():  # ends when the room is gone
            pass
    assert_no_bridge_threads()


def test_coroutine_handlers_are_refused_with_a_pointer_to_aio(room_address: Callable[[str], str]) -> None:
    async def on_poll(question: Any) -> Any:
        return question

    with pytest.raises(TypeError, match="consensus.aio"):
        blocking.join(room_address("ipc"), name="m", on_poll=on_poll)


def test_asks_answered_by_hand_and_values_both_ways(address: Callable[[str], str]) -> None:
    where = address("ipc")
    answers: list[Any] = []
    with blocking.hotline(listen=where, name="by-hand") as server, blocking.hotline(dial=where) as client:
        client.wait_connected()
        asker = threading.Thread(target=lambda: answers.append(client.ask("question", timeout=10)))
        asker.start()
        incoming = server.receive_ask()
        assert incoming.value == "question" and not incoming.stream
        incoming.reply({"answer": incoming.value.upper()})
        asker.join(timeout=10)
        client.send(1)
        client.send(2)
        values = [server.receive(), server.receive()]
    assert answers == [{"answer": "QUESTION"}] and values == [1, 2]
    assert_no_bridge_threads()


def test_objects_share_one_trio_thread_also_from_several_threads(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")
    results: list[Any] = []

    def member(name: str, joined: threading.Barrier) -> None:
        try:
            with blocking.join(address, name=name, on_poll=lambda q: f"{name}:{q}") as me:
                joined.wait()
                results.extend(me.decisions())  # until the room closes
        except RoomClosed:
            results.append(f"{name} saw the room close")

    with blocking.host(address) as room:
        joined = threading.Barrier(3)
        threads = [threading.Thread(target=member, args=(n, joined)) for n in ("a", "b")]
        for t in threads:
            t.start()
        joined.wait(timeout=30)
        names = sorted(t.name for t in threading.enumerate() if t.name.startswith("consensus-bridge"))
        room.wait_for_members(2)
        poll = room.poll("q", timeout=10)
        room.close()
        for t in threads:
            t.join(timeout=30)
    assert names == ["consensus-bridge blocking"]
    assert dict(poll.answers) == {"a": "a:q", "b": "b:q"}
    assert sorted(results) == ["a saw the room close", "b saw the room close"]
    assert_no_bridge_threads()


def test_a_call_raising_system_exit_ends_alone_in_the_shared_thread() -> None:
    first, second = lease("blocking", "first"), lease("blocking", "second")

    async def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        first.call(leave)
    assert second.call(trio.sleep, 0) is None  # the thread the two share goes on
    first.release()
    with pytest.raises(Closed, match="first is closed"):
        first.call(trio.sleep, 0)
    assert second.call(trio.sleep, 0) is None
    second.release()  # the last one: the thread ends
    assert_no_bridge_threads()
