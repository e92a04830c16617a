"""Asks made in plain threads (``consensus.blocking``) that read the line themselves while they wait.

Through the bridge, a blocking ask woke the trio thread to send it, trio was woken by the
answer and woke the caller: three wake-ups of sleeping threads (40-70 µs each here). Now
the caller's thread sends its ask itself (NNG's thread-safe send; an id of its
:class:`~consensus.hotline.ask_book.AskBook`, top bit set, so it never meets the
protocol's ids) and, while it waits, *reads the line itself*: it holds the *baton*,
``poll``s NNG's receive descriptor with the GIL released and takes frames with
non-blocking receives, so its answer wakes it directly. Trio's receive loop stands aside
meanwhile (:meth:`Reader.aside <consensus.hotline.reader.Reader.aside>`) and acts on the
frames the thread hands it, in order (values for ``receive()``, asks for ``on_ask``,
pings, answers to trio's own asks): one ``run_sync_soon`` per batch.

Who reads the line (:class:`Baton`):

* ``TRIO``: trio's receive loop, as for any line. A thread that asks then waits on its
  lock; trio hands it its answer as it reads it (:meth:`ThreadAsks.claim`) and, once no
  other thread waits, stands aside (``ASIDE``): so the first ask of a run of asks costs
  what it did before, the next ones read.
* ``ASIDE``: nobody; the next thread to ask takes the baton (``THREAD``). Trio looks once
  per :data:`~consensus.hotline.reader.LEASE`: if no thread asked during a whole lease it
  reads again (``TRIO``), so frames that come while no thread asks wait at most two
  leases. It reads again at once when the peer is gone (a reconnection's hello must be
  read). Giving the line back at the end of every ask would wake trio per ask: what made
  an earlier version of this slower than the lock under load.
* ``THREAD``: the holder reads until its own answer is in (or its time is up, or Ctrl-C).
  It hands the answers of the other threads' asks to them (their locks) and, on leaving,
  the baton to one of the threads still waiting (it reads from then on), or ``ASIDE``.
* ``CLOSED``: the line closed; trio waits (briefly) for the holder to leave before the
  socket closes, so no thread polls a closed descriptor.
* ``SERVED``: the line has a plain ``on_ask`` and the threads serving it read the line
  (:mod:`consensus.hotline.thread_serve`, which extends this class); an asking thread sends
  and waits on its lock, and the reading thread hands it its answer.

Thread safety: everything above, the table of open asks and the answers are behind the
``AskBook``'s lock. An answer is written once, under that lock, by whoever takes its ask
out of the table (a reader, a lost connection, the line closing), so whoever holds the lock
next sees it. A waiter is woken once: by its lock if it does not read (its answer, or the
baton handed to it), by the :attr:`ThreadAsks._wake` eventfd if it reads (its ask failed
from trio's side). Only the holder receives from the socket (the socket's receive
counters have one writer at a time, handed over under the lock). The protocol is trio's
alone: frames for it go through ``_into_trio``, and the peer's frames read by threads
count as hearing from it (told to trio at most every half heartbeat).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import trio

from consensus.hotline.ask_book import AskBook, send_ask
from consensus.hotline.events import Answer, LineState
from consensus.hotline.line import Hotline
from consensus.hotline.loop_asks import NOT_HERE
from consensus.hotline.protocol import LineProtocol
from patterns import Closed, Fields, MalformedMessage, Timeout

__all__ = ["Baton", "ThreadAsks", "attach", "attached"]

log = logging.getLogger("consensus.hotline")

BACKLOG: Final = 256
"""Events handed to trio that its receive loop has not acted on yet (values nobody
``receive()``s, say): past this many the reading thread gives the line back to trio and
waits on its lock, so a peer that floods is slowed as trio's own reader slows it
(``serve.QUEUE``) instead of filling memory."""
CLOSE_WAIT: Final = 2.0  # seconds trio waits, closing, for the thread reading the line to leave
POLL_MAX_MS: Final = 60_000  # one poll at most (poll takes a C int): a longer ask polls again
WAIT_MAX: Final = 3600.0  # likewise for a lock's wait (threading.TIMEOUT_MAX is finite)
_NVAL: Final = select.POLLNVAL | select.POLLERR


class Baton(enum.Enum):
    """Who reads the line of a :class:`ThreadAsks`."""

    TRIO = "trio's receive loop reads the line"
    ASIDE = "nobody reads the line: the next thread to ask will"
    THREAD = "a thread that asks reads the line"
    SERVED = "the threads serving a plain on_ask read the line (thread_serve); askers wait on their locks"
    CLOSED = "the line closed"


class _Waiter:
    __slots__ = ("answer", "done", "reads")

    def __init__(self) -> None:
        self.answer: Answer | None = None  # written once, under the book's lock
        self.reads = False  # it holds the baton (under the book's lock)
        self.done = threading.Lock()
        self.done.acquire()  # released once: its answer is in, or the baton was handed to it


def _record(waiter: _Waiter, answer: Answer) -> None:
    waiter.answer = answer


class ThreadAsks:
    """The asks of one line made from plain threads; made by :func:`attach` in trio."""

    def __init__(self, line: Hotline) -> None:
        self._pair = pair = line._link.pair
        self._ask_shape = line._link.ask_shape
        self._name = line.name
        self._what = f"<Hotline {line.name!r} {line.address}>"
        self._protocol = line._protocol
        self._reader = line._reader
        self._book: AskBook[_Waiter] = AskBook(_record)
        self._lock = self._book.lock
        self._token = trio.lowlevel.current_trio_token()
        self.baton = Baton.TRIO
        self._holder: _Waiter | None = None
        self._wanted = False  # a thread asked while trio read: stand aside once no thread waits
        self._takes = self._takes_seen = 0  # batons taken by threads, and as trio last looked
        self._for_trio: list[tuple[Fields, int]] = []  # frames read for trio, in order
        self._scheduled = False  # an _into_trio is on its way
        self._heard = False  # threads read the peer's frames since trio last looked
        self._tell_heard = 0.0  # the holder's: when next to tell trio (time.monotonic)
        self._half_heartbeat = line.heartbeat / 2
        self._left: threading.Event | None = None  # closing: set when the holder left
        self._full = False  # trio's backlog is full: threads stop reading until it drained
        self.yields = 0  # times a reading thread gave the line back for trio's backlog
        # Interrupts the holder's poll when trio fails its ask (lost, closed).
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._fd = pair.receive_descriptor
        self._poll = select.poll()  # (used by the holder only: one poll at a time)
        self._poll.register(self._fd, select.POLLIN)
        self._poll.register(self._wake, select.POLLIN)

    @property
    def takes(self) -> int:
        """How many times a thread took the line to read it while it asked."""
        return self._takes

    # ------------------------------------------------------------------ trio's side
    def changed(self, protocol: LineProtocol) -> None:
        failed = self._book.changed(protocol)
        if failed is not None:
            self.fail_all(*failed)
        if protocol.state is LineState.CLOSED:
            self._close()
        elif not protocol.connected:
            self._give_back()  # no peer: trio reads (the next hello); threads' asks take the trio path

    def _give_back(self) -> None:
        if self.reclaim(idle_only=False):
            self._reader.take_back()

    def fail_all(self, kind: str, why: str) -> None:
        for waiter in self._book.take_all(kind, why).values():
            self._signal(waiter)

    def drained(self) -> None:
        self._full = False

    def claim(self, fields: Fields, pipe: int) -> bool:
        taken = self._book.take(fields, pipe)
        if taken is None:
            return False  # trio's, or stale: the protocol says which
        self._protocol.heard(trio.current_time())
        self._signal(taken[0])
        return True

    def lend_now(self) -> bool:
        with self._lock:
            if not self._wanted or self.baton is not Baton.TRIO or self._full or self._book.first_waiting() is not None:
                return False
            self._wanted = False
            self.baton = Baton.ASIDE
            self._takes_seen = self._takes
        return True

    def reclaim(self, *, idle_only: bool = True) -> bool:
        with self._lock:
            if self.baton is not Baton.ASIDE:
                return False
            if idle_only and self._takes != self._takes_seen:
                self._takes_seen = self._takes
                return False
            self.baton = Baton.TRIO
        self._into_trio()  # what threads read for trio goes first
        return True

    def held_back(self) -> int:
        return self.yields

    def recall(self) -> None:
        pass  # (trio's asks take the line back by want_line, as from ASIDE)

    def relend(self) -> bool:
        return False

    def settle(self) -> int:
        return self._book.settle(self._protocol, self._pair.count_sent)

    def _into_trio(self) -> None:
        """The frames threads read for trio: into the protocol, then to the receive loop."""
        with self._lock:
            frames, self._for_trio = self._for_trio, []
            self._scheduled = False
            heard, self._heard = self._heard, False
        protocol, reader = self._protocol, self._reader
        reader.feed(frames, heard)
        if frames:  # a hello may connect the protocol now (else notify does, once its hello is out)
            self.changed(protocol)
        if reader.handed_over:
            if len(reader.handed_over) >= BACKLOG:
                self._full = True  # until the receive loop has acted on them all (drained)
            reader.wake_receiver()

    def _close(self) -> None:
        """The line closed (trio's thread, before the socket closes): wait for the holder."""
        with self._lock:
            if self.baton is Baton.CLOSED:
                return
            self.baton = Baton.CLOSED
            left = self._left = threading.Event() if self._holder is not None else None
        if left is not None:
            os.eventfd_write(self._wake, 1)
            if not left.wait(CLOSE_WAIT):
                log.warning("hotline %s closed while a thread still read it", self._name)
                return  # (its descriptor is left open: the thread may still poll it)
        os.close(self._wake)

    # ------------------------------------------------------------------ any thread
    def _signal(self, waiter: _Waiter) -> None:
        """Wake ``waiter``, whose answer was just recorded (it is out of the table)."""
        if waiter.reads:
            os.eventfd_write(self._wake, 1)  # it polls the line: interrupt that
        else:
            waiter.done.release()

    def _soon_in_trio(self, fn: Callable[[], None] | None = None) -> None:
        try:
            self._token.run_sync_soon(fn or self._into_trio)
        except trio.RunFinishedError:  # trio's thread ended: the line is gone
            pass

    def _pass_on(self) -> None:
        """The holder leaves (the lock is held): the baton to a thread still waiting, or aside."""
        self._holder = None
        if self.baton is Baton.CLOSED:
            if self._left is not None:
                self._left.set()
            return
        nxt = self._book.first_waiting()
        if nxt is None:
            self.baton = Baton.ASIDE
            if not self._book.connected:  # the peer is gone: trio must read its next hello
                self._soon_in_trio(self._give_back)
            return
        self._holder = nxt
        nxt.reads = True
        nxt.done.release()

    # ------------------------------------------------------------------ the caller's thread
    def ask(self, value: Any, timeout: float) -> Any:
        """:meth:`Hotline.ask` from this thread, or :data:`NOT_HERE` (take the trio path)."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        waiter, book = _Waiter(), self._book
        with self._lock:
            ask_id = book.register(waiter)
            if ask_id is None:
                return NOT_HERE  # trio waits for a peer, or says the line is closed or taken
            if self.baton is Baton.ASIDE:
                self.baton, self._holder, waiter.reads = Baton.THREAD, waiter, True
                self._takes += 1
            elif self.baton is Baton.TRIO:
                self._wanted = True
        deadline = time.monotonic() + timeout
        try:
            if not send_ask(book, self._pair, self._ask_shape, ask_id, value, timeout):
                if waiter.reads:
                    with self._lock:
                        self._pass_on()
                return NOT_HERE  # (out of the book already)
            answer = self._wait(waiter, ask_id, deadline)
        except BaseException:  # (Ctrl-C included) a later answer is stale; the baton goes on
            with self._lock:
                book.drop(ask_id, expired=True)
                if self._holder is waiter:
                    self._pass_on()
            raise
        if answer.kind == "timeout":
            raise Timeout(f"ask {ask_id} on {self._what}: no reply within {timeout} s")
        return Hotline._outcome(answer)

    def _wait(self, waiter: _Waiter, ask_id: int, deadline: float) -> Answer:
        closed = False
        while True:
            if waiter.reads:
                closed = self._read(waiter, deadline)
            else:
                remaining = deadline - time.monotonic()
                waiter.done.acquire(timeout=min(remaining, WAIT_MAX)) if remaining > 0 else waiter.done.acquire(False)
            with self._lock:
                answer = waiter.answer
                if answer is None:
                    if waiter.reads and self._full and self._holder is waiter:
                        self._yield(waiter)  # trio's backlog: wait for trio to read the answer
                        continue
                    if waiter.reads and not closed and time.monotonic() < deadline:
                        continue  # the baton was handed to it: read
                    self._book.drop(ask_id, expired=not closed)
                    answer = Answer(ask_id, "closed", "the line closed") if closed else Answer(ask_id, "timeout", None)
                if self._holder is waiter:
                    self._pass_on()
            return answer

    def _yield(self, me: _Waiter) -> None:
        """The holder gives the line back to trio (the lock is held); it waits on its lock now."""
        me.reads = False
        self._holder = None
        self.baton = Baton.ASIDE
        self._wanted = True  # (trio stands aside again once its backlog let it read the answer)
        self.yields += 1
        self._soon_in_trio(self._give_back)

    def _read(self, me: _Waiter, deadline: float) -> bool:
        """Read the line until ``me`` is answered or the time is up; True if the socket closed."""
        pair, book = self._pair, self._book
        taken = 0
        while me.answer is None and not self._full:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not self._woken(self._poll.poll(min(math.ceil(remaining * 1000), POLL_MAX_MS))):
                return True
            while me.answer is None and not self._full:
                try:
                    got = pair.receive_fields_nowait()
                except MalformedMessage as exc:
                    log.warning("hotline %s dropped a frame: %s", self._name, exc)
                    continue
                except Closed:
                    return True
                if got is None:
                    break
                taken += 1
                answered = book.take(got[0], got[1])
                if answered is None:
                    self._for_trio_soon(got)
                elif answered[0] is not me:
                    answered[0].done.release()  # (another thread's, which waits on its lock)
        if taken:
            now = time.monotonic()
            if now >= self._tell_heard:  # the peer is alive: trio's heartbeats learn it now and then
                self._tell_heard = now + self._half_heartbeat
                with self._lock:
                    self._heard = True
                    schedule, self._scheduled = not self._scheduled, True
                if schedule:
                    self._soon_in_trio()
        return False

    def _woken(self, ready: list[tuple[int, int]]) -> bool:
        """What a poll (the GIL released) returned: the eventfd emptied if it was set; False
        if the descriptor closed (cannot happen while the line is open)."""
        for which, flags in ready:
            if flags & _NVAL:
                return False
            if which == self._wake:
                try:
                    os.eventfd_read(self._wake)
                except BlockingIOError:
                    pass
        return True

    def _for_trio_soon(self, got: tuple[Fields, int]) -> None:
        with self._lock:
            self._for_trio.append(got)
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            self._soon_in_trio()


def attach(line: Hotline) -> ThreadAsks | None:
    """Let plain threads ask on ``line`` (trio's thread); None for a sealed line."""
    if line._link.pair.guard is not None:
        return None
    asks = ThreadAsks(line)
    line._reader.attach(asks)
    return asks


def attached(line: Hotline) -> ThreadAsks | None:
    foreign = line._reader.foreign
    return foreign if isinstance(foreign, ThreadAsks) else None
