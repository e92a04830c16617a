"""Wake-ups owed before trio next waits for I/O: one trio instrument per run, for every line.

An asker that read a line itself leaves the line's receive loop parked when its ask ends
(see :meth:`consensus.hotline.reader.Reader.release`): if nobody reads the line again
before trio has run every ready task, the loop must read it then, not later. The lines
that may owe such a wake-up are listed here; trio calls :meth:`_BeforeIoWait.before_io_wait`
once per pass of its scheduler, which settles them. One instrument serves all the lines
of a run, so a pass costs one call and a test of an empty list however many lines are open.
"""

from __future__ import annotations

from typing import Protocol

import trio

__all__ = ["Owing", "Wakes", "attach", "detach"]


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
        self._token = token

    def before_io_wait(self, timeout: float) -> None:
        owing = self.owing
        if owing:
            woke = False
            for line in owing:
                if line.unread:  # (an asker may have read the line again since)
                    woke = line.settle_unread() or woke
            owing.clear()
            if woke and timeout > 0:  # trio computed its wait before this: make it return at once
                self._token.run_sync_soon(_nothing)


_WAKES: trio.lowlevel.RunVar[Wakes | None] = trio.lowlevel.RunVar("consensus_hotline_wakes", default=None)


def attach() -> Wakes:
    """The run's :class:`Wakes`, installed with the first line (call from trio)."""
    wakes = _WAKES.get()
    if wakes is None:
        wakes = Wakes(trio.lowlevel.current_trio_token())
        trio.lowlevel.add_instrument(wakes)
        _WAKES.set(wakes)
    wakes.lines += 1
    return wakes


def detach(wakes: Wakes) -> None:
    """A line closed; the last one removes the instrument."""
    wakes.lines -= 1
    if wakes.lines <= 0:
        try:
            trio.lowlevel.remove_instrument(wakes)
        except KeyError:  # (trio drops an instrument that raised; this one does not)
            pass
        if _WAKES.get() is wakes:
            _WAKES.set(None)
