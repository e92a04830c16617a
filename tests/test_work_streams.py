"""Work sharing over real NNG sockets, how a distribution streams: cancelling the consumer,
ordered mode, bounded memory, batch sizes, concurrent distributions, failing and async
iterables of tasks, and room members doing the work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import trio
from _work_cases import tasks
from conftest import Peers, read_line, tell

import consensus
from consensus import Dispatcher, Worker
from patterns import Pull, Push

pytestmark = pytest.mark.timeout(90)


async def test_cancelling_the_consumer_reports_what_was_in_flight(work_address: Callable[[str], str]) -> None:
    address = work_address("ipc")
    release = trio.Event()

    async def slow(task: int) -> int:
        if task > 0:
            await release.wait()
        return task

    async with (
        Dispatcher(address) as dispatcher,
        Worker(address, handler=slow, name="w", concurrency=4, prefetch=0),
    ):
        await dispatcher.wait_for_workers(1)
        async with dispatcher.distribute(range(100)) as stream:
            first = await stream.__anext__()
        report = stream.cancelled
        assert report is not None and first.task_id == 0
        assert {1, 2, 3} <= set(report.in_flight) <= {1, 2, 3, 4}
        assert first.task_id not in report.queued and not set(report.in_flight) & set(report.queued)
        assert stream.statistics().cancelled == len(report.in_flight) + len(report.queued)
        assert dispatcher.statistics().distributions == 0
        release.set()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()


async def test_ordered_mode_yields_in_submission_order(work_address: Callable[[str], str]) -> None:
    address = work_address("inproc")

    async def jittery(task: int) -> int:
        await trio.sleep((task * 7919 % 13) / 1000)
        return task * task

    async with (
        Dispatcher(address) as dispatcher,
        Worker(address, handler=jittery, concurrency=4),
        Worker(address, handler=jittery, concurrency=3),
    ):
        await dispatcher.wait_for_workers(2)
        async with dispatcher.distribute(range(200), ordered=True) as stream:
            results = [(o.task_id, o.result) async for o in stream]
    assert results == [(n, n * n) for n in range(200)]


async def test_memory_stays_bounded_while_streaming(work_address: Callable[[str], str]) -> None:
    address = work_address("inproc")
    peak = 0
    stream: consensus.Distribution

    def source() -> Iterator[int]:
        nonlocal peak
        for n in range(30_000):
            s = stream.statistics()
            peak = max(peak, s.submitted - s.yielded)
            yield n

    async def echo(task: int) -> int:
        return task

    async with Dispatcher(address) as dispatcher, Worker(address, handler=echo, prefetch=15):
        await dispatcher.wait_for_workers(1)
        count = 0
        async with dispatcher.distribute(source()) as stream:
            async for _ in stream:
                count += 1
    assert count == 30_000
    assert peak <= 2 * 16 + 1, f"{peak} tasks held at once for a capacity of 16"


async def test_a_batch_holds_up_to_256_tasks_by_default(work_address: Callable[[str], str]) -> None:
    address = work_address("ipc")
    endpoints = consensus.work_endpoints(address)
    async with (
        Dispatcher(address) as dispatcher,
        Pull(dial=endpoints.tasks, name="fake") as incoming,
        Push(dial=endpoints.results, name="fake") as replies,
    ):
        await replies.wait_for_peers(1)
        await incoming.wait_for_peers(1)
        await replies.send({"cap": 1000}, kind="hello")
        await dispatcher.wait_for_workers(1)
        async with dispatcher.distribute(range(600)) as stream:
            first = await incoming.receive_envelope()
            second = await incoming.receive_envelope()
        assert stream.cancelled is not None
    assert [len(first.body["t"]), len(second.body["t"])] == [256, 256]


async def test_concurrent_distributions_share_the_workers(work_address: Callable[[str], str]) -> None:
    address = work_address("inproc")
    high = 0
    running = 0

    async def count(task: tuple[str, int]) -> str:
        nonlocal running, high
        running += 1
        high = max(high, running)
        await trio.sleep(0.001)
        running -= 1
        return f"{task[0]}{task[1]}"

    async with Dispatcher(address) as dispatcher, Worker(address, handler=count, concurrency=3, prefetch=0):
        await dispatcher.wait_for_workers(1)
        results: dict[str, list[str]] = {}

        async def run(label: str) -> None:
            async with dispatcher.distribute([(label, n) for n in range(60)]) as stream:
                results[label] = [o.result async for o in stream]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a")
            nursery.start_soon(run, "b")
    assert sorted(results["a"]) == sorted(f"a{n}" for n in range(60))
    assert sorted(results["b"]) == sorted(f"b{n}" for n in range(60))
    assert high <= 3


async def test_the_iterable_failing_finishes_what_it_gave_then_raises(
    work_address: Callable[[str], str],
) -> None:
    address = work_address("inproc")

    def source() -> Iterator[int]:
        yield from range(5)
        raise KeyError("the source broke")

    async def echo(task: int) -> int:
        return task

    async with Dispatcher(address) as dispatcher, Worker(address, handler=echo):
        await dispatcher.wait_for_workers(1)
        seen: list[int] = []
        with pytest.raises(KeyError, match="the source broke"):
            async with dispatcher.distribute(source()) as stream:
                async for outcome in stream:
                    seen.append(outcome.task_id)
    assert sorted(seen) == [0, 1, 2, 3, 4]


async def test_an_async_iterable_of_tasks(work_address: Callable[[str], str]) -> None:
    address = work_address("inproc")

    async def source() -> AsyncIterator[int]:
        for n in range(30):
            await trio.lowlevel.checkpoint()
            yield n

    def plain(task: int) -> int:  # a plain handler runs in a thread
        return -task

    async with Dispatcher(address) as dispatcher, Worker(address, handler=plain, concurrency=2):
        await dispatcher.wait_for_workers(1)
        async with dispatcher.distribute(source()) as stream:
            results = sorted([o.result async for o in stream])
    assert results == sorted(-n for n in range(30))


async def test_room_members_with_on_task_do_the_work(
    peers: Peers, room_address: Callable[[str], str]
) -> None:
    address = room_address("tcp")
    async with consensus.host(address) as room:
        for name in ("ann", "bob"):
            proc = peers.start(address, name, "--room", script="work_agent.py")
            assert await read_line(proc) == "ready"
        sync_proc = peers.start(address, "cy", "--room", "--sync", script="work_agent.py")
        assert await read_line(sync_proc) == "ready"
        assert await room.wait_for_workers(3) == ("ann", "bob", "cy")
        async with room.distribute(tasks(60, sleep=0.002), ordered=True) as stream:
            outcomes = [o async for o in stream]
        assert [o.task_id for o in outcomes] == list(range(60))
        assert {o.result["by"] for o in outcomes} == {"ann", "bob", "cy"}
        assert room.work_statistics().workers == {"ann": 2, "bob": 2, "cy": 2}
        tell(sync_proc, "quit")
        assert await room.wait_workers_changed() == ("ann", "bob")
