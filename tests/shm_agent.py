"""A child process holding or reading shared-memory segments, for the shared-memory tests.

    python tests/shm_agent.py write DIR SIZE LEASE RECEIVERS COUNT
        makes COUNT segments of SIZE bytes (byte i holds i % 251), prints ``ref HEX`` for
        each (the CBOR of the reference's wire form), then ``ready``; waits for ``quit``
    python tests/shm_agent.py attach DIR
        prints ``ready``; then for each ``HEX`` line attaches that reference, keeps the
        view and prints ``ok LENGTH DIGEST`` (blake2b of the bytes) or
        ``error CLASS REASON``; ``quit`` (or end of input) leaves
    python tests/shm_agent.py sweep DIR NOW
        prints ``ready``, waits for one line, sweeps DIR as at CLOCK_MONOTONIC time NOW and
        prints ``swept REMOVED EXPIRED VANISHED``
    python tests/shm_agent.py full SIZE
        tries to make a SIZE-byte segment in the default directory with ``create`` and
        ``place``, with and without the free-space pre-check; prints
        ``full HOW PRECHECK SIZE DIRECTORY ENTRIES`` or ``created HOW PRECHECK`` for each,
        then makes a segment of SIZE/8 and prints ``left N``: the entries left there

Lines go out on stdout, flushed at once.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cbor2
from _agent import say

from patterns.errors import SharedMemoryError, SharedMemoryFull
from patterns.shm.header import segment_directory
from patterns.shm.ref import ShmRef
from patterns.shm.segment import SharedBuffer, attach
from patterns.shm.sweep import sweep


def pattern(size: int) -> bytes:
    """The bytes a ``write`` agent puts in each segment."""
    return bytes(i % 251 for i in range(251)) * (size // 251) + bytes(range(size % 251))


def write(directory: str, size: int, lease: float, receivers: int, count: int) -> None:
    data = pattern(size)
    buffers = []
    for _ in range(count):
        buf = SharedBuffer.create(size, lease=lease, receivers=receivers, directory=directory)
        buf.view[:] = data
        buffers.append(buf)
        say("ref", cbor2.dumps(buf.ref.to_wire()).hex())
    say("ready")
    for line in sys.stdin:
        if line.strip() == "quit":
            break
    for buf in buffers:
        buf.discard()


def attach_loop(directory: str) -> None:
    views: list[memoryview] = []  # held until the end, as a receiver still using them would
    say("ready")
    for line in sys.stdin:
        text = line.strip()
        if text == "quit":
            break
        try:
            view = attach(ShmRef.from_wire(cbor2.loads(bytes.fromhex(text))), directory=directory)
        except SharedMemoryError as exc:
            say("error", type(exc).__name__, exc.reason)
            continue
        views.append(view)
        say("ok", len(view), hashlib.blake2b(view).hexdigest())


def sweep_once(directory: str, now: float) -> None:
    say("ready")
    sys.stdin.readline()
    report = sweep(now, directory=directory)
    say("swept", report.removed, report.expired, report.vanished)


def full(size: int) -> None:
    from patterns.shm import making, segment

    folder = segment_directory()
    for precheck in ("precheck", "no-precheck"):
        if precheck == "no-precheck":  # the payload's memfd is not on that tmpfs: it fits in memory
            making.check_room = lambda path, total: None
        for how in ("create", "place"):
            try:
                if how == "create":
                    buf = SharedBuffer.create(size, lease=10.0)
                else:
                    buf = segment.place(bytes(size), lease=10.0)
            except SharedMemoryFull as exc:
                say("full", how, precheck, exc.size, exc.directory, len(os.listdir(folder)))
            else:
                say("created", how, precheck)
                buf.discard()
    fits = SharedBuffer.create(size // 8, lease=10.0)  # the failures gave their space back
    fits.view[:] = bytes(size // 8)
    fits.discard()
    say("left", len(os.listdir(folder)))


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "write":
        write(args[0], int(args[1]), float(args[2]), int(args[3]), int(args[4]))
    elif mode == "attach":
        attach_loop(args[0])
    elif mode == "sweep":
        sweep_once(args[0], float(args[1]))
    elif mode == "full":
        full(int(args[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
