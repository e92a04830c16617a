"""Plain ``on_poll``/``on_vote`` handlers whose reply leaves from the thread that computed it.

The trio path crosses threads twice before a plain handler's reply leaves: trio wakes a
worker thread to run the handler, the worker wakes trio, and trio encodes and sends. Here
trio prepares, before the hand-off, all the reply needs: the protocol's
:class:`~consensus.room.member_surveys.ReplyTicket` (frozen: the survey as parsed, the
voter, the signing identity, ``inline``), the reply's envelope id and the handler's
deadline (:class:`Away`). A thread of the run's handler crew (:mod:`consensus.runtime.crew`:
the handlers of a burst, eight members' of one poll say, for one wake-up at the end of
trio's batch) runs the handler, builds the frame (:meth:`ReplyTicket.reply`, pure) and
sends it on the survey's NNG context (:meth:`patterns.IncomingSurvey.reply_threadsafe`);
an asyncio handler of the bridge does the same on its loop, started in the same way
(``batched``). The books (the protocol's counter, the socket's, the context back to its
pool, the handler thread's token) reach trio afterwards, off the critical path
(:meth:`ThreadReplies.settle`).

Who answers, exactly once: a survey handed to a thread is *pending* until the thread
claims it (its handler returned) or trio does (its deadline passed: trio answers
``Timeout`` as it always did, and the thread's late answer is dropped). Both claim by
taking the key out of ``pending`` under the one lock; trio never answers or declines a
survey the thread claimed, and the thread never touches one trio claimed.

Thread safety: the protocol, the limiter, the deadlines and the nursery are touched in
trio's thread only. The worker thread touches its :class:`Away` (frozen, built by trio
before the hand-off; its :class:`IncomingSurvey` only through ``reply_threadsafe``, after
its claim), the handler and its value, the pure frame builder, NNG's context (thread-safe
by NNG's contract; a closed one answers ``ECLOSED``, never a crash), and the fields behind
the lock. A reply that leaves at once is recorded in the same critical section as its
claim and send, and :meth:`settle` takes the lock, so statistics read in trio (which
settle first) count every reply that has arrived anywhere; only a reply queued behind an
earlier one on the same connection is waited for, and recorded, outside the lock.

Settling: a sent reply's record waits for trio's next look (the end of the scheduler batch
that hands off the next surveys, after they are handed over; a hand-off short of a thread
token; the deadline watcher; ``Member.statistics()``), costing trio no wake-up; a record
that needs trio at once (a value only trio can send, a dropped reply, a late one whose
token must come back) schedules :meth:`settle` with ``run_sync_soon``.
"""

from __future__ import annotations

import contextvars
import functools
import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import trio

from consensus.failure import Failure
from consensus.room.member_surveys import ReplyTicket
from consensus.runtime.batch import at_batch_end
from consensus.runtime.context import HandlerContext, set_current
from consensus.runtime.crew import Crew, crew
from consensus.runtime.handback import Handback, ignore_outcome
from consensus.runtime.handlers import Elsewhere, Handler
from patterns import Closed, IncomingSurvey, MessageTooLarge, Timeout

__all__ = ["Away", "Fate", "Finished", "ThreadReplies"]

log = logging.getLogger("consensus.room")

COMPACT_SLACK = 8  # the deadline heap is rebuilt when over twice the surveys pending plus this


@dataclass(frozen=True, slots=True, eq=False)  # a limiter holder: hashed by identity
class Away:
    """One survey handed to a thread, as trio prepared it."""

    ticket: ReplyTicket
    survey: IncomingSurvey
    ident: int  # the reply's envelope id
    name: str  # the handler's (worked out once per handler), for the Timeout error and the logs
    deadline: float  # trio's clock: then trio answers Timeout, unless the thread claimed it

    @property
    def key(self) -> int:
        return self.ticket.key


class Fate(Enum):
    SENT = "sent"  # the thread sent the reply
    DROPPED = "dropped"  # the socket closed: nobody waits for it
    LOST = "lost"  # NNG could not send it (its connection stayed busy past the deadline): the host waited
    TRIO = "trio"  # trio sends it (a value with no small plain frame, one too large)
    AWAIT = "await"  # the handler returned an awaitable: trio awaits it, then replies
    LATE = "late"  # trio answered first (the deadline passed): only the token comes back


