"""Members asking the host for a deliberation (member.deliberate): the call's wire form in
memory, then members in this process over ipc."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _rooms import ENDS, HEARTBEAT, wire
from test_deliberation import roundtable
from test_room_calls_cases import deliver, joined

import consensus
from consensus.decide.position import Position
from consensus.decide.rules import Majority, Plurality
from consensus.decide.until import decided, no_change, unanimous
from consensus.room import calls as C
from consensus.room.events import CallAnswered, CallRequested, Send
from consensus.room.host_protocol import HostProtocol


def test_a_deliberation_call_travels_with_its_arguments_and_its_result_comes_back() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    args = C.DeliberationArgs.of(
        4, ["NATS", "Redis"], [Majority(), Plurality()], [unanimous, "decided"], True
    )
    ident, frame = ann.call_frame(C.DELIBERATE_CALL, "best?", timeout=5, deliberation=args)
    (requested,) = deliver(host, ann, frame, 1)
    assert isinstance(requested, CallRequested) and not requested.call.problem
    assert requested.call.subject == "best?" and requested.call.deliberation == args
    assert [C.UNTIL[n] for n in args.until] == [unanimous, decided]
    result = roundtable()
    (out,) = host.calls.result(requested.call, result)
    assert isinstance(out, Send)
    (answered,) = ann.receive_control(wire(out.kind, "host", out.body), 0.1)
    assert isinstance(answered, CallAnswered) and answered.answer.call_id == ident
    assert answered.answer.deliberation == result


@pytest.mark.parametrize("change", [
    {"rounds": 0}, {"rounds": C.MAX_CALL_ROUNDS + 1}, {"rounds": "3"}, {"until": ["sometimes"]},
    {"until": "unanimous"}, {"options": [1]}, {"anonymous": 1}, {"rule": {"rule": "dictator"}},
])  # fmt: skip
def test_a_bad_deliberation_call_is_refused_with_its_reason(change: dict[str, Any]) -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    ann = joined(host, "ann", pipe=1)
    _, frame = ann.call_frame(C.DELIBERATE_CALL, "q", timeout=5, deliberation=C.DeliberationArgs())
    (refusal,) = host.receive_control(wire(C.CALL, "ann", frame.body | change), 1, 0.0)
    assert isinstance(refusal, Send)
    (answered,) = ann.receive_control(wire(refusal.kind, "host", refusal.body), 0.0)
    assert isinstance(answered, CallAnswered) and answered.answer.refused and host.counts["refused_calls"] == 1


def test_what_cannot_travel_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="takes only"):
        C.DeliberationArgs.of(3, None, None, [lambda rounds: True], False)
    with pytest.raises(ValueError, match="rounds"):
        C.DeliberationArgs.of(0, None, None, None, False)
    with pytest.raises(TypeError):
        C.DeliberationArgs.of(3, None, ["majority"], None, False)
    assert C.DeliberationArgs.of(2, None, Majority(), no_change, False).until == ("no_change",)


async def test_members_deliberate_through_the_host(room_address: Callable[[str], str]) -> None:
    address = room_address("ipc")

    async def nats(question: Any, number: int, others: Any, options: Any) -> Any:
        return Position("NATS", reason="queue groups")

    async def follower(question: Any, number: int, others: Any, options: Any) -> Any:
        shown = [seen.label for seen in others if seen.position.stance == "NATS"]
        return Position("NATS", persuaded_by=tuple(shown[:1])) if shown else Position("Redis")

    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_deliberate=nats) as ann,
        consensus.join(address, name="bob", on_deliberate=follower),
    ):
        await room.wait_for_members(2)
        result = await ann.deliberate("best transport?", rounds=4, timeout=10, until=[unanimous])
        assert result.stopped_by == "unanimous" and len(result.rounds) == 2
        assert result.final["bob"].changed and dict(result.influence) == {"ann": ("bob",)}
        assert room.statistics().calls == 1
    async with (
        consensus.host(address, member_calls=False) as room,
        consensus.join(address, name="ann", on_deliberate=nats) as ann,
    ):
        await room.wait_for_members(1)
        with pytest.raises(consensus.MemberCallRefused, match="member_calls=False"):
            await ann.deliberate("best transport?", timeout=5)
