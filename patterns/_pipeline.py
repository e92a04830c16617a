"""PUSH/PULL (NNG's pipeline pattern): load-balanced one-way delivery.

Push hands each message to one ready puller, round-robin. There is no
acknowledgement: a message in flight to a puller that dies is lost, which the
``consensus`` task ledger makes up for. With no puller connected, ``send`` waits
(wrap it in ``trio.move_on_after`` or use ``send_nowait``).
"""

from __future__ import annotations

from patterns._stream import ReceivingSocket, SendingSocket

__all__ = ["Pull", "Push"]


class Push(SendingSocket):
    """A push0 socket: each message goes to exactly one connected puller."""

    _protocol = "Push0"


class Pull(ReceivingSocket):
    """A pull0 socket: receives the share of messages its pushers hand it."""

    _protocol = "Pull0"