@dataclass(frozen=True, slots=True)
class Finished:
    """A handler's reply as the thread left it for trio."""

    away: Away
    fate: Fate
    outcome: tuple[bool, Any] | None = None  # TRIO, AWAIT
    counter: str = ""  # SENT: the protocol's counter
    size: int = 0  # SENT: bytes


class ThreadReplies:
    """Runs one member's plain poll and vote handlers in threads that send their own replies."""

    def __init__(self, limiter: trio.CapacityLimiter, later: Callable[[Finished], None],
                 expired: Callable[[Away], None]) -> None:  # fmt: skip
        """``later(finished)`` (in trio) acts on what a thread left to trio (TRIO, AWAIT,
        DROPPED, SENT: the books); ``expired(away)`` answers a survey whose deadline trio claimed."""
        self._limiter = limiter
        self._later = later
        self._expired = expired
        self._due: list[tuple[float, int]] = []  # trio's: (deadline, key) of surveys handed off
        self._scope: trio.CancelScope | None = None  # the watcher's sleep, until the earliest deadline
        self._cancels: dict[Away, Callable[[], None]] = {}  # trio's: the runners' handlers under way
        self._handback: Handback[Finished] = Handback(self.settle)
        self._lock = self._handback.lock
        self._pending: dict[int, Away] = {}  # behind the lock
        self._crew: Crew | None = None  # the trio run's handler threads, from the first hand-off
        self._settling = False  # a settle() waits for the end of trio's batch

    # ------------------------------------------------------------------ trio's side
    def start(self, away: Away, handler: Handler, args: tuple[Any, ...], context: HandlerContext, now: float,
              runner: Elsewhere | None = None) -> bool:  # fmt: skip
        """Hand one survey to a thread, or with ``runner`` (an asyncio handler of the bridge)
        to the runner's loop, whose thread sends; False when the trio path must take it (no
        free handler thread: the trio path waits for one, or says ``Busy``; the loop closed)."""
        if runner is None:
            try:
                self._limiter.acquire_on_behalf_of_nowait(away)
            except trio.WouldBlock:  # the tokens of replies sent since the last look come back first
                self.settle()
                try:
                    self._limiter.acquire_on_behalf_of_nowait(away)
                except trio.WouldBlock:
                    return False
        self._handback.bind()
        copied = contextvars.copy_context()  # as trio.to_thread does: the handler sees our contextvars
        with self._lock:
            self._pending[away.key] = away
        if runner is not None:
            copied.run(set_current, context)
            try:
                self._cancels[away] = runner.submit(args, copied, functools.partial(self._done, away), batched=True)
            except RuntimeError:  # its loop is closed: the trio path says so to the host
                with self._lock:
                    del self._pending[away.key]
                return False
        else:
            if self._crew is None:
                self._crew = crew()
            self._crew.submit(functools.partial(copied.run, self._work, away, handler, args, context), now)
        if away.deadline < math.inf:
            self._rearm(away.deadline)
            heapq.heappush(self._due, (away.deadline, away.key))
        if not self._settling:  # the books of earlier replies: once the burst is handed over
            self._settling = True
            at_batch_end(self._settle_after_burst, last=True)
        return True

    def _settle_after_burst(self) -> None:
        self._settling = False
        self.settle()

    def settle(self) -> None:
        """Take the finished replies into trio's books (trio's thread)."""
        with self._lock:
            records = self._handback.take_locked()
            pending = self._pending
            while self._due and self._due[0][1] not in pending:  # claimed by its thread: no deadline to keep
                heapq.heappop(self._due)
            if len(self._due) > 2 * len(pending) + COMPACT_SLACK:
                # Claimed entries behind a pending earlier one would stay until it goes: once
                # they are over half the heap, keep only the pending (amortised O(1) each).
                self._due = [entry for entry in self._due if entry[1] in pending]
                heapq.heapify(self._due)
        for record in records:
            if self._cancels.pop(record.away, None) is None:  # a thread's, not a runner's: its token
                self._limiter.release_on_behalf_of(record.away)
            if record.fate is not Fate.LATE:
                self._later(record)

    async def watch(self) -> None:
        """Answer ``Timeout`` for the surveys still pending at their deadline (trio's task;
        runs until cancelled: then the handlers still running send nothing)."""
        try:
            while True:
                with trio.CancelScope(deadline=self._due[0][0] if self._due else math.inf) as self._scope:
                    await trio.sleep_forever()
                self._scope = None
                self.settle()
                now = trio.current_time()
                while self._due and self._due[0][0] <= now:
                    _, key = heapq.heappop(self._due)
                    with self._lock:
                        away = self._pending.pop(key, None)
                    if away is not None:  # trio's now: the thread's answer, when it comes, is dropped
                        self._expired(away)
                        self._cancel(away)
        finally:
            with self._lock:  # the membership ends: nobody answers the surveys still pending
                self._pending.clear()
            for away in list(self._cancels):  # asyncio handlers still running are cancelled, as trio's would be
                self._cancel(away)

    def _cancel(self, away: Away) -> None:
        """Cancel a runner's handler trio stopped waiting for (its record still comes back)."""
        cancel = self._cancels.get(away)
        if cancel is not None:
            try:
                cancel()
            except RuntimeError:  # its loop is closed: nothing runs there any more
                pass

    def _rearm(self, deadline: float) -> None:
        if self._scope is not None and deadline < self._scope.deadline:
            self._scope.deadline = deadline

    # ------------------------------------------------------------------ the worker thread's side
    def _work(self, away: Away, handler: Handler, args: tuple[Any, ...], context: HandlerContext) -> None:
        set_current(context)  # this thread's context copy
        try:
            outcome: tuple[bool, Any] = (True, handler(*args))
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the host's answer
            log.info("handler %s failed: %r", away.name, exc)
            outcome = (False, Failure.from_exception(exc))
        except BaseException as exc:  # SystemExit, say: the host still hears, the thread still ends with it
            self._reply(away, (False, Failure.from_exception(exc)))
            raise
        if outcome[0] and hasattr(outcome[1], "__await__"):  # a plain function that returned a coroutine
            with self._lock:
                mine = self._pending.pop(away.key, None) is not None
            self._handback.leave(Finished(away, Fate.AWAIT if mine else Fate.LATE, outcome))
            return
        self._reply(away, outcome)

    def _done(self, away: Away, ok: bool, result: Any) -> None:
        """A runner's handler ended (on its loop's thread): reply from here."""
        if not ok:
            log.info("handler of survey %d failed: %r", away.key, result)
            result = Failure.from_exception(result)
        self._reply(away, (ok, result), on_loop=True)

    def _reply(self, away: Away, outcome: tuple[bool, Any], *, on_loop: bool = False) -> None:
        frame, counter = away.ticket.reply(outcome)
        waiting: Callable[[], int] | None = None
        with self._lock:
            if self._pending.pop(away.key, None) is None:
                fate = Fate.LATE  # trio answered Timeout: this answer is not sent
            else:
                try:
                    sent = away.survey.reply_threadsafe(frame.body, kind=frame.kind, ident=away.ident,
                                                        inline=frame.inline)  # fmt: skip
                except Closed:
                    fate = Fate.DROPPED
                except MessageTooLarge:  # trio's path answers with the error
                    fate = Fate.TRIO
                except Timeout:  # NNG's: the connection stayed busy (the host hears nothing)
                    fate = Fate.LOST
                except Exception:  # NNG's failure (out of memory...): the reply is lost
                    log.exception("the reply to survey %d could not be sent", away.key)
                    fate = Fate.LOST
                else:
                    if isinstance(sent, int):
                        self._handback.note(Finished(away, Fate.SENT, counter=counter, size=sent))
                        return
                    fate = Fate.TRIO if sent is None else Fate.SENT
                    waiting = sent
        if waiting is None:
            self._handback.leave(Finished(away, fate, outcome))
        elif on_loop:  # an event loop must not wait: a thread does
            trio.lowlevel.start_thread_soon(functools.partial(self._wait, away, waiting, counter), ignore_outcome)
        else:
            self._wait(away, waiting, counter)

    def _wait(self, away: Away, waiting: Callable[[], int], counter: str) -> None:
        """A reply queued behind an earlier one on its connection: wait here, not in trio."""
        try:
            size = waiting()
        except Closed:
            self._handback.leave(Finished(away, Fate.DROPPED))
        except Exception:  # noqa: BLE001 - a busy connection past the deadline: the reply is lost
            self._handback.leave(Finished(away, Fate.LOST))
        else:
            self._handback.leave(Finished(away, Fate.SENT, counter=counter, size=size))
