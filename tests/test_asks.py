"""The hotline's table of outstanding asks (``consensus.hotline.asks``), checked against a naive reference.

Random sequences of opens, replies of every kind (to open, finished and never-used ids),
closes, expiries at a monotonic clock and ``fail_all`` run in lock-step on
:class:`AskTable` and on ``tests/_reference_asks.py``; every verdict, returned id list,
``statistics()`` and ``next_deadline()`` must agree, and the invariants hold after every
step. Then a few plain examples.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pytest
from _reference_asks import KINDS, RefAsks
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.hotline.asks import Action, AskTable, Verdict

IDS = list(range(6))  # opened, answered, closed, re-opened...
NEVER_USED = [97, 98, 99]  # never opened
DELTAS = [-1.0, 0.0, 0.5, 1.0, 2.0, 5.0, math.inf]
STEPS = [0.0, 0.25, 0.5, 1.0, 3.0]

OPS = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(IDS), st.sampled_from(DELTAS), st.booleans()),
    st.tuples(st.just("reply"), st.sampled_from(KINDS), st.sampled_from(IDS + NEVER_USED)),
    # an index into the asks open at that step (any id if none is)
    st.tuples(st.just("reply_open"), st.sampled_from(KINDS), st.integers(0, 5)),
    st.tuples(st.just("reply_open"), st.sampled_from(KINDS), st.integers(0, 5)),
    st.tuples(st.just("close"), st.sampled_from(IDS + NEVER_USED)),
    st.tuples(st.just("close_open"), st.integers(0, 5)),
    st.tuples(st.just("expire"), st.sampled_from(STEPS)),
    st.tuples(st.just("fail_all")),
)


def check_state(table: AskTable, ref: RefAsks) -> None:
    stats = asdict(table.statistics())
    assert stats == ref.statistics()
    assert stats["opened"] == (
        stats["open"] + stats["answered"] + stats["expired"] + stats["failed"] + ref.closed
    )
    assert stats["malformed"] <= stats["failed"]
    assert len(table) == len(ref.asks)
    for ask_id in IDS + NEVER_USED:
        assert (ask_id in table) == (ask_id in ref.asks)
    assert table.next_deadline() == ref.next_deadline()
    assert table.next_deadline() == min((d for d, _ in ref.asks.values()), default=None)


@settings(max_examples=300, deadline=None)
@given(st.lists(OPS, max_size=60))
def test_table_matches_reference(ops: list[tuple[Any, ...]]) -> None:
    table, ref = AskTable(), RefAsks()
    now = 0.0
    ended: set[int] = set()  # ids whose current ask has finished, one way or another

    def finish(ids: list[int]) -> None:
        for ask_id in ids:
            assert ask_id not in ended, f"ask {ask_id} finished twice"
            ended.add(ask_id)

    for op in ops:
        if op[0] == "open":
            _, ask_id, delta, stream = op
            if ask_id in ref.asks:
                with pytest.raises(ValueError, match=str(ask_id)):
                    table.open(ask_id, deadline=now + delta, stream=stream)
            else:
                table.open(ask_id, deadline=now + delta, stream=stream)
                ref.open(ask_id, now + delta, stream)
                ended.discard(ask_id)
        elif op[0] in ("reply", "reply_open"):
            _, kind, ask_id = op
            if op[0] == "reply_open" and ref.asks:
                ask_id = sorted(ref.asks)[ask_id % len(ref.asks)]
            before = ref.asks.get(ask_id)
            verdict = table.on_reply(kind, ask_id)
            action, expected_id = ref.on_reply(kind, ask_id)
            assert verdict == Verdict(Action(action), expected_id)
            if ask_id in ended or ask_id in NEVER_USED:
                assert verdict.action is Action.DROP
            if verdict.action is Action.DELIVER:
                assert kind == "chunk" and before is not None and before[1]
            if verdict.action in (Action.FINISH, Action.VIOLATION):
                finish([ask_id])
        elif op[0] in ("close", "close_open"):
            ask_id = op[1]
            if op[0] == "close_open" and ref.asks:
                ask_id = sorted(ref.asks)[ask_id % len(ref.asks)]
            was_open = ask_id in ref.asks
            assert table.close(ask_id) is ref.close(ask_id) is was_open
            if was_open:
                finish([ask_id])
        elif op[0] == "expire":
            now += op[1]
            due = table.expire(now)
            assert sorted(due) == ref.expire(now)
            assert len(set(due)) == len(due)
            finish(due)
        else:
            failed = table.fail_all()
            assert sorted(failed) == ref.fail_all()
            assert len(set(failed)) == len(failed)
            finish(failed)
        check_state(table, ref)
        assert not any(ask_id in table for ask_id in ended)


def stats(table: AskTable) -> dict[str, int]:
    return {k: v for k, v in asdict(table.statistics()).items() if v}


def test_plain_ask_answered_by_reply() -> None:
    table = AskTable()
    table.open(1, deadline=10.0, stream=False)
    assert table.on_reply("reply", 1) == Verdict(Action.FINISH, 1)
    assert 1 not in table and table.next_deadline() is None
    assert table.on_reply("reply", 1) == Verdict(Action.DROP, 1)
    assert stats(table) == {"opened": 1, "answered": 1, "stale": 1}


def test_stream_of_chunks_then_end() -> None:
    table = AskTable()
    table.open(7, deadline=10.0, stream=True)
    for _ in range(3):
        assert table.on_reply("chunk", 7) == Verdict(Action.DELIVER, 7)
        assert 7 in table
    assert table.on_reply("end", 7) == Verdict(Action.FINISH, 7)
    assert table.on_reply("chunk", 7) == Verdict(Action.DROP, 7)
    assert stats(table) == {"opened": 1, "answered": 1, "stale": 1}


@pytest.mark.parametrize("stream", [False, True])
def test_error_ends_either_kind(stream: bool) -> None:
    table = AskTable()
    table.open(3, deadline=10.0, stream=stream)
    if stream:
        assert table.on_reply("chunk", 3).action is Action.DELIVER
    assert table.on_reply("error", 3) == Verdict(Action.FINISH, 3)
    assert table.on_reply("error", 3) == Verdict(Action.DROP, 3)
    assert stats(table) == {"opened": 1, "answered": 1, "stale": 1}


@pytest.mark.parametrize(("stream", "kind"), [(True, "reply"), (False, "chunk"), (False, "end")])
def test_wrong_kind_is_a_violation(stream: bool, kind: str) -> None:
    table = AskTable()
    table.open(4, deadline=10.0, stream=stream)
    assert table.on_reply(kind, 4) == Verdict(Action.VIOLATION, 4)
    assert 4 not in table
    assert table.on_reply("end" if stream else "reply", 4) == Verdict(Action.DROP, 4)
    assert stats(table) == {"opened": 1, "failed": 1, "malformed": 1, "stale": 1}


def test_close_is_not_counted_and_makes_replies_stale() -> None:
    table = AskTable()
    table.open(5, deadline=10.0, stream=False)
    assert table.close(5) is True and table.close(5) is False
    assert table.on_reply("reply", 5) == Verdict(Action.DROP, 5)
    assert stats(table) == {"opened": 1, "stale": 1}


def test_expire_at_the_deadline_and_fail_all() -> None:
    table = AskTable()
    table.open(1, deadline=2.0, stream=False)
    table.open(2, deadline=1.0, stream=True)
    table.open(3, deadline=3.0, stream=True)
    assert table.next_deadline() == 1.0
    assert table.expire(0.5) == []
    assert sorted(table.expire(2.0)) == [1, 2]
    assert table.next_deadline() == 3.0
    assert table.fail_all() == [3] and table.fail_all() == []
    assert stats(table) == {"opened": 3, "expired": 2, "failed": 1}


def test_open_twice_names_the_id() -> None:
    table = AskTable()
    table.open(42, deadline=1.0, stream=False)
    with pytest.raises(ValueError, match=r"\b42\b"):
        table.open(42, deadline=5.0, stream=True)
    assert table.next_deadline() == 1.0 and table.statistics().opened == 1


@pytest.mark.parametrize("ask_id", [1, 99])
def test_unknown_kind_raises(ask_id: int) -> None:
    table = AskTable()
    table.open(1, deadline=1.0, stream=True)
    with pytest.raises(ValueError, match="bogus"):
        table.on_reply("bogus", ask_id)
    assert stats(table) == {"open": 1, "opened": 1}
