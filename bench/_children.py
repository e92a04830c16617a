"""A benchmark's child process, spawned and always reaped, spoken to over a duplex pipe.

Messages are tuples ``(kind, value)``. A child reports a failure as ``("error", text)``
and stops on ``("exit",)``. Nothing here imports the toolkit.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import signal
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["REAP_TIMEOUT_S", "PipeChild"]

REAP_TIMEOUT_S = 5.0


class PipeChild:
    """A spawned process that is always reaped: exit command, join, terminate, kill."""

    label = "child"  # how messages name it

    def __init__(
        self, target: Callable[[multiprocessing.connection.Connection], None], index: int, name: str
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process: multiprocessing.process.BaseProcess = ctx.Process(
            target=target, args=(child_conn,), name=name, daemon=True
        )
        self.index = index
        self.killed = False
        self.process.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def send(self, *msg: Any) -> None:
        self.conn.send(msg)

    def receive(self, expect: str, timeout: float) -> Any:
        """The next message, which must be ``(expect, value)``; returns the value."""
        who = f"{self.label} {self.index}"
        if not self.conn.poll(timeout):
            alive = "alive" if self.process.is_alive() else f"exited with {self.process.exitcode}"
            raise RuntimeError(f"{who}: no {expect!r} within {timeout} s (process {alive})")
        try:
            msg = self.conn.recv()
        except EOFError:
            raise RuntimeError(
                f"{who} exited (code {self.process.exitcode}) while we waited for {expect!r}"
            ) from None
        if msg[0] == "error":
            raise RuntimeError(f"{who} failed: {msg[1]}")
        if msg[0] != expect:
            raise RuntimeError(f"{who}: expected {expect!r}, got {msg!r:.200}")
        return msg[1]

    async def areceive(self, expect: str, timeout: float) -> Any:
        return await trio.to_thread.run_sync(self.receive, expect, timeout)

    def kill(self) -> None:
        """SIGKILL now; :meth:`stop` reaps it later."""
        self.killed = True
        os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        proc = self.process
        try:
            if proc.is_alive() and not self.killed:
                self.send("exit")
        except (OSError, ValueError):
            pass
        proc.join(0.1 if self.killed else REAP_TIMEOUT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(REAP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(REAP_TIMEOUT_S)
        self.conn.close()
        proc.close()
