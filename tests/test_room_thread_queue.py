"""``ThreadReplies`` in one process with stand-in surveys (``consensus/room/thread_replies.py``).

What a real connection rarely shows on demand: a reply queued behind an earlier one on its
connection (``reply_threadsafe`` returns a function that waits), sent or lost when the
connection stays busy; and the deadline heap staying small while an early survey stays
pending and many later ones are answered by their threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import trio

from consensus.room import protocol as P
from consensus.room.member_protocol import MemberProtocol
from consensus.room.thread_replies import Away, Fate, Finished, ThreadReplies
from consensus.runtime.context import HandlerContext
from patterns import Envelope, Timeout


class StandIn:
    """An ``IncomingSurvey`` as a handler thread sees it: ``reply_threadsafe`` only."""

    def __init__(self, send: Callable[[], int | Callable[[], int] | None]) -> None:
        self._send = send

    def reply_threadsafe(self, value: Any, *, kind: str, ident: int, inline: bool = False) -> Any:
        return self._send()


class Books:
    """What the thread replies leave trio, and a way to wait for the n-th record."""

    def __init__(self) -> None:
        self.records: list[Finished] = []
        self.expired: list[Away] = []
        self._changed = trio.Event()

    def later(self, record: Finished) -> None:
        self.records.append(record)
        self._changed.set()

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` records came (left by queued replies: each wakes trio)."""
        while len(self.records) < count:
            self._changed = trio.Event()
            await self._changed.wait()


def member_with_polls(count: int) -> MemberProtocol:
    member = MemberProtocol(name="m", token=1, host_mesh="ipc:///h", on_poll=True, on_vote=True, refs=False)
    member._on_welcome(P.Welcome("m", 1, {"m": ""}, heartbeat=None, refs=True, observers=frozenset()))
    for key in range(1, count + 1):
        member.receive_survey(key, Envelope(kind=P.POLL, sender="host", id=key, body=P.poll_body(key)), 0.0)
    return member


def away(member: MemberProtocol, key: int, survey: StandIn, deadline: float) -> Away:
    ticket = member.ticket(key)
    assert ticket is not None
    return Away(ticket, survey, key, "echo", deadline)  # type: ignore[arg-type]


def queued_then_sent() -> Callable[[], int]:
    """A reply queued behind another, whose connection is free by the time it waits."""
    return lambda: 8


def echo(question: Any) -> Any:
    return question


CONTEXT = HandlerContext("poll", "host")


async def test_a_reply_queued_behind_another_is_booked_once_it_leaves() -> None:
    member, books, free = member_with_polls(1), Books(), threading.Event()

    def queued() -> Callable[[], int]:
        def wait() -> int:  # the handler's thread waits here, never trio
            free.wait(10)
            return 42

        return wait

    limiter = trio.CapacityLimiter(2)
    replies = ThreadReplies(limiter, books.later, books.expired.append)
    assert replies.start(away(member, 1, StandIn(queued), trio.current_time() + 30), echo, (1,), CONTEXT, trio.current_time())
    free.set()
    await books.wait_for(1)
    (record,) = books.records
    assert (record.fate, record.counter, record.size) == (Fate.SENT, "polls_answered", 42)
    assert limiter.borrowed_tokens == 0 and not books.expired


async def test_a_queued_reply_whose_connection_stays_busy_is_lost_not_sent() -> None:
    member, books = member_with_polls(1), Books()

    def busy() -> Callable[[], int]:
        def wait() -> int:
            raise Timeout("reply to survey 1 from a handler thread: the connection stayed busy")

        return wait

    limiter = trio.CapacityLimiter(2)
    replies = ThreadReplies(limiter, books.later, books.expired.append)
    assert replies.start(away(member, 1, StandIn(busy), trio.current_time() + 30), echo, (1,), CONTEXT, trio.current_time())
    await books.wait_for(1)
    (record,) = books.records
    assert record.fate is Fate.LOST  # counted by the member as replies_lost, not as closed
    assert limiter.borrowed_tokens == 0


async def test_the_deadline_heap_stays_small_behind_a_pending_survey() -> None:
    answered = 300
    member, books, release = member_with_polls(answered + 1), Books(), threading.Event()

    def stuck(question: Any) -> Any:
        release.wait(10)
        return question

    limiter = trio.CapacityLimiter(4)
    replies = ThreadReplies(limiter, books.later, books.expired.append)
    now = trio.current_time()
    survey = StandIn(queued_then_sent)
    # The earliest deadline stays pending: every later entry sits behind it in the heap.
    assert replies.start(away(member, 1, survey, now + 60), stuck, (1,), CONTEXT, trio.current_time())
    for key in range(2, answered + 2):
        while not replies.start(away(member, key, survey, now + 120), echo, (key,), CONTEXT, trio.current_time()):
            await books.wait_for(len(books.records) + 1)  # every thread busy: one comes back first
    await books.wait_for(answered)
    replies.settle()
    assert not release.is_set() and len(books.records) == answered  # the first is still pending
    assert len(replies._due) <= 16, "entries claimed by their threads must not pile up behind the first"
    release.set()
    await books.wait_for(answered + 1)
    replies.settle()
    assert replies._due == [] and limiter.borrowed_tokens == 0
    assert all(r.fate is Fate.SENT for r in books.records) and not books.expired
