"""Member calls and observers over real processes: a member asks the host for a poll or a vote."""

from __future__ import annotations

import json
from collections.abc import Callable

import trio
from conftest import Peers, read_line, tell

import consensus


async def start(peers: Peers, address: str, name: str, *options: str):  # type: ignore[no-untyped-def]
    proc = peers.agent(address, name, *options)
    assert await read_line(proc) == "joined"
    return proc


async def next_line(proc, prefix: str) -> str:  # type: ignore[no-untyped-def]
    """The next line starting with ``prefix`` (decisions and messages may come in between)."""
    while not (line := await read_line(proc)).startswith(prefix):
        pass
    return line


async def test_member_calls_a_poll_and_a_vote(room_address: Callable[[str], str], peers: Peers) -> None:
    address = room_address("tcp")
    async with consensus.host(address) as room:
        caller = await start(peers, address, "ann", "--answer", '"yes"', "--choice", '"b"')
        await start(peers, address, "bob", "--answer", '"no"', "--choice", '"b"')
        watcher = await start(peers, address, "eve", "--observer")
        await room.wait_for_members(2)
        while room.observers != ("eve",):
            await room.wait_members_changed()
        assert room.members == ("ann", "bob")
        tell(caller, 'poll "ready?"')
        line = await next_line(caller, "polled ")
        _, answers, missing = line.split(" ", 2)
        assert json.loads(answers) == {"ann": "yes", "bob": "no"} and json.loads(missing) == []
        tell(watcher, 'poll "ready?"')  # an observer may call, and is never expected itself
        _, answers, missing = (await next_line(watcher, "polled ")).split(" ", 2)
        assert json.loads(answers) == {"ann": "yes", "bob": "no"} and json.loads(missing) == []
        tell(caller, "vote " + json.dumps(["go?", ["a", "b"], {"rule": "supermajority", "fraction": 0.66}]))
        assert await next_line(caller, "voted ") == 'voted "b"'
        assert await next_line(watcher, "decision ") == 'decision "b"'  # broadcast as usual
        stats = room.statistics()
        assert stats.calls == 3 and stats.observers == 1 and stats.rejected_replies == 0


async def test_calls_refused_when_the_room_takes_none(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address, member_calls=False) as room:
        caller = await start(peers, address, "ann")
        await room.wait_for_members(1)
        tell(caller, 'poll "ready?"')
        assert (await next_line(caller, "call-refused ")).endswith("(member_calls=False)")
        tell(caller, 'vote ["go?", ["a", "b"], null]')
        assert (await next_line(caller, "call-refused ")).endswith("(member_calls=False)")
        assert room.statistics().refused_calls == 2 and room.statistics().polls == 0


async def test_call_with_a_bad_rule_or_arguments_is_refused(room_address: Callable[[str], str]) -> None:
    address = room_address("inproc")
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_vote=lambda m, o: o[0]) as ann,
    ):
        await room.wait_for_members(1)
        try:
            await ann.vote("go?", options=["a", "a"], timeout=5)
        except consensus.MemberCallRefused as exc:
            assert "ValueError" in exc.reason
        else:
            raise AssertionError("duplicate options must be refused")
        decision = await ann.vote("go?", options=["a", "b"], rule=consensus.Unanimous(), timeout=5)
        assert decision.outcome == "a" and decision.rule == "Unanimous"


async def test_call_times_out_when_the_host_never_answers(room_address: Callable[[str], str]) -> None:
    address = room_address("inproc")
    async with consensus.host(address) as room, consensus.join(address, name="ann") as ann:
        await room.wait_for_members(1)

        async def never(call: object) -> None:  # a host that takes the call and never answers
            pass

        room._run_call = never  # type: ignore[method-assign]
        start = trio.current_time()
        try:
            await ann.poll("anyone?", timeout=0.1)
        except consensus.Timeout as exc:
            assert "no result" in str(exc)
        else:
            raise AssertionError("a call without a result must time out")
        assert trio.current_time() - start < 5
