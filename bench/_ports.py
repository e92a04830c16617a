"""Free tcp ports for the benchmarks' listeners, on :func:`bench._placement.address` (nothing here imports the toolkit)."""

from __future__ import annotations

import random
import socket

from ._placement import address

__all__ = ["free_port_block"]

_LOW, _HIGH = (
    20_000,
    32_000,
)  # below Linux's ephemeral range (32768..60999): no outgoing connection takes them


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address(), port))
        except OSError:
            return False
    return True


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of ``count`` consecutive tcp ports on the bench's address (127.0.0.1 unless placed) that were free a moment ago.

    A room takes ports P..P+4 and a dispatcher P and P+1 (``consensus.endpoints``), so
    port 0 cannot be used for them. Another process may still take one before the
    listener binds it; the suite's loopback runs make that rare.
    """
    for _ in range(attempts):
        first = random.randrange(_LOW, _HIGH - count)
        if all(_bindable(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free tcp ports on {address()} after {attempts} attempts")
