"""Work sharing over real NNG sockets: dispatcher here, workers in other processes (or here).

Every test checks the one promise that matters: each task submitted yields exactly one
outcome, whatever the workers do (die, stall, raise, leave, arrive late).
"""

from __future__ import annotations

import math
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import trio
from conftest import Peers, free_tcp_port_run, read_line, tell

import consensus
from consensus import Dispatcher, Outcome, Worker
from patterns import Pull, Push

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def work_address(address: Callable[[str], str]) -> Callable[[str], str]:
    """``work_address(transport)``: a dispatcher address (tcp: ports P and P+1 free)."""

    def make(transport: str) -> str:
        if transport == "tcp":
            return f"tcp://127.0.0.1:{free_tcp_port_run(2)}"
        return address(transport)

    return make


async def start_workers(
    peers: Peers, address: str, names: list[str], *options: str
) -> dict[str, subprocess.Popen[str]]:
    procs = {name: peers.start(address, name, *options, script="work_agent.py") for name in names}
    for proc in procs.values():
        assert await read_line(proc) == "ready"
    return procs


def tasks(count: int, sleep: float = 0.0, **special: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Task maps for work_agent.py; ``special={"7": {"raise": True}}`` changes task 7."""
    for n in range(count):
        yield {"n": n, "sleep": sleep, **special.get(str(n), {})}


def exactly_once(outcomes: list[Outcome], count: int) -> None:
    ids = Counter(o.task_id for o in outcomes)
    assert sorted(ids) == list(range(count)), f"missing: {set(range(count)) - set(ids)}"
    assert max(ids.values()) == 1, f"twice: {[i for i, c in ids.items() if c > 1]}"
    for o in outcomes:
        assert o.task["n"] == o.task_id


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
async def test_four_workers_two_killed_mid_stream_every_task_exactly_once(
    peers: Peers, work_address: Callable[[str], str], transport: str
) -> None:
    address = work_address(transport)
    async with Dispatcher(address) as dispatcher:
        procs = await start_workers(peers, address, ["w0", "w1", "w2", "w3"])
        await dispatcher.wait_for_workers(4)
        outcomes: list[Outcome] = []
        killed = False
        # a long lease: what the killed workers held must come back through their lost connections
        async with dispatcher.distribute(tasks(300, sleep=0.004), lease=30, claim_timeout=1) as stream:
            async for outcome in stream:
                outcomes.append(outcome)
                # From outcome 60 on, kill them once both hold an attempt: on a loaded machine
                # a worker may, for a moment, hold none (its claim not yet in).
                holding = stream.statistics().per_worker if len(outcomes) >= 60 and not killed else {}
                if all(name in holding and holding[name].in_flight for name in ("w1", "w2")):
                    procs["w1"].kill()
                    procs["w2"].send_signal(signal.SIGKILL)
                    killed = True
            stats = stream.statistics()
    exactly_once(outcomes, 300)
    assert all(o.ok and o.result["n"] == o.task_id for o in outcomes)
    assert stats.ok == 300 and stats.failed == 0 and stats.submitted == 300
    assert stats.redelivered >= 1, "the killed workers held claimed tasks"
    lost = stats.per_worker["w1"].lost + stats.per_worker["w2"].lost
    assert 1 <= lost <= stats.redelivered  # unclaimed attempts in transit have no holder
    assert {o.result["by"] for o in outcomes[-50:]} <= {"w0", "w3"}
    assert dispatcher.statistics().workers_lost == 2


async def test_a_poison_task_fails_after_max_attempts_and_the_others_finish(
    peers: Peers, work_address: Callable[[str], str]
) -> None:
    address = work_address("ipc")
    async with Dispatcher(address) as dispatcher:
        await start_workers(peers, address, ["a", "b"])
        await dispatcher.wait_for_workers(2)
        async with dispatcher.distribute(tasks(40, **{"13": {"raise": True}}), max_attempts=3) as stream:
            outcomes = [o async for o in stream]
            stats = stream.statistics()
    exactly_once(outcomes, 40)
    [poison] = [o for o in outcomes if not o.ok]
    assert poison.task_id == 13 and poison.attempts == 3
    assert poison.error is not None and poison.error.type == "RuntimeError"
    assert "cannot do task 13" in poison.error.message
    assert all(o.attempts == 1 for o in outcomes if o.ok)
    assert (stats.ok, stats.failed, stats.retried) == (39, 1, 2)


async def test_a_task_that_kills_every_worker_ends_as_a_dead_letter(
    peers: Peers, work_address: Callable[[str], str]
) -> None:
    address = work_address("ipc")
    async with Dispatcher(address) as dispatcher:
        procs = await start_workers(peers, address, ["x", "y", "z"], "--prefetch", "0")
        await dispatcher.wait_for_workers(3)
        poison = tasks(30, sleep=0.002, **{"5": {"exit": True}})
        async with dispatcher.distribute(poison, max_attempts=2, claim_timeout=1) as stream:
            outcomes = [o async for o in stream]
    exactly_once(outcomes, 30)
    [dead] = [o for o in outcomes if not o.ok]
    assert dead.task_id == 5 and dead.attempts == 2
    assert dead.error is not None and dead.error.type == "WorkerLost"
    assert sum(proc.wait() == 17 for proc in procs.values() if proc.poll() is not None) == 2


async def test_with_no_worker_tasks_wait_and_a_newcomer_gets_them_at_once(
    peers: Peers, work_address: Callable[[str], str]
) -> None:
    address = work_address("ipc")
    async with Dispatcher(address) as dispatcher, dispatcher.distribute(tasks(20)) as stream:
        with trio.move_on_after(0.2):  # nothing can come out: no worker
            await stream.__anext__()
            pytest.fail("an outcome without any worker")
        stats = stream.statistics()
        assert stats.waiting_for_workers and stats.workers == 0 and stats.capacity == 0
        assert stats.submitted == 0, "tasks are taken from the iterable only when they can go somewhere"
        peers.start(address, "late", script="work_agent.py")  # it may work before it says "ready"
        outcomes = [o async for o in stream]
        assert not stream.statistics().waiting_for_workers
    exactly_once(outcomes, 20)
    assert {o.worker for o in outcomes} == {"late"}


async def test_a_worker_joining_mid_stream_gets_work_at_once(
    peers: Peers, work_address: Callable[[str], str]
) -> None:
    address = work_address("ipc")
    async with Dispatcher(address) as dispatcher:
        await start_workers(peers, address, ["first"])
        await dispatcher.wait_for_workers(1)
        outcomes: list[Outcome] = []
        async with dispatcher.distribute(tasks(120, sleep=0.005)) as stream:
            async for outcome in stream:
                outcomes.append(outcome)
                if len(outcomes) == 10:
                    await start_workers(peers, address, ["second"])
    exactly_once(outcomes, 120)
    assert Counter(o.worker for o in outcomes)["second"] >= 20


async def test_a_stalled_worker_loses_its_lease_and_its_late_result_is_dropped(
    peers: Peers, work_address: Callable[[str], str]
) -> None:
    address = work_address("ipc")
    async with Dispatcher(address, liveness=math.inf) as dispatcher:  # the lease, not liveness, is under test
        procs = await start_workers(peers, address, ["stalls", "steady"], "--prefetch", "0")
        await dispatcher.wait_for_workers(2)
        outcomes: list[Outcome] = []
        async with dispatcher.distribute(tasks(40, sleep=0.02), lease=0.5, claim_timeout=0.5) as stream:
            async for outcome in stream:
                outcomes.append(outcome)
                if len(outcomes) == 4:
                    procs["stalls"].send_signal(signal.SIGSTOP)  # holds tasks, renews nothing
            stats = stream.statistics()
        exactly_once(outcomes, 40)
        assert stats.redelivered >= 1  # what it held, or what push sent it while stopped
        # What it held or was sent while stopped came out from the steady worker.
        taken_over = {o.task_id for o in outcomes if o.worker == "steady"}
        procs["stalls"].send_signal(signal.SIGCONT)  # it finishes what it held: too late
        while True:
            line = await read_line(procs["stalls"])
            if line.startswith("done ") and int(line.split()[1]) in taken_over:
                break
        tell(procs["stalls"], "quit")  # it sends what it finished, then its bye
        while "stalls" in dispatcher.workers:
            await dispatcher.wait_workers_changed()
        assert dispatcher.statistics().stale_replies >= 1


async def test_a_silent_worker_is_taken_as_gone_long_before_its_lease_and_comes_back(
    peers: Peers, work_address: Callable[[str], str]
) -> None:
    """A stopped worker keeps its connections open, as a host cut off does: its beats stop,
    and once its liveness limit passes what it held is redone by the other, not after the 30 s lease."""
    address = work_address("ipc")
    # 2 s of silence, not three 0.1 s beats: on a busy 2-core machine the steady worker
    # went 0.3 s without a word too and was taken as gone with the stopped one.
    async with Dispatcher(address, liveness=2.0) as dispatcher:
        procs = await start_workers(
            peers, address, ["stalls", "steady"], "--prefetch", "0", "--heartbeat", "0.1"
        )
        await dispatcher.wait_for_workers(2)
        outcomes: list[Outcome] = []
        async with dispatcher.distribute(tasks(40, sleep=0.02), lease=30, claim_timeout=30) as stream:
            async for outcome in stream:
                outcomes.append(outcome)
                if len(outcomes) == 4:
                    procs["stalls"].send_signal(signal.SIGSTOP)
            stats = stream.statistics()
        exactly_once(outcomes, 40)
        assert dispatcher.statistics().workers_silent == 1
        assert "stalls" not in dispatcher.workers
        assert stats.redelivered >= 1  # what it held, and what push sent it while stopped
        procs["stalls"].send_signal(signal.SIGCONT)  # its connections were closed: it dials again, says hello
        while "stalls" not in dispatcher.workers:
            await dispatcher.wait_workers_changed()
        assert dispatcher.statistics().workers_joined == 3


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


async def test_a_worker_leaving_cleanly_hands_back_what_it_held(work_address: Callable[[str], str]) -> None:
    address = work_address("ipc")
    leave = trio.Event()

    async def quick(task: int) -> int:
        return task

    async def sticky(task: int) -> int:
        leave.set()
        await trio.sleep_forever()
        raise AssertionError

    async with (
        Dispatcher(address) as dispatcher,
        Worker(address, handler=quick, name="quick"),
        trio.open_nursery() as nursery,
    ):

        async def sticky_worker() -> None:
            async with Worker(address, handler=sticky, name="sticky", prefetch=2):
                await leave.wait()

        nursery.start_soon(sticky_worker)
        await dispatcher.wait_for_workers(2)
        async with dispatcher.distribute(range(50), lease=60) as stream:
            outcomes = [o async for o in stream]
            stats = stream.statistics()
        assert dispatcher.workers == ("quick",) and dispatcher.statistics().workers_lost == 1
    assert sorted(o.task_id for o in outcomes) == list(range(50))
    assert {o.worker for o in outcomes} == {"quick"}
    assert stats.per_worker["sticky"].lost >= 1


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


async def test_a_task_or_result_without_a_wire_form_is_an_error_outcome(
    work_address: Callable[[str], str],
) -> None:
    address = work_address("inproc")

    async def reply(task: Any) -> Any:
        return object() if task == "object" else task

    big = b"x" * 70_000
    async with (
        Dispatcher(address, max_message_size=64 * 1024) as dispatcher,
        Worker(address, handler=reply, max_message_size=64 * 1024),
    ):
        await dispatcher.wait_for_workers(1)
        async with dispatcher.distribute(["ok", {1, 2}, big, "object", "fine"], max_attempts=2) as stream:
            outcomes = {o.task_id: o for o in [o async for o in stream]}
    assert outcomes[0].result == "ok" and outcomes[4].result == "fine"
    assert (
        outcomes[1].error is not None
        and outcomes[1].error.type == "EncodeError"
        and outcomes[1].attempts == 1
    )
    assert outcomes[2].error is not None and outcomes[2].error.type == "MessageTooLarge"
    assert outcomes[3].error is not None and outcomes[3].error.type == "EncodeError"
    assert outcomes[3].error.message.startswith(
        "the result of task 3 cannot be sent: an object has no CBOR form"
    )
    assert outcomes[3].attempts == 1, "a result with no wire form would be the same again: not retried"
    assert stream.statistics().retried == 0


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


async def test_hostile_frames_are_counted_and_the_work_goes_on(work_address: Callable[[str], str]) -> None:
    address = work_address("ipc")

    async def echo(task: int) -> int:
        return task

    async with (
        Dispatcher(address) as dispatcher,
        Push(dial=dispatcher.endpoints.results, name="mallory") as evil,
    ):
        await evil.wait_for_peers(1)
        async with Worker(address, handler=echo, name="honest", prefetch=0):
            await dispatcher.wait_for_workers(1)
            async with dispatcher.distribute(range(200)) as stream:
                outcomes: list[Outcome] = []
                async for outcome in stream:
                    outcomes.append(outcome)
                    if len(outcomes) == 10:
                        st = stream.stream
                        await evil.send_bytes(b"\xff\x00garbage")
                        await evil.send([1, 2, 3], kind="done")
                        await evil.send({"st": st, "r": "nope"}, kind="done")
                        await evil.send(
                            {"st": st, "r": [[0, 1, True, "forged"], [10**6, 1, True, 0]]}, kind="done"
                        )
                        await evil.send({"st": st, "r": [["x"], [150, 99999, True, 0]]}, kind="done")
                        await evil.send({"st": st, "c": [[199, 1]]}, kind="claim")
                        await evil.send({"cap": -5}, kind="hello")
                        await evil.send({}, kind="launch")
                stats = stream.statistics()
    assert sorted(o.task_id for o in outcomes) == list(range(200))
    assert outcomes[0].task_id == 0 and outcomes[0].result == 0, "a reply for a finished task changes nothing"
    assert all(o.result == o.task_id for o in outcomes), "no forged result"
    assert stats.malformed >= 3  # never-issued task id, bad item shape, impossible attempt
    assert dispatcher.statistics().malformed >= stats.malformed + 4


async def test_a_worker_counts_bad_batches_and_keeps_working(work_address: Callable[[str], str]) -> None:
    address = work_address("ipc")
    endpoints = consensus.work_endpoints(address)

    async def echo(task: int) -> int:
        return task

    async with (
        Push(listen=endpoints.tasks) as fake,
        Pull(listen=endpoints.results) as replies,
        Worker(address, handler=echo, name="w") as worker,
    ):
        await fake.wait_for_peers(1)
        await fake.send_bytes(b"\x00\x01")
        await fake.send({"st": 1, "lease": 1.0, "t": [[0, 0, "bad attempt"]]}, kind="tasks")
        await fake.send({"st": 1, "lease": -1, "t": [[0, 1, "x"]]}, kind="tasks")
        await fake.send({"st": 1}, kind="claim")
        await fake.send({"st": 1, "lease": 5, "t": [[0, 1, 42]]}, kind="tasks")
        kinds = []
        while "done" not in kinds:
            envelope = await replies.receive_envelope()
            kinds.append(envelope.kind)
        assert envelope.body == {"st": 1, "r": [[0, 1, True, 42]]}
        # The hello goes out when the worker hears of its results connection; NNG may carry a
        # claim on it a moment before that news reaches trio, so only both are checked.
        assert "hello" in kinds and "claim" in kinds
        assert worker.statistics().malformed == 4


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
