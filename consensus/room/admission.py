"""How many names one connection may try: a pure rate limit on joins, no clock.

A member joins over its own control connection, under one name, and repeats that
join until it is answered. A connection that tries name after name is flooding the
room (2,000 fake names over one connection once took a roster to 729 members and its
polls from 52 ms to 2 s). :class:`Admission` lets each connection try at most
``limit`` distinct names in any ``window`` seconds; a name it tried within the window
is always let through again.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_NAMES_PER_CONNECTION", "DEFAULT_NAME_WINDOW", "Admission"]

DEFAULT_NAMES_PER_CONNECTION: Final = 8
DEFAULT_NAME_WINDOW: Final = 60.0
PIPES_REMEMBERED: Final = 4096  # connections tracked at once; the least recently active is forgotten


class Admission:
    """Distinct names tried per connection (NNG pipe id) within a sliding window."""

    def __init__(
        self, *, limit: int = DEFAULT_NAMES_PER_CONNECTION, window: float = DEFAULT_NAME_WINDOW
    ) -> None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"names per connection must be a positive integer, got {limit!r}")
        if not window > 0:
            raise ValueError(f"the name window must be > 0 seconds, got {window!r}")
        self.limit = limit
        self.window = window
        self._tried: dict[int, dict[str, float]] = {}  # pipe -> name -> last admitted attempt

    def admit(self, pipe: int, name: str, now: float) -> bool:
        """Whether ``pipe`` may try ``name`` at ``now``; an admitted attempt is recorded."""
        names = self._tried.pop(pipe, None)
        if names is None:
            names = {}
        else:
            names = {n: t for n, t in names.items() if now - t < self.window}
        self._tried[pipe] = names  # (re)inserted last: the dict is ordered by activity
        if len(self._tried) > PIPES_REMEMBERED:
            del self._tried[next(iter(self._tried))]
        if name not in names and len(names) >= self.limit:
            return False
        names[name] = now
        return True

    def forget(self, pipe: int) -> None:
        """The connection closed: nothing it tried matters any more."""
        self._tried.pop(pipe, None)

    def tried(self, pipe: int, now: float) -> int:
        """Distinct names ``pipe`` tried in the window ending at ``now``."""
        return sum(1 for t in self._tried.get(pipe, {}).values() if now - t < self.window)
