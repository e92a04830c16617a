"""How the host asks its members a round's survey and reads their replies: the driver part.

:class:`Surveying` sends the survey a round opened (``Rounds.open_poll`` and friends), then
reads the replies in the caller's own task, a batch per wake-up (``SurveyReplies.take_fields``),
handing each batch to ``Rounds.take_fields`` (replies as fields, no envelope) until the round is complete or its deadline passes. Only
when replies may still come late (somebody has not answered) does a background task take
over, counting late replies until the survey's ``late_window`` ends.

Reading in the caller's task, instead of a reader task that wakes the caller, saves a task
start and a pass of trio's scheduler per round; members leaving (``Rounds.left``, told by the
room's control path) wake the reading caller through :meth:`Surveying.wake`.

A round's deadline is kept by one task of the room (:meth:`Surveying._alarms`), which wakes
the round's reader when it passes (``SurveyReplies.wake``), not by a cancel scope per round:
a scope with a deadline cost about 30 Python calls a poll (its registration with trio's
deadlines, twice), a tenth of the host's calls in a poll of 8 members. The alarm sleeps until
the earliest deadline of the rounds being read; polls in a row, each with the same timeout,
only push it further, so it wakes about once per timeout, and is re-armed only when a round
with an earlier deadline comes. A reader looks at the time before each wait (the alarm may
have gone off while it was running), so no deadline is missed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import trio

from consensus.room import protocol as P
from consensus.room.events import Send
from consensus.room.rounds import Rounds, Taken
from consensus.runtime.logs import RateLimited
from patterns import HOLE, Closed, Fields, Shape, Surveyor, SurveyReplies

__all__ = ["Surveying"]

log = logging.getLogger("consensus.room")
hostile = RateLimited(log)  # replies that could not be used: one line every 10 s at most


class Surveying:
    """The surveys one room has under way, and the tasks that read their late replies."""

    def __init__(self, surveyor: Surveyor, rounds: Rounds, room: str, late_window: float) -> None:
        self._surveyor = surveyor
        self._rounds = rounds
        self._room = room
        self.late_window = late_window
        # The rounds whose caller reads now, by key: their deadline and their replies.
        self._reading: dict[int, tuple[float, SurveyReplies]] = {}
        self._alarm: trio.CancelScope | None = None  # the alarm's sleep, once it runs
        self._nursery: trio.Nursery | None = None
        self.now: Callable[[], float] = trio.current_time
        """trio's clock, read for the rounds (from :meth:`start` on, through the clock object
        itself: one Python call a reading instead of the three of ``trio.current_time``)."""
        self.poll_shape: Shape | None = None
        """The shape of the room's polls (the members read them from theirs): :meth:`ask`
        writes a poll's question into it (``Surveyor.survey``'s ``shape``), not through the
        common writer's walk of its body; None for a room name with no common form."""
        try:
            self.poll_shape = surveyor.shape(P.POLL, body=P.poll_body(HOLE), scalars=True)
        except ValueError:
            pass
        # With a secret, a member's answers are read from the shape its members write them in
        # (``Answerer``), its name known from its key before a byte is read.
        surveyor.expect_replies(P.ANSWER, body=P.answer_body(HOLE), scalars=True)

    def start(self, nursery: trio.Nursery) -> None:
        """The rounds' deadlines are kept, and late replies read, in ``nursery`` from now on."""
        self._nursery = nursery
        self.now = trio.lowlevel.current_clock().current_time
        nursery.start_soon(self._alarms)

    def wake(self) -> None:
        """A round may have completed without a reply (members left): its caller looks again."""
        for _, replies in self._reading.values():
            replies.wake()

    async def _alarms(self) -> None:
        """Wake each round's reader once its deadline passes (module docstring); runs until
        the room closes."""
        now = trio.current_time()
        while True:
            earliest = min((end for end, _ in self._reading.values() if end > now), default=math.inf)
            with trio.CancelScope(deadline=earliest) as self._alarm:
                await trio.sleep_forever()
            now = trio.current_time()
            for end, replies in self._reading.values():
                if end <= now:
                    replies.wake()  # it sees the time and ends its round

    async def ask(self, key: int, frames: list[Send], timeout: float, *, shape: Shape | None = None,
                  hole: Any = None) -> SurveyReplies | None:  # fmt: skip
        """Send round ``key``'s survey (if any) and feed its replies to the rounds until the
        round completes or ``timeout``; replies that may still come are read in the background.
        ``shape``: the survey's frame is written from it with ``hole`` in its hole (its body
        is ``shape.fill(hole)``: :attr:`poll_shape` and a poll's question)."""
        if not frames:
            return None
        (frame,) = frames
        try:
            replies = await self._surveyor.survey(frame.body, kind=frame.kind, timeout=timeout, linger=self.late_window,
                                                  inline=frame.inline, shape=shape, hole=hole)  # fmt: skip
        except BaseException:
            self._rounds.abandon(key)
            raise
        rounds, end, now = self._rounds, replies.deadline - self.late_window, self.now
        self._reading[key] = (end, replies)
        alarm = self._alarm
        if alarm is not None and end < alarm.deadline:
            alarm.deadline = end  # an earlier deadline than the alarm's (rare: see above)
        exhausted = False
        # The survey has just gone out: no reply to it can be queued yet, so the first look is
        # the wait, not a take (a failing receive a poll); only the round completing while it
        # was sent (members left, whose wake() found no reader yet) ends it before.
        waiting = not rounds.complete(key)
        try:
            while waiting:
                try:
                    await replies.wait()  # a reply, wake() or the alarm
                except Closed:  # the room is closing: the round ends with what it has
                    exhausted = True
                    break
                batch = replies.take_fields()  # (no Envelope for a small common reply)
                at = now()  # once a batch: the answers' latencies, and the deadline
                if batch:
                    fields = iter(batch)
                    try:  # (_use, inline: a call less a batch)
                        taken = rounds.take_fields(key, fields, at)
                    except Exception:  # no reply may close the room (logged with its traceback and sender)
                        log.exception("room %r: a reply could not be used", self._room)
                        taken = self._use(key, fields, at)  # the rest of the batch
                    else:
                        if taken.ignored:
                            self._ignored(taken)
                    if taken.complete or taken.exhausted:
                        exhausted = taken.exhausted
                        break
                elif rounds.complete(key):  # members left (wake())
                    break
                if at >= end:
                    break
        finally:
            del self._reading[key]
            rounds.finish(key)  # from now on a reply is late (also if we were cancelled)
            if not exhausted:
                exhausted = not self._read_later(key, replies)
            if exhausted:
                replies.close()
                rounds.replies_done(key)
        return replies

    def _read_later(self, key: int, replies: SurveyReplies) -> bool:
        """Count round ``key``'s late replies in the background; False if the room is gone."""
        assert self._nursery is not None
        try:
            self._nursery.start_soon(self._read_late, key, replies)  # outlives this call
        except RuntimeError:  # the room's nursery has closed: nobody will count them
            return False
        return True

    def _use(self, key: int, replies: Iterator[Fields], now: float) -> Taken:
        """Count the replies ``replies`` yields (their fields), all received by ``now``, into
        round ``key``; what could not be used is logged, never raised."""
        while True:
            try:
                taken = self._rounds.take_fields(key, replies, now)
            except Exception:  # no reply may close the room (logged with its traceback and sender)
                log.exception("room %r: a reply could not be used", self._room)
                continue  # with the rest of the batch
            if taken.ignored:
                self._ignored(taken)
            return taken

    def _ignored(self, taken: Taken) -> None:
        for reason in taken.ignored:
            hostile.warning("reply", "room %r ignored a reply: %s", self._room, reason)

    async def _read_late(self, key: int, replies: SurveyReplies) -> None:
        """Count the replies to round ``key`` that come after it ended, until the late window closes."""
        try:
            with trio.move_on_at(replies.deadline):
                while not replies.done:
                    batch = replies.take_fields()
                    if batch and self._use(key, iter(batch), self.now()).exhausted:
                        return  # nobody left who could still answer, even late
                    await replies.wait()
        except Closed:
            pass  # the room is closing
        finally:
            replies.close()
            self._rounds.replies_done(key)
