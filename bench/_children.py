"""Every child process of the bench, ours and the peers': spawned, spoken to over a pipe, always reaped.

The parent holds a :class:`Child` (multiprocessing ``spawn``: NNG is not fork-safe).
The child runs :func:`main`, the one command loop of the bench: ``("job", module,
function, args)`` imports ``module`` and calls ``function(conn, *args)``; the job may
send messages of its own (``("ready", value)`` once set up, say), and what it returns
goes back as ``("done", value)``, a failure as ``("error", traceback)``. ``("exit",)``,
or the parent going away, ends the process, also while a job runs.

A job that takes commands while it runs reads them with :func:`serve` (blocking),
:func:`aserve` (trio) or :func:`until_stop` (asyncio): each command ``(kind, *args)``
is answered by ``handlers[kind](*args)`` (a reply tuple, or None for no reply), until
``("stop",)``. Messages are tuples of plain values; nothing here imports the toolkit.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import multiprocessing.resource_tracker
import multiprocessing.spawn
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._placement import spawn_executable

__all__ = ["LIFETIME_S", "SETUP_TIMEOUT_S", "Child", "Exit", "aserve", "children", "main", "serve",
           "stop_requested", "until_stop"]  # fmt: skip

Conn = multiprocessing.connection.Connection
Handlers = Mapping[str, Callable[..., Any]]
REAP_TIMEOUT_S = 5.0
SETUP_TIMEOUT_S = 60.0  # a fresh interpreter importing trio, pynng, the toolkit or a peer's client, and connecting
LIFETIME_S = 600.0  # a job whose parent hung gives up after this


class Exit(Exception):
    """The parent asked this child to exit (or went away)."""


# ===================================================================== child side
def _read(conn: Conn) -> tuple[Any, ...]:
    try:
        msg: tuple[Any, ...] = conn.recv()
    except (EOFError, OSError):
        raise Exit from None
    if msg[0] == "exit":
        raise Exit
    return msg


def main(conn: Conn) -> None:
    """Entry point of every spawned child: run jobs until told to exit."""
    while True:
        try:
            msg = _read(conn)
        except Exit:
            return
        if msg[0] != "job":
            conn.send(("error", f"unexpected message {msg!r:.100} between jobs"))
            continue
        _, module, function, args = msg
        try:
            result = getattr(importlib.import_module(module), function)(conn, *args)
        except Exit:
            return
        except BaseExceptionGroup as group:  # (a trio job's nursery wraps the Exit)
            if group.split(Exit)[1] is None:
                return
            conn.send(("error", traceback.format_exc()))
            continue
        except BaseException:  # noqa: BLE001 -- reported to the parent, which raises it
            conn.send(("error", traceback.format_exc()))
            continue
        conn.send(("done", result))


def _answer(conn: Conn, handlers: Handlers, msg: tuple[Any, ...]) -> Any:
    if msg[0] not in handlers:
        raise RuntimeError(f"unexpected command {msg!r:.100} while a job runs (it knows {sorted(handlers)})")
    return handlers[msg[0]](*msg[1:])


def serve(conn: Conn, handlers: Handlers | None = None, timeout: float = LIFETIME_S) -> None:
    """Answer the parent's commands until it says stop (blocking; ``timeout``: it hung)."""
    while conn.poll(timeout):
        msg = _read(conn)
        if msg[0] == "stop":
            return
        try:
            reply = _answer(conn, handlers or {}, msg)
        except Exception:  # noqa: BLE001 -- the parent decides
            reply = ("error", traceback.format_exc())
        if reply is not None:
            conn.send(reply)


async def aserve(conn: Conn, handlers: Handlers | None = None) -> None:
    """:func:`serve` under trio: waits on the pipe's descriptor, so other tasks run meanwhile."""
    import trio

    while True:
        await trio.lowlevel.wait_readable(conn.fileno())
        msg = _read(conn)
        if msg[0] == "stop":
            return
        try:
            reply = _answer(conn, handlers or {}, msg)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception:  # noqa: BLE001 -- the parent decides
            reply = ("error", traceback.format_exc())
        if reply is not None:
            conn.send(reply)


def stop_requested(conn: Conn) -> bool:
    """Non-blocking: has the parent said stop? (exit raises :class:`Exit`)."""
    if not conn.poll():
        return False
    msg = _read(conn)
    if msg[0] != "stop":
        raise RuntimeError(f"unexpected message while a job runs: {msg!r:.100}")
    return True


