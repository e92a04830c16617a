"""PAIR: one direct, bidirectional line to exactly one peer (NNG pair1, not polyamorous)."""

from __future__ import annotations

from typing import Any

import pynng
from pynng import ffi, lib

from ._nng import translate
from ._stream import ReceivingSocket, SendingSocket
from ._wire import Envelope

__all__ = ["Pair"]


class Pair(SendingSocket, ReceivingSocket):
    """A pair1 socket. One peer at a time: NNG refuses a second connection.

    ``async with Pair(listen="ipc:///tmp/a.ipc") as line: await line.send({"turn": 1})``
    """

    _protocol = "Pair1"

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._msg_out = ffi.new("nng_msg **")  # trio thread only

    def _try_receive_from(self, operation: str) -> tuple[bytes, int] | None:
        """The base class's non-blocking receive, without a pynng ``Message`` per frame (a
        Python object with a lock, a pipe lookup under another lock, a finalizer): the frame
        is copied out of NNG's message and the message freed here. About 6 µs less a frame."""
        sock = self._require_open(operation)
        err = lib.nng_recvmsg(sock.socket, self._msg_out, lib.NNG_FLAG_NONBLOCK)
        if err:
            if err == lib.NNG_EAGAIN:
                return None
            try:
                pynng.check_err(err)
            except pynng.NNGException as exc:
                raise translate(exc, operation=operation, state=repr(self)) from exc
        msg = self._msg_out[0]
        try:
            data = ffi.buffer(lib.nng_msg_body(msg), lib.nng_msg_len(msg))[:]
            pipe_id = lib.nng_pipe_id(lib.nng_msg_get_pipe(msg))
        finally:
            lib.nng_msg_free(msg)
        self._received += 1
        self._bytes_received += len(data)
        return data, pipe_id

    def send_envelope_nowait(self, envelope: Envelope) -> None:
        """Send a complete envelope now (as :meth:`send_envelope` would), or raise
        :class:`WouldBlock` when NNG's send queue is full or no peer is ready."""
        self._send_encoded_nowait(self._encode(envelope))
