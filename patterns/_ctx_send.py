"""Replies on an NNG context with a callback-less aio, and their completion.

:class:`~patterns._respondent.Respondent` hands a reply to NNG with ``nng_ctx_send`` on an
aio without a callback: when the connection is free NNG writes the frame in that very
call and the aio is already complete; a reply queued behind an earlier one on the same
connection is waited for in a worker thread (:func:`wait_and_free`). These helpers read
and free such aios, and submit a reply from a thread that is not trio's.
"""

from __future__ import annotations

from typing import Any

from pynng import ffi, lib

from patterns._nng import raise_for

__all__ = ["aio_result", "result_and_free", "submit_threadsafe", "wait_and_free"]

_NULL = ffi.NULL


def aio_result(aio: Any) -> int:
    """The result of a completed aio; frees its message if NNG did not take it."""
    err: int = lib.nng_aio_result(aio)
    if err:
        msg = lib.nng_aio_get_msg(aio)
        if msg != ffi.NULL:
            lib.nng_msg_free(msg)
            lib.nng_aio_set_msg(aio, _NULL)
    return err


def result_and_free(aio: Any) -> int:
    """:func:`aio_result`, then free the aio."""
    err = aio_result(aio)
    lib.nng_aio_free(aio)
    return err


def submit_threadsafe(ctx: Any, data: bytes, timeout_ms: int, operation: str, where: object) -> Any:
    """``Respondent._submit`` for a thread that is not trio's: its own aio and message
    (the socket's are trio's). Not ``nng_ctx_sendmsg``: non-blocking, it says EAGAIN even
    on an idle connection (``nng-facts.md``)."""
    aio_out, msg_out = ffi.new("nng_aio **"), ffi.new("nng_msg **")
    err = lib.nng_aio_alloc(aio_out, ffi.NULL, ffi.NULL)
    if err:
        raise_for(err, operation=operation, where=where)
    aio = aio_out[0]
    err = lib.nng_msg_alloc(msg_out, len(data))
    if err:
        lib.nng_aio_free(aio)
        raise_for(err, operation=operation, where=where)
    msg = msg_out[0]
    ffi.memmove(lib.nng_msg_body(msg), data, len(data))
    lib.nng_aio_set_msg(aio, msg)
    lib.nng_aio_set_timeout(aio, timeout_ms)
    lib.nng_ctx_send(ctx, aio)
    return aio


def wait_and_free(aio: Any) -> int:  # in a worker thread: NNG's calls release the GIL
    lib.nng_aio_wait(aio)
    return result_and_free(aio)
