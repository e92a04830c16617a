"""The work protocol's checks of what workers send (``consensus.work.protocol``): pure tests.

Each item of a claim, release or done list is checked on its own: the good ones come out
(in order) to be applied, and each bad one is an error to count. Checked here against a
naive reading of ``docs/work.md`` section 3.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.failure import Failure
from consensus.work import protocol as W
from patterns import Envelope, MalformedMessage


def envelope(kind: str, body: Any = None) -> Envelope:
    return Envelope(kind=kind, sender="w", id=1, body=body)


def naive_id_and_attempt(item: Any, length: int) -> bool:
    if not isinstance(item, list) or len(item) != length:
        return False
    task_id, attempt = item[0], item[1]
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (task_id, attempt))
    return ints and 0 <= task_id <= 2**63 - 1 and 1 <= attempt <= 1000


def naive_reply(item: Any) -> list[Any] | None:
    if not naive_id_and_attempt(item, 4) or not isinstance(item[2], bool):
        return None
    if item[2]:
        return list(item)
    error = item[3]
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("type"), str)
        or not 1 <= len(error["type"]) <= 200
    ):
        return None
    message = error.get("message", "")
    if not isinstance(message, str):
        return None
    return [item[0], item[1], False, Failure(error["type"], message[:2000])]


numbers = st.sampled_from([0, 1, 2, 1000, 1001, -1, 2**63 - 1, 2**63, True, False, 1.0, "1", None])
errors = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["", "E", "x" * 201]), "message": st.sampled_from(["m", 5])}
    ),
    st.fixed_dictionaries({"type": st.just("E")}),
    st.sampled_from([{}, "E", None, {"type": 3}, {"type": "E", "message": "y" * 2500}]),
)
anything = st.one_of(st.integers(), st.text(max_size=3), st.none(), errors)
items = st.one_of(
    st.lists(numbers, min_size=2, max_size=2),
    st.tuples(numbers, numbers, st.booleans() | numbers, anything).map(list),
    st.lists(numbers, max_size=5),
    anything,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=12), st.sampled_from([W.CLAIM, W.RELEASE]))
def test_claims_keep_the_good_items_in_order_and_count_each_bad_one(listed: list[Any], kind: str) -> None:
    good, bad = W.claims(envelope(kind), listed)
    assert good == [item for item in listed if naive_id_and_attempt(item, 2)]
    assert len(bad) == len(listed) - len(good)
    assert all(isinstance(exc, MalformedMessage) and exc.reason == "body" for exc in bad)


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=12))
def test_replies_keep_the_good_items_in_order_and_count_each_bad_one(listed: list[Any]) -> None:
    good, bad = W.replies(envelope(W.DONE), listed)
    want = [reply for reply in map(naive_reply, listed) if reply is not None]
    assert good == want
    assert len(bad) == len(listed) - len(good)
    assert all(isinstance(exc, MalformedMessage) and exc.reason == "body" for exc in bad)


def test_a_bad_item_is_described_by_its_index() -> None:
    good, bad = W.replies(envelope(W.DONE), [[1, 1, True, "ok"], ["x"], [2, 1, False, {"type": "Boom"}]])
    assert good == [[1, 1, True, "ok"], [2, 1, False, Failure("Boom", "")]]
    [error] = bad
    assert "item 1" in str(error)


def test_a_batch_keeps_its_items_and_rejects_a_bad_one_whole() -> None:
    batch = W.parse_batch(envelope(W.TASKS, {"st": 7, "lease": 5, "t": [[0, 1, "a"], [1, 2, b"b"]]}))
    assert (batch.stream, batch.lease, batch.tasks) == (7, 5.0, [[0, 1, "a"], [1, 2, b"b"]])
    with pytest.raises(MalformedMessage, match="task 1"):
        W.parse_batch(envelope(W.TASKS, {"st": 7, "lease": 5, "t": [[0, 1, "a"], [True, 1, "b"]]}))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(numbers, numbers, anything).map(list), items), min_size=1, max_size=8))
def test_a_batch_is_taken_only_when_every_task_is_well_formed(listed: list[Any]) -> None:
    message = envelope(W.TASKS, {"st": 1, "lease": 2.0, "t": listed})
    bad = [index for index, item in enumerate(listed) if not naive_id_and_attempt(item, 3)]
    if not bad:
        assert W.parse_batch(message).tasks == listed
    else:
        with pytest.raises(MalformedMessage, match=f"task {bad[0]} "):
            W.parse_batch(message)


def test_a_job_is_its_handlers_context_built_when_asked() -> None:
    """The worker sets the job itself as the handler context (no record per task); the
    handler reads the job's current attempt, the one it will report."""
    import contextvars

    from consensus.runtime.context import HandlerContext, handler_context, set_current_from
    from consensus.work.worker_protocol import Job

    job = Job(stream=7, task_id=3, attempt=1, task="t", claimed_at=0.0, sender="boss")

    def run() -> list[HandlerContext]:
        set_current_from(job)
        first = handler_context()
        job.attempt = 2  # a redelivery while it runs: it answers for the newer attempt
        return [first, handler_context()]

    assert contextvars.copy_context().run(run) == [
        HandlerContext("task", "boss", 3, 1),
        HandlerContext("task", "boss", 3, 2),
    ]


