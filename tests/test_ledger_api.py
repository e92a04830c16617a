"""The ledger's surface (``consensus.work.ledger``): constructor and call errors that name the
input and the state (and change nothing), and an outcome built slot by slot equal to the
dataclass's.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus.work.ledger import Failure, Outcome, TaskLedger
from consensus.work.task import success


def make(**kw: Any) -> TaskLedger:
    return TaskLedger(**{"lease": 1.0, "max_attempts": 2, "window": 1, **kw})


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"lease": 0}, ValueError, "lease must be a finite number of seconds > 0, got 0"),
        ({"lease": math.inf}, ValueError, "lease"),
        ({"lease": "1"}, TypeError, "lease must be a number"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be >= 1, got 0"),
        ({"max_attempts": True}, TypeError, "max_attempts must be an int"),
        ({"window": -1}, ValueError, "window must be >= 0, got -1"),
        ({"prefetch": -1}, ValueError, "prefetch"),
        ({"ordered": 1}, TypeError, "ordered must be a bool"),
    ],
)
def test_constructor_errors(kw: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        make(**kw)


def test_call_errors_name_the_input_and_the_state() -> None:
    ledger = make()
    ledger.submit("t")
    with pytest.raises(TypeError, match="now must be seconds"):
        ledger.next_assignment("soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        ledger.expire(math.nan)
    with pytest.raises(TypeError, match="worker is named by non-empty text or None, got ''"):
        ledger.next_assignment(0.0, "")
    with pytest.raises(TypeError, match="non-empty text, got None"):
        ledger.worker_gone(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"result for task 5, which was never submitted \(open: 1 queued"):
        ledger.result(5, 1, None, worker=None, now=0.0)
    with pytest.raises(ValueError, match="result for attempt 1 of task 0, which has had 0 .state: queued"):
        ledger.result(0, 1, None, worker=None, now=0.0)
    with pytest.raises(ValueError, match="attempt must be >= 1, got 0"):
        ledger.failure(0, 0, Failure("E", ""), worker=None, now=0.0)
    with pytest.raises(
        ValueError, match=r"failure for attempt 5 of task 0; max_attempts is 2 \(at most 4 sends\)"
    ):
        ledger.failure(0, 5, Failure("E", ""), worker=None, now=0.0)
    with pytest.raises(TypeError, match="task_id must be an int"):
        ledger.result("0", 1, None, worker=None, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="failure.. takes a Failure or an exception, got 'oops'"):
        ledger.failure(0, 1, "oops", worker=None, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window must be >= 0"):
        ledger.set_window(-2)
    with pytest.raises(ValueError, match="never submitted"):
        ledger.result(9, 1, None, worker="w", now=50.0)
    assert (
        ledger.statistics().stale == 0 and not ledger.statistics().per_worker
    )  # refused calls change nothing
    a = ledger.next_assignment(0.0)  # not even the clock
    assert a is not None and a.deadline == 1.0


@given(
    st.integers(0, 2**63 - 1),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.integers(1, 6),
    st.none() | st.text(),
)
def test_a_success_built_slot_by_slot_is_the_outcome_the_dataclass_builds(
    task_id: int, task: str, result: bytes, attempts: int, worker: str | None
) -> None:
    fast = success(task_id, task, result, attempts, worker)
    slow = Outcome(task_id, task, result, None, attempts, worker)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow) and fast.ok
    with pytest.raises(FrozenInstanceError):
        fast.result = 1  # type: ignore[misc]


@given(st.lists(st.integers(), max_size=20), st.integers(0, 20))
def test_submit_many_is_submit_for_each_and_keeps_what_came_before_a_raise(tasks: list[int], fail_at: int) -> None:
    one, many = make(window=100), make(window=100)
    for task in tasks[:fail_at]:
        one.submit(task)

    def source() -> Any:
        for index, task in enumerate(tasks):
            if index == fail_at:
                raise RuntimeError("the source broke")
            yield task

    if fail_at < len(tasks):
        with pytest.raises(RuntimeError):
            many.submit_many(source())
    else:
        assert many.submit_many(source()) == len(tasks)
    assert many.next_assignments(0.0, 100) == one.next_assignments(0.0, 100)
    assert many.submit(-1) == one.submit(-1)  # the ids go on from the same place
    many.close_input()
    with pytest.raises(ValueError, match=r"submit_many\(\) after close_input\(\)"):
        many.submit_many([1])
