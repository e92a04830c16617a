"""PAIR: one direct, bidirectional line to exactly one peer (NNG pair1, not polyamorous)."""

from __future__ import annotations

from patterns._stream import ReceivingSocket, SendingSocket

__all__ = ["Pair"]


class Pair(SendingSocket, ReceivingSocket):
    """A pair1 socket. One peer at a time: NNG refuses a second connection.

    ``async with Pair(listen="ipc:///tmp/a.ipc") as line: await line.send({"turn": 1})``
    """

    _protocol = "Pair1"