async def until_stop(conn: Conn, timeout: float = LIFETIME_S) -> None:
    """Under asyncio: wait until the parent says stop (or exit, or ``timeout`` passes)."""
    import asyncio

    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(conn.fileno(), readable.set)
    try:
        async with asyncio.timeout(timeout):
            await readable.wait()
    except TimeoutError:
        return
    finally:
        loop.remove_reader(conn.fileno())
    stop_requested(conn)


# ===================================================================== parent side
_SPAWNING = threading.Lock()  # multiprocessing's spawn executable is one global: swap it under a lock


def _start(process: multiprocessing.process.BaseProcess, executable: str | None) -> None:
    """Start ``process``, through ``executable`` instead of this interpreter if given (a wrapper that
    runs the interpreter on another host: see :mod:`bench._placement`)."""
    if executable is None:
        process.start()
        return
    # The resource tracker is started with the spawn executable too: start it here, first.
    multiprocessing.resource_tracker.ensure_running()
    with _SPAWNING:
        previous = multiprocessing.spawn.get_executable()
        multiprocessing.spawn.set_executable(executable)
        try:
            process.start()
        finally:
            multiprocessing.spawn.set_executable(previous)


class Child:
    """A spawned process running :func:`main`; always reaped (exit, join, terminate, kill).

    ``executable``: start it through this instead of the interpreter (default: the one
    :func:`bench._placement.spawn_executable` gives for ``index``, usually none).
    ``daemon=False`` for a child whose jobs start children of their own."""

    def __init__(self, name: str, index: int = 0, executable: str | None = None, daemon: bool = True) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process: multiprocessing.process.BaseProcess = ctx.Process(target=main, args=(child_conn,),
                                                                        name=name, daemon=daemon)  # fmt: skip
        self.name, self.index, self.killed = name, index, False
        try:
            _start(self.process, executable or spawn_executable(index))
        finally:
            child_conn.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def start(self, job: Callable[..., Any], *args: Any) -> None:
        """Have the child run ``job(conn, *args)`` (a module-level function)."""
        module = job.__module__
        if module == "__main__":  # python -m bench.x: the child imports it by its real name
            module = sys.modules["__main__"].__spec__.name  # type: ignore[union-attr]
        self.send("job", module, job.__qualname__, args)

    def send(self, *msg: Any) -> None:
        self.conn.send(msg)

    def receive(self, expect: str, timeout: float = SETUP_TIMEOUT_S) -> Any:
        """The next message, which must be ``(expect, value)``; returns the value."""
        if not self.conn.poll(timeout):
            alive = "alive" if self.process.is_alive() else f"exited with {self.process.exitcode}"
            raise RuntimeError(f"{self.name}: no {expect!r} within {timeout} s (process {alive})")
        try:
            msg = self.conn.recv()
        except EOFError:
            raise RuntimeError(
                f"{self.name} exited (code {self.process.exitcode}) while we waited for {expect!r}"
            ) from None
        if msg[0] == "error":
            raise RuntimeError(f"{self.name} failed: {msg[1]}")
        if msg[0] != expect:
            raise RuntimeError(f"{self.name}: expected {expect!r}, got {msg!r:.200}")
        return msg[1]

    async def areceive(self, expect: str, timeout: float = SETUP_TIMEOUT_S) -> Any:
        import trio

        return await trio.to_thread.run_sync(self.receive, expect, timeout)

    def finish(self, *, stop: bool = True, timeout: float = SETUP_TIMEOUT_S) -> Any:
        """The job's result; ``stop``: tell it to stop first (jobs that serve commands)."""
        if stop:
            self.send("stop")
        return self.receive("done", timeout)

    def check_alive(self) -> None:
        if not self.process.is_alive():
            raise RuntimeError(f"{self.name} exited early (exit code {self.process.exitcode})")

    def kill(self) -> None:
        """SIGKILL now; :meth:`stop` reaps it later."""
        self.killed = True
        os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        proc = self.process
        with contextlib.suppress(OSError, ValueError):
            if proc.is_alive() and not self.killed:
                self.send("exit")
        proc.join(0.1 if self.killed else REAP_TIMEOUT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(REAP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(REAP_TIMEOUT_S)
        self.conn.close()
        proc.close()


@contextlib.contextmanager
def children(count: int, name: str) -> Iterator[list[Child]]:
    """``count`` spawned children, always reaped."""
    started: list[Child] = []
    try:
        for i in range(count):
            started.append(Child(f"{name}-{i}", i))
        yield started
    finally:
        for child in started:
            child.stop()
