"""BUS: every message goes to every directly connected peer.

NNG's bus does not forward: in a chain A-B-C, C never hears A. A room-wide bus must be
a full mesh (each member dials every other), which the ``consensus`` layer arranges.
A sender does not hear itself. Delivery is best effort: NNG drops a message for a peer
whose queue (16 messages by default) is full.
"""

from __future__ import annotations

from patterns._stream import ReceivingSocket, SendingSocket

__all__ = ["Bus"]


class Bus(SendingSocket, ReceivingSocket):
    """A bus0 socket: broadcast to directly connected peers, receive from all of them."""

    _fanout = True
    _measure = True  # a room's broadcasts wait in an inbox budgeted by their weight

    _protocol = "Bus0"
