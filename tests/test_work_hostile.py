"""Work sharing over real NNG sockets with what cannot or should not be carried: a task or
result without a wire form, hostile frames at the dispatcher, bad batches at a worker;
each is counted and the work goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import consensus
from consensus import Dispatcher, Outcome, Worker
from patterns import Pull, Push

pytestmark = pytest.mark.timeout(90)


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
