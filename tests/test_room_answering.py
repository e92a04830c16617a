"""How a member answers with async handlers, in one process: one that answers at once (no
task, no cancel scope of its own), one that waits inside a cancel scope of its own, and one
that waits past its deadline; a member keeps answering after each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

import consensus


async def at_once(question: Any) -> Any:
    return question


async def own_scope(question: Any) -> Any:
    with trio.move_on_after(0.01):  # the handler's scope is open when it first waits
        await trio.sleep(10)
    await trio.lowlevel.checkpoint()
    return f"{question}!"


async def too_slow(question: Any) -> Any:
    await trio.sleep(10)
    return question


async def swallows(question: Any) -> Any:
    try:
        await trio.sleep(10)
    except trio.Cancelled:  # bad manners, but its answer is still sent
        return "late but here"
    return question


async def test_async_handlers_that_wait_or_not_keep_their_deadlines(
    room_address: Callable[[str], str],
) -> None:
    address = room_address("ipc")
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_poll=at_once) as ann,
        consensus.join(address, name="bob", on_poll=own_scope),
        consensus.join(address, name="cy", on_poll=too_slow, handler_timeout=0.2),
        consensus.join(address, name="dee", on_poll=swallows, handler_timeout=0.2),
    ):
        await room.wait_for_members(4)
        for question in ("q1", "q2", "q3"):
            result = await room.poll(question, timeout=5)
            assert result.answers == {"ann": question, "bob": f"{question}!", "dee": "late but here"}
            assert result.errors["cy"].type == "Timeout" and "too_slow" in result.errors["cy"].message
            assert result.elapsed < 3
        with trio.fail_after(5):  # counted once the send returns; the host can hear it first
            while ann.statistics().polls_answered < 3:
                await trio.sleep(0.01)
        assert ann.statistics().polls_answered == 3


async def test_a_member_whose_answers_have_no_shape_still_answers(
    room_address: Callable[[str], str], monkeypatch: Any
) -> None:
    """A name with no common form has no answer shape (``Respondent.shape`` refuses it): the
    member's answers then go the general way, with their value, not as an empty answer."""
    from patterns import Respondent

    real = Respondent.shape

    def no_answer_shape(self: Respondent, kind: str, **kwargs: Any) -> Any:
        if kind == "answer":
            raise ValueError(f"no frame of kind {kind!r} from {self.name!r} has a common form")
        return real(self, kind, **kwargs)

    monkeypatch.setattr(Respondent, "shape", no_answer_shape)
    address = room_address("ipc")
    async with (
        consensus.host(address) as room,
        consensus.join(address, name="ann", on_poll=at_once) as ann,
    ):
        await room.wait_for_members(1)
        result = await room.poll("q1", timeout=5)
        assert result.answers == {"ann": "q1"} and not result.errors
    assert ann.statistics().polls_answered == 1  # (counted once its send returned: closed by now)
