"""Every process a test run starts, its children's children included, for the suite's
shared-memory check (``conftest.no_shared_memory_left``).

A test may start processes the suite never hears of: ``subprocess.run`` of an example
or a benchmark, the ``spawn`` children those start in turn. A segment such a process
leaves in /dev/shm itself (its environment lacked the suite's folder) is still this
run's. The owner in a segment's header is a pid and a start time, and once the process
is dead nothing says whose descendant it was: so a thread looks while it lives. Every
:data:`PERIOD` it lists /proc and adopts each process not seen before whose parent is
this process or one already adopted. A Python process that can make a segment lives far
longer than a period (starting the interpreter and the toolkit alone takes more), so
none is missed, unless its parent ended before it was seen (it is then a child of init).
A look costs about 0.1 ms of CPU with 130 processes on the machine.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["PERIOD", "Family", "stat_of"]

PERIOD = 0.05


def stat_of(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) from /proc/<pid>/stat (field 4 and field 22), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[1]), int(fields[19])


class Family:
    """The (pid, start time) of this process and of every descendant seen alive so far."""

    def __init__(self) -> None:
        me = os.getpid()
        mine = stat_of(me)
        assert mine is not None
        self.members: set[tuple[int, int]] = {(me, mine[1])}  # read by the check, once stopped
        self._ours: set[int] = {me}  # alive at the last look
        self._others: set[int] = set()  # alive at the last look, not ours
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="suite family", daemon=True)

    def start(self) -> None:
        self._look()  # everything already running is judged once, now
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (after a last look)."""
        self._stop.set()
        self._thread.join()
        self._look()

    def _watch(self) -> None:
        while not self._stop.wait(PERIOD):
            self._look()

    def _look(self) -> None:
        alive = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        self._ours &= alive
        self._others &= alive
        new: dict[int, tuple[int, int]] = {}
        for pid in alive - self._ours - self._others:
            stat = stat_of(pid)
            if stat is not None:
                new[pid] = stat
        adopted = True
        while adopted:  # a child and its parent may both be new: adopt down the tree
            adopted = False
            for pid, (parent, start) in list(new.items()):
                if parent in self._ours:
                    self._ours.add(pid)
                    self.members.add((pid, start))
                    del new[pid]
                    adopted = True
        self._others |= new.keys()
