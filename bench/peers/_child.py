"""The spawned side of every peer measurement: a loop that runs jobs the parent names.

The parent (``bench._children.PipeChild``) sends ``("job", module, function, args)``;
the child imports ``module`` and calls ``function(conn, *args)``, which answers
``("ready", value)`` once set up and returns a value sent back as ``("done", value)``.
A failure is sent as ``("error", traceback)``. ``("exit",)`` ends the loop, as does the
parent going away (EOF on the pipe). Jobs that run until told call :func:`wait_stop`
(blocking) or :func:`until_stop` (asyncio), which also honour ``("exit",)``.

Imports nothing heavy: the job modules bring their own client libraries.
"""

from __future__ import annotations

import importlib
import multiprocessing.connection
import traceback
from typing import Any

__all__ = ["LIFETIME_S", "Exit", "main", "until_stop", "wait_stop"]

LIFETIME_S = 600.0  # a job that is never told to stop (its parent hung) gives up after this


class Exit(Exception):
    """The parent asked this child to exit (or went away) while a job ran."""


def _check_stop(conn: multiprocessing.connection.Connection) -> None:
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        raise Exit from None
    if msg[0] == "exit":
        raise Exit
    if msg[0] != "stop":
        raise RuntimeError(f"unexpected message while a job runs: {msg!r:.100}")


def wait_stop(conn: multiprocessing.connection.Connection, timeout: float | None = LIFETIME_S) -> None:
    """Block until the parent says stop (or exit, or ``timeout`` passes)."""
    if conn.poll(timeout):
        _check_stop(conn)


def stop_requested(conn: multiprocessing.connection.Connection) -> bool:
    """Non-blocking: has the parent said stop? (exit raises :class:`Exit`)."""
    if not conn.poll():
        return False
    _check_stop(conn)
    return True


async def until_stop(conn: multiprocessing.connection.Connection, timeout: float = LIFETIME_S) -> None:
    """Under asyncio: wait until the parent says stop (or exit, or ``timeout`` passes)."""
    import asyncio

    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(conn.fileno(), readable.set)
    try:
        try:
            async with asyncio.timeout(timeout):
                await readable.wait()
        except TimeoutError:
            return
    finally:
        loop.remove_reader(conn.fileno())
    _check_stop(conn)


def main(conn: multiprocessing.connection.Connection) -> None:
    """Entry point of a spawned child: run jobs until told to exit."""
    while True:
        try:
            msg: Any = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "exit":
            return
        if msg[0] != "job":
            conn.send(("error", f"unexpected message {msg!r:.100}"))
            continue
        _, module, function, args = msg
        try:
            job = getattr(importlib.import_module(module), function)
            result = job(conn, *args)
        except Exit:
            return
        except BaseException:  # noqa: BLE001 -- reported to the parent, which raises it
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("done", result))
