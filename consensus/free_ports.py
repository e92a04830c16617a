"""A tcp room address on this host whose five ports are free: for examples, demos and tests.

A room on ``tcp://H:P`` listens on P to P+4 (:mod:`consensus.endpoints`), so one free port is
not enough: :func:`free_room_address` draws P until all five bind. It draws below Linux's
ephemeral ports (32768-60999), where any outgoing connection may take one of them before the
room listens. The ports are free a moment ago, not reserved: another process may still take
one first (the room's listen then fails and says which).
"""

from __future__ import annotations

import contextlib
import random
import socket

__all__ = ["free_room_address"]

_PICK = random.SystemRandom()  # (not the global generator, which a program or a test may seed)
LOW, HIGH = 20_000, 32_000  # below the kernel's ephemeral ports


def free_room_address(host: str = "127.0.0.1", *, attempts: int = 200) -> str:
    """``tcp://host:P`` with P to P+4 free a moment ago; ``RuntimeError`` after ``attempts`` draws."""
    for _ in range(attempts):
        port = _PICK.randrange(LOW, HIGH - 4)
        try:
            with contextlib.ExitStack() as stack:
                for p in range(port, port + 5):
                    stack.enter_context(socket.socket()).bind((host, p))
        except OSError:
            continue
        return f"tcp://{host}:{port}"
    raise RuntimeError(f"found no run of five free tcp ports on {host} in {attempts} draws")
