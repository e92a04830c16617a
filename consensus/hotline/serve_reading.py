"""How the leader of a crew reads its lent line (:mod:`consensus.hotline.serve_crew` has the
roles: who leads, who runs a handler, who watches; docs/asyncio.md §4.10).

The leader ``poll``s NNG's receive descriptor (the GIL released) and takes frames with
non-blocking receives, at most :data:`DRAIN` per wake-up; it polls the crew's eventfd alone
instead while it must not read (trio's backlog is full, or ``QUEUE`` asks wait). Each frame
goes where it belongs:

* an ask for the handler becomes a :class:`~consensus.hotline.serve_crew.Job`, which
  :meth:`Crew._take <consensus.hotline.serve_crew.Crew._take>` gives to this thread (the
  leadership handed on or kept inline), queues, or refuses;
* an answer to an ask of one of this line's threads goes to that thread (its lock);
* every other frame (hellos, pings, values, answers to trio's asks and streams, malformed
  asks) goes to trio in order, one batch per wake-up (:class:`~consensus.hotline.thread_asks.ThreadAsks`'
  hand-over): the frames read here count as hearing the peer.

When trio asks on a trio line (``ThreadServer.recall``) the leader hands it the line, with
what it had read for trio first, and waits to be promoted again.

Thread safety: as :mod:`consensus.hotline.serve_crew` says; only the leader runs this.
"""

from __future__ import annotations

import logging
from typing import Final

from consensus.hotline import frames as f
from consensus.hotline.serve_crew import Crew, Job, Next
from consensus.hotline.thread_asks import Baton
from consensus.hotline.threaded import Ticket
from consensus.runtime.watch import Hand
from patterns import Closed, Fields, MalformedMessage

__all__ = ["DRAIN", "ReadingCrew"]

log = logging.getLogger("consensus.hotline")

DRAIN: Final = 64  # frames taken per wake-up at most, then the batch goes to trio


class ReadingCrew(Crew):
    """A :class:`~consensus.hotline.serve_crew.Crew` whose leader reads the line (as above)."""

    def _lead(self, hand: Hand) -> Job | Next:
        """Read the line until an ask for the handler comes (the leadership handed on: this
        thread runs it), or the line closes (STOP)."""
        pair, book, batch = self._pair, self._book, self._batch
        while True:
            if self._recall:
                return self._recalled(hand)
            quiet = self._full or self._stalled
            if not self._woken((self._poll_wake if quiet else self._poll).poll()):
                return self._leave(hand)
            if self.baton is not Baton.SERVED:
                return self._leave(hand)
            if quiet or self._recall:
                continue
            taken = 0
            while taken < DRAIN and not (self._full or self._stalled) and self.baton is Baton.SERVED:
                try:
                    got = pair.receive_fields_nowait()
                except MalformedMessage as exc:
                    log.warning("hotline %s dropped a frame: %s", self._name, exc)
                    continue
                except Closed:
                    return self._leave(hand)
                if got is None:
                    break
                taken += 1
                fields = got[0]
                kind = fields[0]
                try:
                    if kind == f.ASK:
                        job = self._job(got)
                        if job is not None:
                            if self._take(hand, job):
                                return job
                            continue  # it waits for a handler thread
                    elif kind in f.ANSWER_KINDS:
                        answered = book.take(fields, got[1])
                        if answered is not None:
                            answered[0].done.release()  # a thread's ask on this line (it waits on its lock)
                            continue
                except Exception:  # (a bug of ours) trio gets the frame, and the line (_fail)
                    batch.append(got)
                    raise
                batch.append(got)
            if taken:
                with self._lock:
                    tell = self._flush_locked()
                if tell:
                    self._soon_in_trio()

    def _job(self, got: tuple[Fields, int]) -> Job | None:
        fields, pipe = got
        try:
            value, stream = f.parse_ask(fields[2], fields[3])
        except ValueError:
            return None  # trio's protocol counts and logs it
        ticket = Ticket(fields[2], self._book.next_id(), pipe, stream, fields[1], lent=True)
        return Job(ticket, value, got)

    def _recalled(self, hand: Hand) -> Next:
        """(The leader.) Trio asks: it gets the line, what was read for it first; wait."""
        with self._lock:
            handed = self.baton is Baton.SERVED and self._recall
            if handed:
                self._recall, self._trio_reads = False, True
                self._for_trio += self._batch
                self._batch.clear()
                self._leader = None
                self._idle.append(hand)
        if not handed:  # (closing, or a thread failed)
            return self._leave(hand)
        self._soon_in_trio(self._taken_back)
        return Next.WAIT

    def _taken_back(self) -> None:
        """(Trio.) The leader left the line for trio's asks: trio reads it (ThreadServer's)."""
