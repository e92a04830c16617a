"""A child process for the truncation tests: a room member that tries to pull its answer's
memory out from under the host.

    python tests/shm_truncator.py ADDRESS NAME MODE SIZE

It joins the room at ADDRESS as NAME and answers every poll with ``{"data": buffer}``
of SIZE bytes (``bytes([9]) * SIZE``: through shared memory). MODE is

- ``sealed``: the toolkit as it is. Once the host attached the answer's segment (its
  name is gone), the member tries to shrink the payload (``ftruncate`` on its memfd,
  and ``truncate`` through ``/proc/self/fd``) and punches a hole in it, then prints
  ``shrink <errno name or done> <errno name or done> punch <0 or errno name>``;
- ``unsealed``: a sender that does not seal (``memfd.seal`` made a no-op): it prints
  ``shrink ...`` after truncating its payload to nothing, once the host had its chance
  to attach it (the host refuses it: the name stays, so the member waits 1 s first).

It prints ``ready`` once joined, and waits for ``quit`` on stdin.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
from _agent import say, wait_for_quit

import consensus
from patterns.shm import inflight, memfd

_libc = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2


def attempt(call: Callable[[], object]) -> str:
    try:
        call()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "done"


def pull_away(path: str, fd: int, size: int) -> None:
    """Wait until the host attached (the name went; 1 s at most), then cut the payload."""
    deadline = time.monotonic() + 1.0
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.002)
    shrink = attempt(lambda: os.ftruncate(fd, 0))
    by_path = attempt(lambda: os.truncate(f"/proc/self/fd/{fd}", 0))
    punched = _libc.fallocate(
        fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, ctypes.c_long(0), ctypes.c_long(size)
    )
    punch = "0" if punched == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
    say("shrink", shrink, by_path, "punch", punch)


async def main(address: str, name: str, mode: str, size: int) -> None:
    if mode == "unsealed":
        memfd.seal = lambda fd: None
    handed: list[tuple[str, int]] = []
    hold = inflight.hold

    def hold_and_keep(path: str, fd: int, inode: int, deadline: float, slot: object = None) -> None:
        handed.append((path, os.dup(fd)))  # ours, whatever inflight does with its own
        hold(path, fd, inode, deadline, slot)  # type: ignore[arg-type]

    inflight.hold = hold_and_keep

    async def on_poll(question: object) -> object:
        return {"data": bytes([9]) * size}

    async def watch() -> None:
        """Each payload the member hands over is pulled away once the host attached it."""
        while True:
            while handed:
                path, fd = handed.pop(0)
                await trio.to_thread.run_sync(pull_away, path, fd, size + 4096)
                os.close(fd)
            await trio.sleep(0.001)

    async with consensus.join(address, name=name, on_poll=on_poll), trio.open_nursery() as tasks:
        tasks.start_soon(watch)
        say("ready")
        await wait_for_quit()
        tasks.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