# ---------------------------------------------------------------------- flat lists
flat_entries = st.lists(st.one_of(numbers, anything), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(flat_entries, st.lists(st.tuples(numbers, numbers), max_size=8)
                 .map(lambda listed: [v for item in listed for v in item])), st.sampled_from([W.CLAIM, W.RELEASE]))  # fmt: skip
def test_a_flat_claim_list_reads_as_its_items_end_to_end(flat: list[Any], kind: str) -> None:
    """``"cf"``: the same good items and as many errors as the nested list of the same
    entries, two an item (a short last item is a bad one)."""
    listed = [flat[i : i + 2] for i in range(0, len(flat), 2)]
    good, bad = W.claims(envelope(kind), flat, True)
    assert [list(item) for item in good] == [item for item in listed if naive_id_and_attempt(item, 2)]
    assert len(bad) == len(listed) - len([item for item in listed if naive_id_and_attempt(item, 2)])


@settings(max_examples=300, deadline=None)
@given(st.one_of(flat_entries, st.lists(st.tuples(numbers, numbers, st.booleans() | numbers, anything), max_size=6)
                 .map(lambda listed: [v for item in listed for v in item])))  # fmt: skip
def test_a_flat_done_list_reads_as_its_items_end_to_end(flat: list[Any]) -> None:
    listed = [flat[i : i + 4] for i in range(0, len(flat), 4)]
    good, bad = W.replies(envelope(W.DONE), flat, True)
    want = [reply for reply in map(naive_reply, listed) if reply is not None]
    assert [list(item) for item in good] == want
    assert len(bad) == len(listed) - len(want)


def test_a_flat_batch_keeps_its_items_and_rejects_a_bad_one_whole() -> None:
    batch = W.parse_batch(envelope(W.TASKS, {"st": 7, "lease": 5, "tf": [0, 1, "a", 1, 2, b"b"]}))
    assert batch.flat and [list(item) for item in batch.items()] == [[0, 1, "a"], [1, 2, b"b"]]
    for tf, match in (([0, 1, "a", True, 1, "b"], "task 1"), ([0, 1, "a", 1, 1], "1..65536 tasks"),
                      ([], "1..65536 tasks"), ("0 1 a", "1..65536 tasks")):  # fmt: skip
        with pytest.raises(MalformedMessage, match=match):
            W.parse_batch(envelope(W.TASKS, {"st": 7, "lease": 5, "tf": tf}))
    for extra in ({"t": [[0, 1, "a"]]}, {"tk": [b"x"]}):  # one list in one form; tickets only on nested lists
        with pytest.raises(MalformedMessage, match="goes alone"):
            W.parse_batch(envelope(W.TASKS, {"st": 7, "lease": 5, "tf": [0, 1, "a"], **extra}))
    with pytest.raises(MalformedMessage, match="two forms"):
        W.parse_items(envelope(W.CLAIM, {"st": 7, "c": [[0, 1]], "cf": [0, 1]}))


