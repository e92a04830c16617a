"""The socket under a hotline: a pair1 :class:`~patterns.Pair` and the order of sending.

:class:`Link` is all the I/O a line does; :mod:`consensus.hotline.reader` reads through
it and everything else sends through it. A frame goes out at once when NNG takes it
without waiting and no other task is queued to send; otherwise the sender queues on a
FIFO lock and waits for room (NNG frames never interleave; the lock keeps waiting
senders in order, and only one task at a time may wait on NNG's send descriptor).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from consensus.hotline.frames import ASK, REPLY, ask_body
from patterns import HOLE, Envelope, Guard, Pair, Shape, TLSConfig, Unsent, WouldBlock

__all__ = ["Link"]


class Link:
    """One pair1 socket, listening or dialing at ``address``."""

    def __init__(self, address: str, *, listen: bool, name: str, max_message_size: int,
                 tls: TLSConfig | None, guard: Guard | None = None) -> None:  # fmt: skip
        self.address = address
        self.pair = Pair(listen=address if listen else None, dial=None if listen else address, name=name,
                         max_message_size=max_message_size, tls=tls, guard=guard)  # fmt: skip
        self.sending = trio.StrictFIFOLock()
        # Tasks holding or queued on ``sending``: read per frame instead of ``sending.locked()``
        # (a Python call per frame sent, the floor has none).
        self._senders = 0
        # The line's most frequent frames, written from their fixed bytes (patterns' Shape):
        # a plain ask of this side, and a reply. None: a name with no common form (the
        # general writer says why, at the first frame).
        shapes = self._shapes(name)
        self.ask_shape: Shape | None = shapes[0] if shapes else None
        self.reply_shape: Shape | None = shapes[1] if shapes else None

    def _shapes(self, sender: str) -> tuple[Shape, Shape] | None:
        """The shapes of a plain ask and of a reply from ``sender``."""
        pair = self.pair
        try:
            return (pair.shape(ASK, re=False, deadline=True, body=ask_body(HOLE, False), sender=sender, scalars=True),
                    pair.shape(REPLY, re=True, deadline=False, sender=sender, scalars=True))  # fmt: skip
        except ValueError:
            return None

    def expect_peer(self, name: str) -> None:
        """The peer's name is ``name`` (its hello said so): read its plain asks and its
        replies from their shapes (a name with no common form: the common reader)."""
        shapes = self._shapes(name)
        self.pair.expect(*(shapes or ()))

    @property
    def bound_address(self) -> str:
        """Where a listening line listens (a tcp port 0 resolved); a dialing line's address."""
        return self.pair.addresses[0] if self.pair.addresses else self.address

    def send_now(self, item: Envelope | Unsent) -> bool | Unsent:
        """Send at once if no other task is queued to send and NNG takes the frame without
        waiting. False when it did not go; an :class:`~patterns.Unsent` (false too) when its
        frame is written (and sealed) but NNG would wait: hand that to :meth:`send_queued`,
        so that the frame is sealed once. Raises what encoding raises (:class:`EncodeError`,
        :class:`MessageTooLarge`)."""
        if self._senders:
            return False
        try:
            if isinstance(item, Unsent):  # (sealed again if the session changed since: as send_unsent)
                item = self.pair.reseal_unsent(item)
                self.pair.send_bytes_nowait(item.frame)
            else:
                self.pair.send_envelope_nowait(item)
        except WouldBlock as exc:
            return item if type(item) is Unsent else (False if exc.frame is None else Unsent(exc.frame, item.kind))
        return True

    def send_fields_now(
        self, kind: str, ident: int, body: object, re: int | None, deadline: float | None
    ) -> bool | Unsent:
        """:meth:`send_now` for the fields of an envelope from this line, when they make a
        common frame (:meth:`~patterns.Pair.send_fields_nowait`); False when they do not, or
        other senders wait: the caller sends the envelope (:meth:`send_now`, :meth:`send`); an
        :class:`~patterns.Unsent` when NNG would wait: the caller sends that instead."""
        return not self._senders and self.pair.send_fields_nowait(kind, ident, body, re, deadline)

    def send_ask_now(self, ask_id: int, value: object, deadline: float) -> bool | Unsent:
        """:meth:`send_now` for a plain ask of this line (``deadline``: wall-clock time),
        written from its shape, or else from its fields as a common frame (no envelope
        built); False when neither can go at once: the caller sends the envelope; an
        :class:`~patterns.Unsent` when NNG would wait: the caller sends that instead."""
        if self._senders:
            return False
        pair, shape = self.pair, self.ask_shape
        sent = shape is not None and pair.send_shaped_nowait(shape, ask_id, None, deadline, value)
        if sent is False:  # (False: not of the shape's form; an Unsent goes back as it is, sealed once)
            sent = pair.send_fields_nowait(ASK, ask_id, ask_body(value, False), None, deadline)
        return sent

    def send_shaped_now(self, shape: Shape | None, ident: int, re: int | None, deadline: float | None,
                        value: object) -> bool | Unsent:  # fmt: skip
        """:meth:`send_fields_now` for a frame of one of this line's shapes with ``value`` in
        its hole (:meth:`~patterns.Pair.send_shaped_nowait`); False when it is not of the
        shape's common form or other senders wait: the caller sends it another way; an
        :class:`~patterns.Unsent` when NNG would wait: the caller sends that instead."""
        return shape is not None and not self._senders and self.pair.send_shaped_nowait(shape, ident, re, deadline, value)

    async def send(self, item: Envelope | Unsent, *, checkpoint: bool = False) -> None:
        """Send a frame, waiting in FIFO order for room when it cannot go out at once.
        With ``checkpoint``, it is a trio checkpoint even when it does not wait."""
        if checkpoint:
            await trio.lowlevel.checkpoint_if_cancelled()
        sent = self.send_now(item)
        if sent:
            if checkpoint:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return
        if type(sent) is Unsent:
            item = sent
        self._senders += 1
        try:
            async with self.sending:  # (inline, not send_queued: no extra coroutine per frame that waits)
                if isinstance(item, Unsent):
                    await self.pair.send_unsent(item)  # (sealed again if the session changed meanwhile)
                else:
                    await self.pair.send_envelope(item)
        finally:
            self._senders -= 1

    async def send_queued(self, item: Envelope | Unsent) -> None:
        """Send after the senders already waiting (when :meth:`send_now` said no): an
        :class:`~patterns.Unsent`'s frame as it is, an envelope written (and sealed) now."""
        self._senders += 1
        try:
            async with self.sending:
                if isinstance(item, Unsent):
                    await self.pair.send_unsent(item)  # (sealed again if the session changed meanwhile)
                else:
                    await self.pair.send_envelope(item)
        finally:
            self._senders -= 1

    async def send_while(self, item: Envelope | Unsent, wanted: Callable[[], bool]) -> bool:
        """:meth:`send` for a frame that may stop being wanted while it waits for room (an ask
        whose connection closed meanwhile: sent at most once, never to the next peer):
        ``wanted()`` is asked before each try, and False returned when it says no."""
        if not wanted():
            return False
        sent = self.send_now(item)
        if sent:
            return True
        if type(sent) is Unsent:
            item = sent
        self._senders += 1
        try:
            async with self.sending:
                pair = self.pair
                while isinstance(item, Envelope):  # written (and sealed) at its first try, then kept
                    if not wanted():
                        return False
                    try:
                        pair.send_envelope_nowait(item)
                        return True
                    except WouldBlock as exc:
                        if exc.frame is not None:
                            item = Unsent(exc.frame, item.kind)
                        else:  # (its buffers went to shared memory: written again at the next try)
                            await pair.wait_sendable()
                return await pair.send_unsent(item, wanted=wanted)
        finally:
            self._senders -= 1

    async def send_within(self, envelope: Envelope, seconds: float) -> bool:
        """Send a frame of the line's own (hello, ping, pong), giving up after ``seconds``:
        a peer that takes nothing for that long is caught by the heartbeats. False when it
        gave up (the frame did not go: a send is cancelled only while it waits)."""
        with trio.move_on_after(seconds) as waited:
            await self.send(envelope)
        return not waited.cancelled_caught
