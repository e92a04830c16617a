"""The friction a new user hit (issue 15), each fixed and pinned here: encode errors that
name what has no CBOR form and where it sat, a task result that cannot be encoded failing
at once, ``room.wait_for_members(n, timeout=)`` naming who is there, ``NameTaken`` saying
how long ago, and the handler context (who asks, which task and attempt)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

import pytest
import trio
from conftest import ROOT

import consensus
from consensus.room.roster import JoinOutcome, Roster
from patterns import EncodeError, Envelope, encode, encode_body, unencodable_part


@dataclasses.dataclass
class Summary:
    text: str


# ---------------------------------------------------------------------- encode errors
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Summary("x"), "a Summary has no CBOR form here"),
        ({"summary": [1, Summary("x")]}, "a Summary at ['summary'][1] has no CBOR form here"),
        ([{"when": datetime.date(2026, 1, 1)}], "a date at [0]['when'] would be written as a CBOR tag"),
        ({"a": {1: "b"}}, "a map key 1 (int) at ['a'] is refused: map keys must be text or bytes"),
        (["ok", "\ud800"], "text '\\ud800' at [1] holds lone surrogates"),
        ({"fine": [1, 2.5, b"x", None, True]}, None),
    ],
)
def test_the_part_with_no_cbor_form_is_named_with_its_place(value: Any, expected: str | None) -> None:
    found = unencodable_part(value)
    assert found == expected if expected is None else found is not None and found.startswith(expected)


def test_an_encode_error_names_the_type_and_where_it_sat_not_the_frame() -> None:
    with pytest.raises(EncodeError) as caught:
        encode(Envelope("answer", "ann", 1, {"answer": {"summary": Summary("x")}}))
    message = str(caught.value)
    assert message.startswith("cannot encode the body of an 'answer' message as CBOR: ")
    assert "a Summary at ['answer']['summary'] has no CBOR form here" in message
    assert "cannot encode a dict" not in message  # the frame around the body is not the user's business
    with pytest.raises(EncodeError, match=r"cannot encode a list as CBOR: a Summary at \[0\]"):
        encode_body([Summary("x")])


async def test_a_poll_answer_with_no_cbor_form_says_what_and_where(
    room_address: Callable[[str], str],
) -> None:
    address = room_address("inproc")
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_poll=lambda q: {"summary": Summary(q)}),
    ):
        await room.wait_for_members(1, timeout=10)
        result = await room.poll("go?", timeout=5)
    error = result.errors["ann"]
    assert error.type == "EncodeError"
    assert "a Summary at ['answer']['summary'] has no CBOR form here" in error.message


async def test_a_result_with_no_cbor_form_fails_at_once(room_address: Callable[[str], str]) -> None:
    address = room_address("inproc")
    calls = 0

    def work(task: Any) -> Any:
        nonlocal calls
        calls += 1
        return {"summary": Summary(task)} if task == "bad" else task

    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_task=work),
    ):
        await room.wait_for_members(1, timeout=10)
        async with room.distribute(["ok", "bad"], max_attempts=5) as outcomes:
            got = {o.task: o async for o in outcomes}
            retried = outcomes.statistics().retried
    assert got["ok"].result == "ok"
    bad = got["bad"]
    assert bad.error is not None and bad.attempts == 1 and retried == 0 and calls == 2
    assert bad.error.message == (
        "the result of task 1 cannot be sent: a Summary at ['summary'] has no CBOR form here; "
        "send plain data (numbers, text, bytes, lists, maps) instead, e.g. a dict of its fields"
    )


# ---------------------------------------------------------------------- waiting for members
async def test_waiting_for_members_with_a_timeout_names_who_came(room_address: Callable[[str], str]) -> None:
    address = room_address("inproc")
    async with consensus.host(address) as room, consensus.join(address, name="ann"):
        assert await room.wait_for_members(1, timeout=10) == ("ann",)
        with pytest.raises(consensus.Timeout) as caught:
            await room.wait_for_members(3, timeout=0.2)
    assert str(caught.value) == (
        f"room at {address}: 1 of the 3 members waited for came within 0.2 s (present: ann)"
    )


# ---------------------------------------------------------------------- NameTaken
def test_a_taken_name_says_how_long_ago_in_seconds() -> None:
    roster = Roster(heartbeat=100.0)
    assert roster.join("ann", 1, "ipc:///a", 1, 71_760.085).outcome is JoinOutcome.ACCEPTED
    assert roster.heartbeat_from("ann", 1, 71_831.0)
    verdict = roster.join("ann", 2, "ipc:///b", 2, 71_831.6)
    assert verdict.outcome is JoinOutcome.REFUSED
    assert "joined 71.5 s ago, last heard 0.600 s ago" in verdict.reason and "71760" not in verdict.reason


# ---------------------------------------------------------------------- handler context
async def test_handlers_see_who_asks_and_which_task_and_attempt(room_address: Callable[[str], str]) -> None:
    address = room_address("inproc")
    seen: list[consensus.HandlerContext] = []

    def remember(value: Any, *rest: Any) -> Any:  # a plain handler: it runs in a thread
        seen.append(consensus.handler_context())
        return "yes" if rest else value

    async def ask(value: Any) -> Any:  # an async one: it runs in the member's trio loop
        seen.append(consensus.handler_context())
        return value

    async with (
        consensus.host(address, name="boss") as room,
        consensus.join(address, name="ann", on_poll=remember, on_vote=remember, on_task=remember, on_ask=ask),
        consensus.join(address, name="bob") as bob,
    ):
        await room.wait_for_members(2, timeout=10)
        await room.poll("q", timeout=5)
        await room.vote("m", options=["yes", "no"], timeout=5)
        async with room.distribute(["t"]) as outcomes:
            assert [o.result async for o in outcomes] == ["t"]
        line = await bob.hotline("ann")
        await line.ask("hi", timeout=5)
    by_kind = {context.kind: context for context in seen}
    assert by_kind["poll"] == consensus.HandlerContext("poll", "boss")
    assert by_kind["vote"] == consensus.HandlerContext("vote", "boss")
    assert by_kind["task"].task_id == 0 and by_kind["task"].attempt == 1 and by_kind["task"].asker
    assert by_kind["ask"].asker == "bob" and by_kind["ask"].ask_id is not None
    with pytest.raises(LookupError, match="only set while a handler"):
        consensus.handler_context()


def test_the_context_is_gone_after_the_handler() -> None:
    async def main() -> None:
        async with trio.open_nursery():
            with pytest.raises(LookupError):
                consensus.handler_context()

    trio.run(main)


# ---------------------------------------------------------------------- statistics documented
def test_every_statistics_field_is_explained_in_the_docs() -> None:
    import patterns

    records = [consensus.RoomStatistics, consensus.MemberStatistics, consensus.HotlineStatistics,
               consensus.DispatcherStatistics, consensus.DistributionStatistics, consensus.WorkerStatistics,
               patterns.SocketStatistics, patterns.shm.PoolStatistics]  # fmt: skip
    page = (ROOT / "docs" / "statistics.md").read_text()
    sections = {
        part.split("\n", 1)[0].rpartition("→ ")[2].strip("` "): part for part in page.split("\n## ")[1:]
    }
    for record in records:
        name = record.__name__
        key = next(k for k in sections if k.endswith(name))
        rows = {
            line.split("|")[1].strip().strip("`")
            for line in sections[key].splitlines()
            if line.startswith("| `")
        }
        fields = {field.name for field in dataclasses.fields(record)}
        assert rows == fields, (name, fields - rows, rows - fields)
