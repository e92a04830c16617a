"""Rooms over real NNG between processes: membership, polls, votes, broadcast."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import pytest
import trio
import trio.testing
from conftest import Peers, read_line, tell

import consensus
import patterns

TRANSPORTS = ["ipc", "tcp"]


async def start_agents(peers: Peers, address: str, names: list[str], *options: str) -> list:  # type: ignore[type-arg]
    procs = [peers.agent(address, name, *options) for name in names]
    for proc in procs:
        assert await read_line(proc) == "joined"
    return procs


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_poll_completes_early_with_every_answer(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address) as room:
        names = ["ann", "bob", "cy"]
        await start_agents(peers, address, names)
        assert await room.wait_for_members(3) == tuple(names)
        result = await room.poll("what time is it?", timeout=20)
        assert result.elapsed < 5, "a poll must not idle to its deadline when nobody is missing"
        assert result.answers == {n: {"name": n, "question": "what time is it?"} for n in names}
        assert result.missing == frozenset() and not result.errors and result.complete


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_member_killed_mid_poll_is_missing_without_waiting(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address) as room:
        await start_agents(peers, address, ["quick"])
        (slow,) = await start_agents(peers, address, ["slow"], "--delay", "60")
        await room.wait_for_members(2)
        async with trio.open_nursery() as nursery:
            results = []

            async def run_poll() -> None:
                results.append(await room.poll("still there?", timeout=30))

            nursery.start_soon(run_poll)
            await trio.testing.wait_all_tasks_blocked()
            slow.kill()
        (result,) = results
        assert result.answers.keys() == {"quick"}
        assert result.missing == {"slow"} and result.left == {"slow"}
        assert result.elapsed < 10
        assert "slow" not in room.members


async def test_handler_errors_and_timeouts_become_errors(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        await start_agents(peers, address, ["broken"], "--fail")
        await start_agents(peers, address, ["stuck"], "--delay", "60", "--handler-timeout", "0.2")
        await start_agents(peers, address, ["fine"])
        await room.wait_for_members(3)
        result = await room.poll("q", timeout=10)
        assert result.answers.keys() == {"fine"}
        assert (
            result.errors["broken"].type == "RuntimeError"
            and "cannot answer" in result.errors["broken"].message
        )
        assert result.errors["stuck"].type == "Timeout"
        assert result.elapsed < 5
        # The members survive their handlers' failures: a second poll reaches them again.
        again = await room.poll("q2", timeout=10)
        assert again.errors.keys() == {"broken", "stuck"} and again.answers.keys() == {"fine"}


async def test_late_answers_are_ignored_and_counted(room_address: Callable[[str], str]) -> None:
    """A member that answers after the deadline (here a hand-written one, speaking the
    protocol with plain pattern sockets, as an agent in another language would)."""
    address = room_address("ipc")
    ends = consensus.endpoints(address)
    async with (
        consensus.host(address, late_window=5.0) as room,
        patterns.Respondent(dial=ends.survey, name="tardy") as survey_side,
        patterns.Bus(dial=ends.control, name="tardy") as control,
    ):
        await survey_side.wait_for_peers(1)
        await control.wait_for_peers(1)
        await control.send({"name": "tardy", "token": 1, "mesh": address + ".m-tardy"}, kind="join")
        await room.wait_for_members(1)
        async with trio.open_nursery() as nursery:
            results = []

            async def ask() -> None:
                results.append(await room.poll("q", timeout=0.2))

            nursery.start_soon(ask)
            survey = await survey_side.receive()
        (result,) = results  # the poll ended at its deadline, without tardy's answer
        assert result.missing == {"tardy"} and not result.answers
        assert room.statistics().late_replies == 0
        await survey.reply({"answer": "sorry, late"}, kind="answer")
        with trio.fail_after(5):
            while room.statistics().late_replies < 1:  # counted in the background, as it arrives
                await trio.sleep(0.01)
        assert room.statistics().late_replies == 1


async def test_concurrent_polls_do_not_mix(room_address: Callable[[str], str], peers: Peers) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        names = ["ann", "bob"]
        await start_agents(peers, address, names, "--delay", "0.2")
        await room.wait_for_members(2)
        results: dict[str, consensus.PollResult] = {}

        async def ask(question: str) -> None:
            results[question] = await room.poll(question, timeout=10)

        async with trio.open_nursery() as nursery:
            for question in ("left?", "right?", "up?"):
                nursery.start_soon(ask, question)
        for question, result in results.items():
            assert result.answers == {n: {"name": n, "question": question} for n in names}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_vote_majority_and_decision_broadcast(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address) as room:
        yes = await start_agents(peers, address, ["a", "b"], "--choice", '"yes"')
        no = await start_agents(peers, address, ["c"], "--choice", '"no"', "--confidence", "0.5")
        await room.wait_for_members(3)
        decision = await room.vote("ship?", options=["yes", "no"], timeout=10)
        assert decision.outcome == "yes" and decision.quorum_met and not decision.tie
        assert dict(decision.tally) == {"yes": 2.0, "no": 1.0}
        assert decision.ballots["c"].confidence == 0.5 and decision.ballots["c"].reason == "c thinks so"
        assert decision.missing == frozenset() and decision.abstained == frozenset()
        for proc in yes + no:
            assert await read_line(proc) == 'decision "yes"'


async def test_rejected_ballots_are_counted_never_tallied(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        await start_agents(peers, address, ["a"], "--choice", '"yes"')
        await start_agents(peers, address, ["rogue"], "--choice", '"maybe"')
        await room.wait_for_members(2)
        decision = await room.vote("ship?", options=["yes", "no"], timeout=10)
        assert "rogue" in decision.rejected and decision.rejected_count == 1
        assert dict(decision.tally) == {"yes": 1.0, "no": 0.0}
        assert decision.outcome is None, "1 of 2 is not more than half of the electorate"
        assert decision.missing == {"rogue"}


async def test_vote_with_quorum_returns_once_decided(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        await start_agents(peers, address, ["a", "b", "c"], "--choice", '"yes"')
        await start_agents(peers, address, ["sleepy"], "--delay", "60")
        await room.wait_for_members(4)
        decision = await room.vote("ship?", options=["yes", "no"], timeout=30, quorum=3)
        assert decision.outcome == "yes" and decision.quorum_met
        assert decision.missing == {"sleepy"}
        assert decision.elapsed < 10


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_join_leave_and_broadcast_reaches_everyone(
    transport: str, room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address(transport)
    async with consensus.host(address, name="host") as room:
        procs = await start_agents(peers, address, ["ann", "bob", "cy"])
        await room.wait_for_members(3)
        ann, bob, cy = procs
        # Wait until the mesh is full: ann's broadcast must reach bob and cy (and the host).
        for proc in procs:
            tell(proc, "mesh")
            assert await read_line(proc) == "mesh ok"
        await room.wait_for_mesh()
        messages = room.messages()
        tell(ann, 'say "hello from ann"')
        assert await messages.__anext__() == ("ann", "hello from ann")
        for proc in (bob, cy):
            assert await read_line(proc) == 'message ann "hello from ann"'
        await room.broadcast({"from": "host"})
        for proc in procs:
            assert json.loads((await read_line(proc)).split(" ", 2)[2]) == {"from": "host"}
        tell(bob, "quit")
        assert await read_line(bob) == "left"
        while "bob" in room.members:
            await room.wait_members_changed()
        assert room.members == ("ann", "cy")


async def test_duplicate_name_is_refused_and_a_dead_member_is_replaced(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        (first,) = await start_agents(peers, address, ["neo"])
        twin = peers.agent(address, "neo")
        line = await read_line(twin)
        assert line.startswith("refused") and "held by a live member" in line
        first.kill()
        await start_agents(peers, address, ["neo"])
        assert room.members == ("neo",)
        assert room.statistics().refused_joins == 1


async def test_heartbeats_drop_a_silent_member(room_address: Callable[[str], str], peers: Peers) -> None:
    """A stopped process keeps its connections open; only missed heartbeats reveal it."""
    address = room_address("tcp")
    async with consensus.host(address, heartbeat=0.1, missed_heartbeats=3) as room:
        (frozen,) = await start_agents(peers, address, ["frozen"])
        await room.wait_for_members(1)
        start = trio.current_time()
        os.kill(frozen.pid, signal.SIGSTOP)
        while "frozen" in room.members:
            await room.wait_members_changed()
        assert trio.current_time() - start < 5.0
        assert room.statistics().expired == 1


async def test_hostile_control_frames_never_close_the_room(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    ends = consensus.endpoints(address)
    async with consensus.host(address) as room, patterns.Bus(dial=ends.control, name="evil") as evil:
        await evil.wait_for_peers(1)
        hostile = [
            ("join", {"name": "bad\tname", "token": 1, "mesh": address + ".m-x"}),  # not printable
            ("join", {"name": "x", "token": -1, "mesh": address + ".m-x"}),
            ("join", {"name": "x", "token": 3, "mesh": 7}),  # a mesh that is not text
            ("heartbeat", "not a map"),
            ("leave", {"name": 42}),
            ("nonsense", {}),
        ]
        undialable = [
            ("join", {"name": "x", "token": 1, "mesh": "bogus"}),  # not an address
            ("join", {"name": "x", "token": 2, "mesh": ends.mesh}),  # the host's own endpoint
        ]
        for kind, body in hostile + undialable:
            await evil.send(body, kind=kind)
        await evil.send_bytes(b"\xff not cbor")
        # A join whose mesh nobody can dial is refused (with the reason), not dropped.
        for expected in ("is not of the form scheme://address", "is this host's mesh endpoint"):
            refusal = await evil.receive_envelope()
            while refusal.kind != "refuse":
                refusal = await evil.receive_envelope()
            assert expected in refusal.body["reason"], refusal.body
        with trio.fail_after(5):
            while room.statistics().malformed < len(hostile) + 1 or room.statistics().refused_joins < 2:
                await trio.sleep(0.01)
        assert room.statistics().refused_joins == 2 and room.members == ()
        # The room still works: a real member joins and answers.
        await start_agents(peers, address, ["honest"])
        result = await room.poll("still alive?", timeout=10)
        assert result.answers.keys() == {"honest"} and room.members == ("honest",)


async def test_a_handler_slower_than_the_poll_is_a_timeout_error(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address) as room:
        await start_agents(peers, address, ["slow"], "--delay", "30")
        await room.wait_for_members(1)
        result = await room.poll("q", timeout=3)
        if result.missing == {"slow"} and not result.errors:
            # The member sends its Timeout 50 ms (REPLY_MARGIN) before the deadline; on a
            # loaded machine it can land just after it, as a late reply, never an answer.
            with trio.fail_after(5):
                while room.statistics().late_replies < 1:
                    await trio.sleep(0.01)
            assert not result.answers
            return
        assert result.errors["slow"].type == "Timeout" and result.missing == frozenset()


async def test_async_handlers_that_answer_at_once_raise_or_wait(room_address: Callable[[str], str]) -> None:
    """A member runs an async handler in its receiving task until the handler first waits
    (then another task takes over receiving): answers, failures and waits all come back,
    and a waiting handler does not hold up the next survey."""
    address = room_address("ipc")
    release = trio.Event()

    async def on_poll(question: str) -> str:
        if question == "fail":
            raise ValueError("no such answer")
        if question == "wait":
            await release.wait()
        return question.upper()

    async def on_vote(motion: str, options: list[str]) -> str:
        return options[-1]

    async with (
        consensus.host(address) as room,
        consensus.join(address, name="m", on_poll=on_poll, on_vote=on_vote) as member,
    ):
        await room.wait_for_members(1)
        assert dict((await room.poll("now", timeout=10)).answers) == {"m": "NOW"}
        failed = await room.poll("fail", timeout=10)
        assert failed.answers == {} and failed.errors["m"].type == "ValueError"
        async with trio.open_nursery() as nursery:
            waiting: list[consensus.PollResult] = []

            async def ask_waiting() -> None:
                waiting.append(await room.poll("wait", timeout=10))

            nursery.start_soon(ask_waiting)
            await trio.testing.wait_all_tasks_blocked()
            # The member's handler for "wait" is parked; the next poll and a vote still go through.
            assert dict((await room.poll("next", timeout=10)).answers) == {"m": "NEXT"}
            assert (await room.vote("pick", options=["a", "b"], timeout=10)).outcome == "b"
            release.set()
        assert dict(waiting[0].answers) == {"m": "WAIT"}
        # The member counts a reply once its send returns; the host can hear it first.
        with trio.fail_after(5):
            while (stats := member.statistics()).polls_answered < 3 or stats.votes_cast < 1:
                await trio.sleep(0.01)
        assert (stats.polls_answered, stats.votes_cast, stats.handler_errors) == (3, 1, 1)


async def test_a_refused_join_repeated_counts_once(room_address: Callable[[str], str]) -> None:
    """A member repeats its join until it is answered (every 0.25 s); under load the host
    may see an attempt several times. Each is refused, the attempt is counted once."""
    address = room_address("ipc")
    ends = consensus.endpoints(address)

    async def on_poll(question: str) -> str:
        return question

    async with (
        consensus.host(address) as room,
        consensus.join(address, name="neo", on_poll=on_poll),
        patterns.Bus(dial=ends.control, name="twin") as twin,
    ):
        await twin.wait_for_peers(1)

        async def refused(token: int) -> None:
            await twin.send({"name": "neo", "token": token, "mesh": address + ".m-twin"}, kind="join")
            with trio.fail_after(10):
                while True:
                    envelope = await twin.receive_envelope()
                    if envelope.kind == "refuse" and envelope.body["token"] == token:
                        return

        for _ in range(3):
            await refused(7)
        assert room.statistics().refused_joins == 1
        await refused(8)  # another attempt
        assert room.statistics().refused_joins == 2 and room.members == ("neo",)
