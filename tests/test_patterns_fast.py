"""The per-message fast paths of ``patterns`` (issue 18) keep the slow paths' behaviour.

The envelope's own ``__init__`` (slots set through a mutable twin class) against a dataclass's;
the send descriptor asked for only when a send must wait on a full queue (a send with no peer
waits for the peer set instead, and close still wakes it); a full push queue still waits and
resumes; the respondent's reused aio across many replies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import trio
import trio.testing

import patterns
from patterns import Envelope
from patterns._envelope import received
from patterns._guard import FirstOpened, Opened


def test_the_envelope_is_built_and_compared_as_the_dataclass_was() -> None:
    by_position = Envelope("data", "ann", 7, {"x": 1}, 3, 1.5, None, 10, 20, b"k")
    by_keyword = Envelope(kind="data", sender="ann", id=7, body={"x": 1}, re=3, deadline=1.5)
    assert by_position == by_keyword  # size, weight, session: not compared
    assert hash(Envelope("k", "s", 1, "b", size=3)) == hash(Envelope("k", "s", 1, "b"))
    assert (by_position.size, by_position.weight, by_position.session) == (10, 20, b"k")
    assert (by_keyword.shm, by_keyword.size, by_keyword.weight, by_keyword.session) == (None, 0, 0, None)
    assert Envelope("k", "s", 1) == Envelope("k", "s", 1, None, None, None)
    assert dataclasses.replace(by_keyword, body=2).body == 2 and by_keyword.body == {"x": 1}
    assert (
        repr(by_keyword)
        == "Envelope(kind='data', sender='ann', id=7, body={'x': 1}, re=3, deadline=1.5, shm=None)"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_keyword.kind = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Envelope("data", "ann")  # type: ignore[call-arg]


def test_a_received_envelope_is_an_envelope_like_any_other() -> None:
    # What a decoder builds must be a plain, frozen Envelope, equal, hashed and replaced as
    # one built by keywords.
    got = received("data", "ann", 7, {"x": 1}, 3, 1.5, 40)
    built = Envelope(kind="data", sender="ann", id=7, body={"x": 1}, re=3, deadline=1.5)
    assert type(got) is Envelope and type(built) is Envelope and isinstance(got, Envelope)
    assert got == built and hash(Envelope("k", "s", 1)) == hash(received("k", "s", 1, None, None, None, 9))
    assert (got.shm, got.size, got.weight, got.session) == (None, 40, 40, None)
    assert repr(got) == repr(built)
    assert dataclasses.replace(got, session=b"k").session == b"k" and got.session is None
    for envelope in (got, built):
        with pytest.raises(dataclasses.FrozenInstanceError):
            envelope.body = 2  # type: ignore[misc]


def test_a_subclass_of_the_envelope_keeps_its_class() -> None:
    class Tagged(Envelope):  # __init__ sets the fields through the slots' descriptors
        pass

    tagged = Tagged("data", "ann", 7, b"x", size=5)
    assert type(tagged) is Tagged and (tagged.kind, tagged.body, tagged.size) == ("data", b"x", 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagged.kind = "other"  # type: ignore[misc]


def test_an_opened_frame_is_frozen_though_its_init_sets_the_slots_itself() -> None:
    # Opened's own __init__ writes through the slots' descriptors (82c0e3d): what a guard
    # vouched for (the sender a key speaks for, its kinds) must still not be changed after.
    opened = Opened(b"payload", b"kid", "ann", frozenset({"answer"}))
    assert opened == Opened(payload=b"payload", session=b"kid", owner="ann", kinds=frozenset({"answer"}))
    assert hash(opened) == hash(Opened(b"payload", b"kid", "ann", frozenset({"answer"})))
    assert (Opened(b"p", b"k").owner, Opened(b"p", b"k").kinds) == (None, None)
    assert dataclasses.replace(opened, owner="bob").owner == "bob" and opened.owner == "ann"
    first = FirstOpened(b"payload", b"kid", None, None, accepted=lambda: None)
    for frame in (opened, first):
        for name in ("payload", "session", "owner", "kinds"):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(frame, name, None)
            with pytest.raises(dataclasses.FrozenInstanceError):
                delattr(frame, name)
    assert (opened.payload, opened.session, opened.owner) == (b"payload", b"kid", "ann")


async def test_a_pair_that_waited_only_for_its_peer_never_asks_for_the_send_descriptor(
    address: Callable[[str], str],
) -> None:
    addr = address("ipc")
    async with patterns.Pair(dial=addr) as early, trio.open_nursery() as nursery:
        nursery.start_soon(early.send, "sent before anyone listened")
        await trio.testing.wait_all_tasks_blocked()
        async with patterns.Pair(listen=addr) as late:
            assert await late.receive() == "sent before anyone listened"
            for i in range(20):
                await early.send(i)
                assert await late.receive() == i
                await late.send(-i)
                assert await early.receive() == -i
        assert early._send_fd is None and late._send_fd is None  # NNG signals it per frame once it exists


async def test_a_send_waiting_for_a_peer_wakes_with_closed(address: Callable[[str], str]) -> None:
    caught: list[BaseException] = []
    async with patterns.Pair(dial=address("ipc")) as line, trio.open_nursery() as nursery:

        async def blocked() -> None:
            try:
                await line.send("nobody")
            except patterns.Closed as exc:
                caught.append(exc)

        nursery.start_soon(blocked)
        await trio.testing.wait_all_tasks_blocked()
        await line.aclose()
    assert len(caught) == 1 and "closed" in str(caught[0])


async def test_a_full_push_queue_waits_on_the_descriptor_and_resumes(address: Callable[[str], str]) -> None:
    addr = address("inproc")
    async with patterns.Push(listen=addr) as push, patterns.Pull(dial=addr) as pull:
        await push.wait_for_peers(1)
        sent = 0
        with trio.move_on_after(0.5):  # the puller reads nothing: NNG's queues fill up
            while True:
                await push.send(sent)
                sent += 1
        assert 0 < sent and push._send_fd is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push.send, "after the wait")
            got = [await pull.receive() for _ in range(sent + 1)]
        assert got == [*range(sent), "after the wait"]


async def test_a_respondent_answers_many_surveys_reusing_its_aio(address: Callable[[str], str]) -> None:
    addr = address("ipc")
    async with (
        patterns.Surveyor(listen=addr, name="boss") as boss,
        patterns.Respondent(dial=addr, name="r") as resp,
        trio.open_nursery() as nursery,
    ):
        await boss.wait_for_peers(1)

        async def answer() -> None:
            async for survey in resp:
                await survey.reply([survey.body, "ok"])

        nursery.start_soon(answer)
        for i in range(200):
            async with await boss.survey(i, timeout=5) as replies:
                reply = await replies.__anext__()
            assert reply.body == [i, "ok"] and reply.sender == "r"
        assert resp._spare_aio is not None
        stats = resp.statistics()
        assert stats.messages_received == 200 and stats.messages_sent == 200 and stats.surveys_open == 0
        nursery.cancel_scope.cancel()
