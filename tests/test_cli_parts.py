"""The command line's parts in one process: answers from command output, rules, task
lines, JSON forms, and the exec/serve agents against the small agent scripts."""

from __future__ import annotations

import io
import json
import sys
from fractions import Fraction
from typing import Any

import click
import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from consensus.cli.agent import AgentFailed, ExecAgent, Kind, Request, ServeAgent, parse_answer
from consensus.cli.app import parse_rule
from consensus.cli.render import jsonable
from consensus.cli.work import read_tasks
from consensus.decide.ballot import Ballot
from consensus.decide.rules import Majority, Supermajority

PY_AGENT = f"{sys.executable} {ROOT / 'tests' / 'cli_agent.py'}"
VOTE = Request(Kind.VOTE, "ship?", ("yes", "no", 3))


def test_vote_answers_name_an_option_or_give_a_ballot() -> None:
    assert parse_answer(VOTE, "yes") == "yes"
    assert parse_answer(VOTE, "3") == 3  # text from a plain command picks the option 3
    assert parse_answer(VOTE, 3) == 3
    assert parse_answer(VOTE, None) is None  # abstains
    ballot = parse_answer(VOTE, {"choice": "no", "confidence": 0.5, "reason": "risky"})
    assert ballot == Ballot("no", confidence=0.5, reason="risky")
    with pytest.raises(AgentFailed, match="not one of the options"):
        parse_answer(VOTE, "maybe")
    with pytest.raises(AgentFailed, match="unknown fields"):
        parse_answer(VOTE, {"choice": "no", "why": "x"})
    with pytest.raises(AgentFailed, match="confidence"):
        parse_answer(VOTE, {"choice": "no", "confidence": 7})
    assert parse_answer(Request(Kind.POLL, "q"), {"any": "thing"}) == {"any": "thing"}


def test_rules_by_name() -> None:
    assert parse_rule("majority") == Majority()
    assert parse_rule("supermajority=2/3") == Supermajority(Fraction(2, 3))
    for bad in ("super", "supermajority", "supermajority=2", "supermajority=x", "majority=1/2"):
        with pytest.raises(click.BadParameter):
            parse_rule(bad)


def test_task_lines() -> None:
    assert list(read_tasks(io.StringIO('1\n\n{"a": 2}\n"x"\n'), text=False)) == [1, {"a": 2}, "x"]
    assert list(read_tasks(io.StringIO("a b\n\nc\n"), text=True)) == ["a b", "c"]
    with pytest.raises(click.ClickException, match="stdin line 2 is not JSON"):
        list(read_tasks(io.StringIO("1\nnot json\n"), text=False))


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text() | st.integers(), inner),
    max_leaves=20,
)


@given(values)
def test_every_room_value_has_a_json_form(value: Any) -> None:
    assert json.loads(json.dumps(jsonable(value))) == jsonable(value)


async def test_exec_agent_text_and_json() -> None:
    text = ExecAgent('read -r q; echo "$NNGC_KIND:$q"')
    assert await text(Request(Kind.VOTE, "m", ("a", "vote:m"))) == "vote:m"
    assert await text(Request(Kind.POLL, {"k": 1})) == 'poll:{"k": 1}'
    second = ExecAgent("echo \"$NNGC_OPTIONS\" | tr -d '[]\" ' | cut -d, -f2")
    assert await second(Request(Kind.VOTE, "m", ("a", "b"))) == "b"
    as_json = ExecAgent(PY_AGENT, json_io=True)
    assert await as_json(Request(Kind.TASK, 21)) == 42
    with pytest.raises(AgentFailed, match="exited with status 3: cannot do fail"):
        await as_json(Request(Kind.TASK, "fail"))
    with pytest.raises(AgentFailed, match="not JSON"):
        await ExecAgent("echo nope", json_io=True)(Request(Kind.POLL, "q"))
    with pytest.raises(AgentFailed, match="did not answer within 0.2 s"):
        await ExecAgent("sleep 30", timeout=0.2)(Request(Kind.POLL, "q"))


async def test_serve_agent_answers_by_id_and_reports_its_exit() -> None:
    async with ServeAgent(f"{PY_AGENT} --serve") as agent:
        assert await agent(Request(Kind.TASK, 5)) == 10
        assert await agent(VOTE) == Ballot(3, confidence=0.75, reason="python agent")
        with pytest.raises(AgentFailed, match="cannot do fail"):
            await agent(Request(Kind.POLL, "fail"))
    async with ServeAgent("read -r line; exit 4") as gone:
        with pytest.raises(AgentFailed, match="exited"):
            await gone(Request(Kind.POLL, "q"))
        assert await gone.wait_exited() == 4
