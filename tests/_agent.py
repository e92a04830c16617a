"""What the child-process agents of the tests share: one line per event out, commands in."""

from __future__ import annotations

import sys

import trio


def say(*parts: object) -> None:
    """One line on stdout, flushed at once (the test reads it with ``read_line``)."""
    print(*parts, flush=True)


async def wait_for_quit() -> None:
    """Return on a ``quit`` line or at the end of stdin."""
    while True:
        text = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not text or text.strip() == "quit":
            return
