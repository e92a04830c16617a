"""The host's heartbeats and close in memory: when a member counts its host lost, back or
gone for good, by the rules of MemberProtocol (no clock: the test passes the time)."""

from __future__ import annotations

import pytest
from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import given
from hypothesis import strategies as st

from consensus.room import protocol as P
from consensus.room.events import Decline, HostChanged, HostClosed, Send
from consensus.room.host_protocol import HostProtocol
from consensus.room.member_protocol import HOST_TIMEOUT_BEATS, MemberProtocol, MemberState


def joined(host: HostProtocol, *, host_timeout: float | None = None, at: float = 0.0) -> MemberProtocol:
    member = MemberProtocol(name="ann", token=1, host_mesh=ENDS.mesh, on_poll=True, on_vote=True,
                            host_timeout=host_timeout)  # fmt: skip
    member.set_mesh("ipc:///tmp/room-test.m-ann")
    frame = member.join_frame()
    for out in host.receive_control(wire(frame.kind, "ann", frame.body), 1, at):
        if isinstance(out, Send):
            assert not any(
                isinstance(o, HostChanged)
                for o in member.receive_control(wire(out.kind, "host", out.body), at)
            )
    assert member.state is MemberState.JOINED and member.host_connected
    return member


def test_a_silent_host_is_lost_after_host_timeout_and_back_at_its_next_frame() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    member = joined(host)
    assert member.host_timeout == HOST_TIMEOUT_BEATS * HEARTBEAT
    beat = host.beat_frame()
    assert beat.kind == P.BEAT and beat.body == {"heartbeat": HEARTBEAT}
    assert member.receive_control(wire(beat.kind, "host", beat.body), 3.0) == []
    assert member.next_host_check(3.0) > 3.0 + member.host_timeout
    assert member.check_host(3.0 + member.host_timeout) == []  # not *more* than the timeout yet
    (lost,) = member.check_host(3.0 + member.host_timeout + 0.01)
    assert lost == HostChanged(False, f"no word from the host for {member.host_timeout:g} s")
    assert not member.host_connected and member.check_host(100.0) == []  # said once
    (back,) = member.receive_control(wire(beat.kind, "host", beat.body), 101.0)
    assert (
        isinstance(back, HostChanged)
        and back.connected
        and member.host_connected
        and member.state is MemberState.JOINED
    )


def test_a_closed_connection_loses_the_host_at_once() -> None:
    member = joined(HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT), host_timeout=30)
    (lost,) = member.host_disconnected(0.5)
    assert isinstance(lost, HostChanged) and not lost.connected and "connection" in lost.reason
    assert member.host_disconnected(0.6) == []


def test_close_ends_the_membership_and_later_frames_are_ignored() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    member = joined(host)
    close = host.close_frame("maintenance")
    (closed,) = member.receive_control(wire(close.kind, "host", close.body), 1.0)
    assert closed == HostClosed("maintenance") and member.state is MemberState.CLOSED
    assert member.receive_control(wire(close.kind, "host", close.body), 1.1) == []  # sent a few times
    roster = host.roster_frame()
    assert member.receive_control(wire(roster.kind, "host", roster.body), 1.2) == []
    assert member.receive_survey(7, wire(P.POLL, "host", P.poll_body("q")), 1.3) == [Decline(7)]
    assert not member.host_connected


def test_close_before_the_welcome_declines_the_kept_surveys() -> None:
    member = MemberProtocol(name="ann", token=1, host_mesh=ENDS.mesh, on_poll=True, on_vote=True)
    assert member.receive_survey(1, wire(P.POLL, "host", P.poll_body("q")), 0.0) == []
    out = member.receive_control(wire(P.CLOSE, "host", {"reason": 3}), 0.1)  # a bad reason: a default one
    assert out == [HostClosed("the host closed the room"), Decline(1)]


@given(st.lists(st.tuples(st.sampled_from(["beat", "check", "drop"]), st.floats(0, 5)), max_size=30))
def test_host_connected_follows_a_naive_model(steps: list[tuple[str, float]]) -> None:
    """Connected iff the last event was a frame, or a check within the timeout of the last frame."""
    member = joined(HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT), host_timeout=2.0)
    now, heard, connected = 0.0, 0.0, True
    for action, delay in steps:
        now += delay
        if action == "beat":
            events = member.receive_control(wire(P.BEAT, "host", P.beat_body(1.0)), now)
            heard, was, connected = now, connected, True
        elif action == "check":
            events = member.check_host(now)
            was, connected = connected, connected and now - heard <= 2.0
        else:
            events = member.host_disconnected(now)
            was, connected = connected, False
        assert member.host_connected == connected
        reason = events[0].reason if events and isinstance(events[0], HostChanged) else ""
        assert events == ([] if was == connected else [HostChanged(connected, reason)])


def test_host_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemberProtocol(name="ann", token=1, host_mesh=ENDS.mesh, on_poll=True, on_vote=True, host_timeout=0)
