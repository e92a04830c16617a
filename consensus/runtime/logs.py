"""Logging: the logger names, rate-limited warnings for hostile input, ``NNGC_LOG``.

Loggers (standard :mod:`logging`, nothing is printed unless the application configures
logging or sets ``NNGC_LOG``):

``consensus.room``     joins, leaves, a lost host, refusals, calls (INFO / WARNING)
``consensus.work``     work sharing (dispatcher, workers)
``consensus.hotline``  hotlines
``consensus``          the parent of the three, and the handlers' runner
``patterns``           sockets, shared memory

Malformed or unauthenticated frames are logged through :class:`RateLimited`: at most one
WARNING line per kind of problem every :data:`RATE_LIMIT` seconds, with the count of those
dropped since the last line (a flood of garbage cannot flood the log).

``NNGC_LOG=debug`` (or ``info``, ``warning``, ``error``) in the environment, read when
:mod:`consensus` is imported, sets the level of ``consensus`` and ``patterns`` and, when
the root logger has no handler, logs to standard error.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["ENV", "RATE_LIMIT", "RateLimited", "configure_from_env"]

ENV: Final = "NNGC_LOG"
RATE_LIMIT: Final = 10.0  # seconds between two lines of one kind of hostile input
_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                  "error": logging.ERROR}  # fmt: skip


class RateLimited:
    """Warnings of one logger, at most one line per ``kind`` every ``interval`` seconds.

    The clock is read here (a driver's concern, not a protocol's): logging is I/O."""

    def __init__(self, logger: logging.Logger, interval: float = RATE_LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.logger = logger
        self._clock = clock
        self.interval = interval
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless a line of ``kind`` went out less than ``interval``
        seconds ago (then it is counted, and the next line says how many). True if logged."""
        return self.log(logging.WARNING, kind, message, *args)

    def log(self, level: int, kind: str, message: str, *args: Any) -> bool:
        """As :meth:`warning`, at ``level``."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        dropped = self._dropped.pop(kind, 0)
        if dropped:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, dropped, now - last if last is not None else 0.0)
        self.logger.log(level, message, *args)
        return True


def configure_from_env(environ: dict[str, str] | None = None) -> int | None:
    """Apply ``NNGC_LOG``; returns the level set (None when unset or not a level name)."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip().lower()
    level = _LEVELS.get(value)
    if level is None:
        if value:
            logging.getLogger("consensus").warning(
                "%s=%r is not one of %s: ignored", ENV, value, ", ".join(_LEVELS)
            )
        return None
    for name in ("consensus", "patterns"):
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    return level
