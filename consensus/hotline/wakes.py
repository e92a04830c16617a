"""Wake-ups owed before trio next waits for I/O: one trio instrument per run, for every line.

An asker that read a line itself leaves the line's receive loop parked when its ask ends
(see :meth:`consensus.hotline.reader.Reader.release`): if nobody reads the line again
before trio has run every ready task, the loop must read it then, not later. The lines
that may owe such a wake-up are listed here; trio calls :meth:`Wakes.before_io_wait`
once per pass of its scheduler, which settles them. One instrument serves all the lines
of a run, so a pass costs one call and a test of an empty list however many lines are open.

The instrument is installed only while lines ask (:meth:`Wakes.arm`, before an asker
may owe a wake-up) and removes itself after :data:`DISARM_AFTER` passes with nothing
owed: a process that only answers asks (or has no line asking for a while) pays no call
per pass for it.
"""

from __future__ import annotations

from typing import Protocol

import trio

__all__ = ["DISARM_AFTER", "Owing", "Wakes", "attach", "current", "detach"]

DISARM_AFTER = 256  # passes of trio's scheduler with nothing owed before the instrument leaves


class Owing(Protocol):
    unread: bool  # it may owe a wake-up (settle_unread is called only then)

    def settle_unread(self) -> bool:
        """Wake the receive loop if nobody reads the line; returns whether it did."""
        ...


def _nothing() -> None:
    pass


class Wakes(trio.abc.Instrument):
    """The lines of one trio run that may owe their receive loop a wake-up."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.owing: list[Owing] = []
        self.lines = 0
        self.armed = False  # installed as an instrument: read by askers before they may owe
        self._idle = 0  # passes since something was owed
        self._token = token

    def arm(self) -> None:
        """Install the instrument (from trio, before a line may owe a wake-up); idempotent."""
        if not self.armed:
            trio.lowlevel.add_instrument(self)
            self.armed = True
            self._idle = 0

    def disarm(self) -> None:
        if self.armed:
            self.armed = False
            try:
                trio.lowlevel.remove_instrument(self)
            except KeyError:  # (trio drops an instrument that raised; this one does not)
                pass

    def before_io_wait(self, timeout: float) -> None:
        owing = self.owing
        if owing:
            self._idle = 0
            woke = False
            for line in owing:
                if line.unread:  # (an asker may have read the line again since)
                    woke = line.settle_unread() or woke
            owing.clear()
            if woke and timeout > 0:  # trio computed its wait before this: make it return at once
                self._token.run_sync_soon(_nothing)
        else:
            self._idle += 1
            if self._idle >= DISARM_AFTER:  # nobody asks: stop costing a call per pass
                self.disarm()  # (trio calls the hooks of a copy of its list: removal is safe)


_WAKES: trio.lowlevel.RunVar[Wakes | None] = trio.lowlevel.RunVar("consensus_hotline_wakes", default=None)


def attach() -> Wakes:
    """The run's :class:`Wakes`, made with the first line (call from trio). Not yet an
    instrument: :meth:`Wakes.arm` installs it."""
    wakes = _WAKES.get()
    if wakes is None:
        wakes = Wakes(trio.lowlevel.current_trio_token())
        _WAKES.set(wakes)
    wakes.lines += 1
    return wakes


def current() -> Wakes | None:
    """The run's :class:`Wakes`, if a line attached one (call from trio)."""
    return _WAKES.get()


def detach(wakes: Wakes) -> None:
    """A line closed; the last one removes the instrument."""
    wakes.lines -= 1
    if wakes.lines <= 0:
        wakes.disarm()
        if _WAKES.get() is wakes:
            _WAKES.set(None)
