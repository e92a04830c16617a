"""A watch over the handlers a reading thread runs itself: :class:`Watch`, and the
:class:`Hand` each thread of such a reader sleeps on.

Two readers outside trio run plain handlers on the thread that read their frames, so that
an answer costs no thread wake-up: a served blocking hotline
(:mod:`consensus.hotline.serve_crew`, docs/asyncio.md §4.10) and the survey reader of
``consensus.blocking`` members (:mod:`consensus.room.survey_reader`, §4.7). While that
thread runs a handler nobody reads, so an idle thread, the *watch*, looks every
:data:`PATIENCE` and takes the reading over from a handler that ran through a whole period:
a long LLM call never leaves a socket unread. After a period with no handler, the watch
sleeps untimed until the next handler begins.

Each reader keeps its own roles and lock; a :class:`Watch` holds the watch's part, changed
under that lock (only :meth:`Watch.look` is called without it): the watching hand, whether
it looks, the hand running a handler inline, and how many handlers have begun (the watch's
clock: a handler that began after its last look is not the slow one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

__all__ = ["PATIENCE", "Hand", "Watch"]

PATIENCE: Final = 0.005  # how often the watch looks while handlers run inline


class Hand:
    """A thread of a reader: it sleeps on its own lock, released once per :meth:`poke`."""

    __slots__ = ("thread", "wake")

    def __init__(self, run: Callable[[Hand], object], name: str) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.thread = threading.Thread(target=run, args=(self,), daemon=True, name=name)

    def poke(self) -> None:
        """Wake it (the reader's lock held): once, however often it is poked before it wakes."""
        if self.wake.locked():
            self.wake.release()


class Watch:
    """Who watches the handlers run inline, and what it saw at its last look (the reader's
    lock held for everything but :meth:`look`)."""

    __slots__ = ("_seen", "armed", "begun", "hand", "inline")

    def __init__(self) -> None:
        self.hand: Hand | None = None  # the watching thread
        self.armed = False  # it looks every PATIENCE (else it sleeps untimed)
        self.inline: Hand | None = None  # the reading thread, while it runs a handler
        self.begun = 0  # handlers begun inline so far
        self._seen = -1  # ``begun`` at the watch's last look

    def arm(self, spare: Hand | None = None, *, wake: bool = True) -> None:
        """A handler begins inline: the watch looks every :data:`PATIENCE` again (a sleeping
        one is woken); ``spare`` watches from now if nobody does, poked unless ``wake`` is
        False (a thread that goes straight to its first look: its first period is whole)."""
        if self.hand is None:
            assert spare is not None, "a watch armed with no thread to watch"
            self.hand, self._seen = spare, -1
            self.armed = True
            if wake:
                spare.poke()
        elif not self.armed:
            self.armed = True
            self.hand.poke()

    def look(self, hand: Hand) -> bool:
        """(The watch, without the lock.) Wait a period while armed, else until poked: True
        when poked. ``armed`` turns on only with a poke, so reading it unlocked loses nothing."""
        return hand.wake.acquire(timeout=PATIENCE) if self.armed else hand.wake.acquire()

    def overdue(self, poked: bool) -> bool:
        """(After :meth:`look`.) True when one handler ran through the whole period: the caller
        takes the reading over (:meth:`take_over`). A period with no handler disarms the watch."""
        seen, self._seen = self._seen, self.begun
        if poked or self.begun != seen:
            return False
        if self.inline is not None:
            return True
        self.armed = False
        return False

    def take_over(self) -> Hand:
        """The watch reads from now: the hand running the slow handler is returned (it learns
        it when its handler returns), and nobody watches."""
        slow = self.inline
        assert slow is not None, "a watch took the reading over while no handler ran inline"
        self.inline = None
        self.release()
        return slow

    def release(self) -> Hand | None:
        """Nobody watches from now: the hand that did is returned (to lead, or to end)."""
        hand, self.hand, self.armed, self._seen = self.hand, None, False, -1
        return hand
