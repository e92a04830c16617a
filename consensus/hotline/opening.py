"""Opening a hotline in trio: :func:`hotline` (``consensus.hotline``) and :func:`open_line`.

:func:`open_line` opens the line (its socket and tasks) and closes it at the block's end.
:func:`hotline` does the same and, for a line whose ``on_ask`` is a plain function (and
unsealed), lends the line before trio ever reads it to the threads that serve that handler
(:func:`consensus.hotline.thread_serve.serve`, docs/asyncio.md §4.10): the thread that takes
an ask off the line runs the handler and sends the answer, one wake-up per ask instead of
two (trio's, then a handler thread's). Everything else the line reads reaches trio through
the hand-over. The bridge's openers start from :func:`open_line`: ``aio.hotline`` lends the
line to its loop instead, ``blocking.hotline`` serves it itself and joins the crew.

Closing does not wait for handlers still running (as trio's handler threads were not
waited for): their answers are dropped and their threads end when they return.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from consensus.hotline.line import Hotline
from consensus.hotline.thread_serve import serve
from consensus.runtime.service import service_nursery
from consensus.trust.line import LineKeys
from consensus.trust.secret import Secret, as_secret, prf
from patterns import DEFAULT_MAX_MESSAGE_SIZE, TLSConfig

__all__ = ["hotline", "open_line"]


@asynccontextmanager
async def hotline(*, listen: str | None = None, dial: str | None = None, name: str = "",
                  on_ask: Callable[..., Any] | None = None, heartbeat: float = 1.0, missed_heartbeats: int = 3,
                  handler_threads: int = 4, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                  tls: TLSConfig | None = None, secret: Secret | bytes | str | None = None,
                  keys: LineKeys | None = None) -> AsyncIterator[Hotline]:  # fmt: skip
    """Open a hotline: ``listen="tcp://host:port"`` or ``dial="tcp://host:port"``, exactly one.

    With ``secret`` (the same on both ends) every frame is sealed and checked, a stranger's
    are refused before decoding (counted in the socket's ``unauthenticated``), and a
    recorded line cannot be replayed into a new one (``docs/security.md``). ``keys`` is the
    room's way in for lines between members (they are keyed per pair of members). A plain
    ``on_ask`` is run by the threads that read the line (this module's docstring)."""
    async with open_line(listen=listen, dial=dial, name=name, on_ask=on_ask, heartbeat=heartbeat,
                         missed_heartbeats=missed_heartbeats, handler_threads=handler_threads,
                         max_message_size=max_message_size, tls=tls, secret=secret, keys=keys) as line:  # fmt: skip
        serve(line, recalls=True)  # (no checkpoint since the line opened: its receive loop has not read yet)
        yield line


@asynccontextmanager
async def open_line(*, listen: str | None = None, dial: str | None = None, name: str = "",
                    on_ask: Callable[..., Any] | None = None, heartbeat: float = 1.0, missed_heartbeats: int = 3,
                    handler_threads: int = 4, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                    tls: TLSConfig | None = None, secret: Secret | bytes | str | None = None,
                    keys: LineKeys | None = None) -> AsyncIterator[Hotline]:  # fmt: skip
    """:func:`hotline`, read by trio's receive loop until the caller lends it elsewhere (at
    once, before any checkpoint): what the bridge's openers start from."""
    if (listen is None) == (dial is None):
        raise ValueError(f"hotline(listen={listen!r}, dial={dial!r}): give exactly one of listen= or dial=")
    address = listen if listen is not None else dial
    if not isinstance(address, str):
        raise TypeError(f"hotline(): the address must be text like 'tcp://host:port', got {address!r:.100}")
    line = Hotline(address, listen=listen is not None, name=name or ("listener" if listen else "dialer"),
                   on_ask=on_ask, heartbeat=heartbeat, missed_heartbeats=missed_heartbeats,
                   handler_threads=handler_threads, max_message_size=max_message_size, tls=tls,
                   keys=_line_keys(secret, keys, listen is not None))  # fmt: skip
    async with line._link.pair, service_nursery() as nursery:
        await line._run(nursery)
        try:
            yield line
        finally:
            nursery.cancel_scope.cancel()
            line._close()


def _line_keys(secret: Secret | bytes | str | None, keys: LineKeys | None, listener: bool) -> LineKeys | None:
    value = as_secret(secret)
    if value is not None and keys is not None:
        raise ValueError("hotline(): give secret= or keys=, not both")
    if value is None:
        return keys
    return LineKeys(prf(value.room_key, b"hotline"), listener=listener)
