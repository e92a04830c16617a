"""Sending from any thread (an asyncio loop's, a handler's): a mixin of :class:`~patterns._stream.SendingSocket`.

Small frames only, written in one piece and handed to NNG's thread-safe ``nng_send``
without waiting: a frame that needs the general encoder (a buffer for shared memory or to
splice, a value with no plain wire form), a sealed one (a guard's sequence is trio's alone)
or one NNG would not take now comes back as None, for the caller to send from trio. These
methods count nothing: the caller reports what went out, in trio's thread, with
:meth:`ThreadSends.count_sent`.
"""

from __future__ import annotations

from typing import Any

from pynng import lib

from patterns._fd import EAGAIN, NONBLOCK
from patterns._guard import Guard
from patterns._nng import raise_for
from patterns._shape import Shape
from patterns._wire import Envelope, common_frame, encode_common
from patterns.errors import Closed

__all__ = ["ThreadSends"]


class ThreadSends:
    """The thread-safe sends of a sending socket (a mixin)."""

    # Set by BaseSocket.__init__ and FdSocket (open).
    _handle: Any
    _closed: bool
    guard: Guard | None
    name: str
    max_message_size: int
    _placed_limit: int
    _sent: int
    _bytes_sent: int

    def send_common_threadsafe(self, envelope: Envelope) -> int | None:
        """Encode a small frame and send it now, from any thread (a handler's): returns its
        size, or None when it cannot go this way: a guard seals frames (its sequence is not
        thread-safe), the frame needs the general encoder (a buffer for shared memory or to
        splice, a value with no plain wire form) or NNG would wait. Reads only this socket's
        settings and NNG's thread-safe send; counts nothing: the caller reports what went out,
        in trio's thread, with :meth:`count_sent`. Raises :class:`Closed` (the socket is
        closed, or closes meanwhile) and :class:`MessageTooLarge`."""
        handle = self._handle
        if self._closed or handle is None:
            raise Closed(f"send from a handler thread: {self!r} is closed")
        if self.guard is not None:
            return None
        data = encode_common(envelope, limit=self._placed_limit, max_size=self.max_message_size)
        return None if data is None else self._send_threadsafe(handle, data)

    def send_fields_threadsafe(self, kind: str, ident: int, body: Any, re: int | None,
                               deadline: float | None) -> int | None:  # fmt: skip
        """:meth:`send_fields_nowait` from any thread, as :meth:`send_common_threadsafe` sends
        (the same bytes as the trio method, no :class:`Envelope` built): the frame's size, or
        None when it cannot go this way (a guard, not a common frame, NNG would wait). Counts
        nothing (:meth:`count_sent`). Raises :class:`Closed` and :class:`MessageTooLarge`."""
        handle = self._handle
        if self._closed or handle is None:
            raise Closed(f"send from another thread: {self!r} is closed")
        if self.guard is not None:  # (its sequence is trio's alone)
            return None
        data = common_frame(kind, self.name, ident, body, re, deadline, limit=self._placed_limit,
                            max_size=self.max_message_size)  # fmt: skip
        return None if data is None else self._send_threadsafe(handle, data)

    def send_shaped_threadsafe(self, shape: Shape, ident: int, re: int | None, deadline: float | None,
                               value: Any) -> int | None:  # fmt: skip
        """:meth:`send_shaped_nowait` from any thread: the frame of ``shape`` with ``value`` in its
        hole, else (not of the shape's common form, or over ``max_message_size``) the common frame
        of the same fields (:meth:`send_fields_threadsafe`), which a trio sender tries next: one
        call per frame. Its size, or None as :meth:`send_fields_threadsafe` says."""
        handle = self._handle
        if self._closed or handle is None:
            raise Closed(f"send from another thread: {self!r} is closed")
        if self.guard is not None:
            return None
        data = shape.write(ident, re, deadline, value, self._placed_limit)
        if data is None or len(data) > self.max_message_size:
            data = common_frame(shape.kind, shape.sender, ident, shape.fill(value), re, deadline,
                                limit=self._placed_limit, max_size=self.max_message_size)  # fmt: skip
            if data is None:
                return None
        return self._send_threadsafe(handle, data)

    def _send_threadsafe(self, handle: Any, data: bytes) -> int | None:
        err = lib.nng_send(handle, data, len(data), NONBLOCK)  # NNG's sockets are thread-safe
        if err == EAGAIN:
            return None
        if err:
            raise_for(err, operation="send", where=self)
        return len(data)

    def count_sent(self, frames: int, size: int) -> None:
        """Count frames sent by :meth:`send_common_threadsafe`, :meth:`send_fields_threadsafe`
        and :meth:`send_shaped_threadsafe` (trio's thread)."""
        self._sent += frames
        self._bytes_sent += size