def test_a_dispatcher_sends_flat_batches_only_while_every_worker_reads_them() -> None:
    from consensus.work.dispatcher_protocol import DispatcherProtocol
    from consensus.work.ledger import TaskLedger
    from consensus.work.worker_protocol import WorkerProtocol

    dispatcher = DispatcherProtocol(max_batch=4)
    ledger = TaskLedger(lease=30.0, claim_timeout=5.0, max_attempts=3, window=0)
    stream = dispatcher.open_stream(ledger)
    for task in range(12):
        ledger.submit(task)
    dispatcher.task_connections(2, 0.0, closed=False)
    new, old = WorkerProtocol("new", 4), W.hello_frame(4)  # "old": a hello without "fl"
    dispatcher.receive(Envelope(W.HELLO, "new", 1, new.connections({1}).body), 1, 0.0)  # type: ignore[union-attr]
    first = dispatcher.grant(stream, 0.0).frame
    assert first is not None and list(first.body) == ["st", "lease", "tf"]
    step = new.receive(Envelope(W.TASKS, "d", 2, first.body), 0.0)  # answered in kind
    assert [frame.body.get("cf") for frame in step.frames] == [[0, 1, 1, 1, 2, 1, 3, 1]]
    dispatcher.receive(Envelope(W.CLAIM, "new", 3, step.frames[0].body), 1, 0.0)
    while (job := new.next_job()) is not None:
        new.finished(job, True, job.task * 10)
    [done] = new.results_due()
    assert done.body["rf"] == [0, 1, True, 0, 1, 1, True, 10, 2, 1, True, 20, 3, 1, True, 30]
    dispatcher.receive(Envelope(W.DONE, "new", 4, done.body), 1, 0.0)
    new.results_sent(done)
    assert not new.has_results
    assert [(o.task_id, o.result) for o in ledger.pop_outcomes()] == [(0, 0), (1, 10), (2, 20), (3, 30)]
    dispatcher.receive(Envelope(W.HELLO, "old", 5, old.body), 2, 0.0)
    second = dispatcher.grant(stream, 0.0).frame
    assert second is not None and second.body["t"] == [[4, 1, 4], [5, 1, 5], [6, 1, 6], [7, 1, 7]]


@pytest.mark.parametrize("flat", [False, True])
async def test_halving_a_frame_leaves_the_item_at_fault_alone(flat: bool) -> None:
    """A batch that cannot go out is halved, in either form, down to the item at fault."""
    from patterns import EncodeError

    items = [[i, 1, object() if i == 5 else i] for i in range(8)]
    frame = W.tasks_frame(3, 1.0, [v for item in items for v in item] if flat else items, flat=flat)
    sent: list[list[Any]] = []
    faulty: list[tuple[int, list[Any]]] = []

    async def send(frame: W.Frame) -> None:
        listed = W.frame_items(frame)
        if any(type(v) is object for v in (listed if flat else [item[2] for item in listed])):
            raise EncodeError("no wire form")
        sent.append(listed)

    async def unsendable(stream: int, item: list[Any], exc: Exception) -> None:
        faulty.append((stream, list(item)))

    await W.send_halving(frame, send, unsendable)
    flat_sent = [v for part in sent for v in (part if flat else [x for item in part for x in item])]
    assert flat_sent == [v for item in items if item[0] != 5 for v in item]
    assert faulty == [(3, items[5])]
