"""A round's deadline on the host: kept by the room's one alarm task (``Surveying._alarms``),
which wakes a round's reader when its deadline passes (``SurveyReplies.wake``), beside the
rounds with other deadlines and the departures that wake the same reader."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable

import pytest
import trio
import trio.testing
from conftest import Peers, read_line

import consensus
import patterns
from consensus.decide.poll import PollResult


async def _stopped_member(peers: Peers, address: str, room: consensus.Room) -> subprocess.Popen[str]:
    """A member that neither answers nor goes: its process stopped (SIGSTOP), its connections
    open. With a heartbeat of 10 s it is not dropped during the test, so a poll can only end at
    its deadline (and the member is then ``missing``, not ``left``)."""
    proc = peers.agent(address, "mute")
    assert await read_line(proc) == "joined"
    await room.wait_for_members(1)
    os.kill(proc.pid, signal.SIGSTOP)
    return proc


def _timed_out(result: PollResult) -> bool:
    return result.missing == {"mute"} and not result.left and not result.answers and not result.errors


@pytest.mark.deadline(40)
async def test_a_short_poll_ends_at_its_deadline_beside_a_longer_one(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    """The alarm sleeps until the long poll's deadline; the short poll's earlier one re-arms it."""
    address = room_address("ipc")
    async with consensus.host(address, heartbeat=10) as room, trio.open_nursery() as nursery:
        await _stopped_member(peers, address, room)
        long_done = trio.Event()

        async def long_poll() -> None:
            await room.poll("long", timeout=600)
            long_done.set()

        nursery.start_soon(long_poll)
        await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(10):  # without the re-armed alarm: 600 s
            short = await room.poll("short", timeout=0.3)
        assert _timed_out(short)
        assert not long_done.is_set()
        nursery.cancel_scope.cancel()


@pytest.mark.deadline(40)
async def test_polls_in_a_row_each_end_at_their_deadline(room_address: Callable[[str], str], peers: Peers) -> None:
    """The alarm, woken by one poll's deadline, sleeps until the next one's."""
    address = room_address("ipc")
    async with consensus.host(address, heartbeat=10) as room:
        await _stopped_member(peers, address, room)
        for i in range(3):
            with trio.fail_after(10):
                assert _timed_out(await room.poll(i, timeout=0.2))


@pytest.mark.deadline(40)
async def test_a_poll_cut_short_by_its_caller_leaves_the_alarm_to_the_next(
    room_address: Callable[[str], str], peers: Peers
) -> None:
    address = room_address("ipc")
    async with consensus.host(address, heartbeat=10) as room:
        await _stopped_member(peers, address, room)
        with trio.move_on_after(0.1):
            await room.poll("cut short", timeout=600)
        with trio.fail_after(10):
            assert _timed_out(await room.poll("next", timeout=0.2))


@pytest.mark.deadline(40)
async def test_a_poll_whose_members_left_while_it_was_sent_ends_at_once(
    room_address: Callable[[str], str], peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The round completed while its survey was sent (its only member went, and the wake
    found no reader yet): the reader looks before its first wait, so the poll ends at once
    rather than at its deadline (``Surveying.ask``)."""
    address = room_address("ipc")
    async with consensus.host(address, heartbeat=10) as room:
        await _stopped_member(peers, address, room)
        surveyor = room._surveyor
        send = surveyor._send_message

        async def send_then_leave(header: bytes, data: bytes, operation: str) -> None:
            await send(header, data, operation)
            room._protocol.rounds.left(["mute"])  # what the host does for a member gone...
            room._surveying.wake()  # ...and its wake, with no reader of this round yet

        monkeypatch.setattr(surveyor, "_send_message", send_then_leave)
        with trio.fail_after(10):  # without the look before the first wait: 600 s
            result = await room.poll("gone", timeout=600)
        assert result.left == result.missing == {"mute"} and not result.answers  # (missing: left included)


async def test_a_wait_on_survey_replies_ends_when_woken(address: Callable[[str], str]) -> None:
    """``SurveyReplies.wake`` ends a pending wait: every reader of the surveyor looks again (one
    waits on NNG's descriptor, the other behind it), and the surveys stay open."""
    addr = address("inproc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r"),
    ):
        await boss.wait_for_peers(1)
        first = await boss.survey(1, timeout=30)
        second = await boss.survey(2, timeout=30)
        woken: list[int] = []

        async def wait(replies: patterns.SurveyReplies) -> None:
            await replies.wait()
            woken.append(replies.id)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, first)
            nursery.start_soon(wait, second)
            await trio.testing.wait_all_tasks_blocked()
            assert woken == []
            first.wake()
        assert sorted(woken) == sorted([first.id, second.id])
        assert not first.done and not second.done
        first.close()
        second.close()


async def test_a_wake_with_nobody_waiting_changes_nothing(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Surveyor(listen=addr, name="boss") as boss, patterns.Respondent(dial=addr, name="r") as resp:
        await boss.wait_for_peers(1)
        replies = await boss.survey("q", timeout=30)
        replies.wake()

        async def answer() -> None:
            survey = await resp.receive()
            await survey.reply("a")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            got: list[patterns.Envelope] = []
            while not got:
                await replies.wait()
                got = replies.take()
        assert [reply.body for reply in got] == ["a"]
        replies.close()


# A departure wakes the reader the same way (Surveying.wake): tests/test_rooms.py,
# test_member_killed_mid_poll_is_missing_without_waiting.
