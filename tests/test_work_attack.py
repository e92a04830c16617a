"""Work sharing with a secret against a stranger in another process (tests/work_attacker.py:
raw pynng, no secret), and a killed worker with a secret.

The attack of issue 13: a hello announcing 1,000,000 tasks and forged ``done`` frames with
sequential ids. With a secret it changes nothing: the stranger holds no capacity, the
dispatcher reads from a 1,000,000-task iterator only what the real worker can hold, no
forged result gets in, every frame of the stranger is counted as unauthenticated, and the
stranger's task connection is closed.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio
from conftest import Peers, free_tcp_port_run, read_line, tell

import consensus
from consensus import Dispatcher, Outcome

pytestmark = pytest.mark.timeout(90)

SECRET = "a secret for the work tests"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNGC_SECRET", SECRET)  # the workers read it there, never on a command line


async def start_workers(
    peers: Peers, address: str, names: list[str], *options: str
) -> dict[str, subprocess.Popen[str]]:
    procs = {
        name: peers.start(address, name, "--secret-env", *options, script="work_agent.py") for name in names
    }
    for proc in procs.values():
        assert await read_line(proc) == "ready"
    return procs


def exactly_once(outcomes: list[Outcome], count: int) -> None:
    ids = Counter(o.task_id for o in outcomes)
    assert sorted(ids) == list(range(count)) and max(ids.values()) == 1


@pytest.mark.usefixtures("secret_env")
async def test_a_stranger_gets_no_capacity_no_task_and_no_result_in(peers: Peers) -> None:
    address = f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
    taken = 0

    def million() -> Iterator[dict[str, Any]]:
        nonlocal taken
        for n in range(1_000_000):
            taken += 1
            yield {"n": n, "sleep": 0.002}

    with trio.fail_after(60):
        async with Dispatcher(address, secret=SECRET) as dispatcher:
            await start_workers(peers, address, ["honest"], "--concurrency", "2")
            await dispatcher.wait_for_workers(1)
            distribution = dispatcher.distribute(million(), claim_timeout=2)
            endpoints = dispatcher.endpoints
            attacker = peers.start(endpoints.tasks, endpoints.results, str(distribution.stream), "300",
                                   script="work_attacker.py")  # fmt: skip
            assert await read_line(attacker) == "hello"
            # Its tasks connection is held, then closed (0.5 s); its redials are turned away
            # before they carry anything.
            while dispatcher.statistics().task_connections_closed < 1:
                await trio.sleep(0.02)
            async with distribution as stream:
                outcomes: list[Outcome] = []
                async for outcome in stream:
                    outcomes.append(outcome)
                    if len(outcomes) == 20:
                        tell(attacker, "go")  # forged results while tasks are in flight
                    if len(outcomes) == 400:
                        break
                assert (await read_line(attacker)).startswith("sent ")
                while dispatcher.statistics().unauthenticated < 302:  # every frame it sent, refused
                    await trio.sleep(0.02)
                stats = dispatcher.statistics()
            assert attacker.stdin is not None
            attacker.stdin.close()
            received = await read_line(attacker)
    assert all(o.ok and o.result["by"] == "honest" for o in outcomes), "a forged result got in"
    assert sorted(o.task_id for o in outcomes) == sorted({o.task_id for o in outcomes})
    assert received == "received 0", f"the stranger was handed a batch: {received}"
    assert dict(stats.workers) == {"honest": 4} and stats.capacity == 4, stats
    assert stats.unauthenticated >= 302 and stats.capped == 0
    assert taken < 500, f"the dispatcher read {taken} tasks for a capacity of 4"


@pytest.mark.usefixtures("secret_env")
async def test_a_killed_workers_tasks_are_redone_once_with_a_secret(peers: Peers) -> None:
    address = f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
    with trio.fail_after(60):
        async with Dispatcher(address, secret=SECRET) as dispatcher:
            procs = await start_workers(peers, address, ["w0", "w1", "w2"])
            await dispatcher.wait_for_workers(3)
            outcomes: list[Outcome] = []
            killed = False
            work = ({"n": n, "sleep": 0.01} for n in range(200))
            async with dispatcher.distribute(work, lease=30, claim_timeout=1) as stream:
                async for outcome in stream:
                    outcomes.append(outcome)
                    holding = stream.statistics().per_worker if len(outcomes) >= 40 and not killed else {}
                    if "w1" in holding and holding["w1"].in_flight:
                        procs["w1"].send_signal(signal.SIGKILL)
                        killed = True
                stats = stream.statistics()
    exactly_once(outcomes, 200)
    assert all(o.ok and o.result["n"] == o.task_id for o in outcomes)
    # w1's results in transit may beat the kill: what it held may all have been finished
    assert stats.redelivered >= 1 and stats.per_worker["w1"].lost <= stats.redelivered
    assert {o.result["by"] for o in outcomes[-30:]} <= {"w0", "w2"}
    assert dispatcher.statistics().workers_lost == 1 and dispatcher.statistics().unauthenticated == 0


@pytest.mark.usefixtures("secret_env")
async def test_a_worker_with_another_secret_gets_nothing(
    peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
    with trio.fail_after(60):
        async with Dispatcher(address, secret=SECRET) as dispatcher:
            await start_workers(peers, address, ["good"])
            monkeypatch.setenv("NNGC_SECRET", "another secret")
            await start_workers(peers, address, ["wrong"])
            await dispatcher.wait_for_workers(1)
            async with dispatcher.distribute({"n": n} for n in range(100)) as stream:
                outcomes = [o async for o in stream]
            while dispatcher.statistics().unauthenticated < 1:  # its hello, at least
                await trio.sleep(0.02)
            stats = dispatcher.statistics()
    exactly_once(outcomes, 100)
    assert {o.result["by"] for o in outcomes} == {"good"} and tuple(stats.workers) == ("good",)


@pytest.mark.usefixtures("secret_env")
async def test_room_members_with_a_secret_do_the_work(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("tcp")
    with trio.fail_after(60):
        async with consensus.host(address, secret=SECRET, max_capacity=3) as room:
            for name in ("ann", "bob"):
                proc = peers.start(
                    address, name, "--room", "--secret-env", "--prefetch", "4", script="work_agent.py"
                )
                assert await read_line(proc) == "ready"
            assert await room.wait_for_workers(2) == ("ann", "bob")
            async with room.distribute(({"n": n, "sleep": 0.002} for n in range(60)), ordered=True) as stream:
                outcomes = [o async for o in stream]
            stats = room.work_statistics()
    assert [o.task_id for o in outcomes] == list(range(60))
    assert {o.result["by"] for o in outcomes} == {"ann", "bob"}
    assert stats.workers == {"ann": 3, "bob": 3} and stats.capped >= 2 and stats.unauthenticated == 0, stats
