"""A respondent's surveys taken in another thread than trio's (docs/asyncio.md §4.6).

An asyncio loop watching :attr:`Respondent.receive_descriptor` takes the surveys itself
with a :class:`SurveyTaker`: a non-blocking ``nng_ctx_recvmsg`` on a pooled context, with
an out-buffer of its own (the socket's is trio's). Only a small plain survey is decoded
there, into fields as trio's own receive reads it (the expected shapes, then the common
reader) or else with the pure decoder (nothing is counted as malformed, nothing attached);
the others are a :class:`Taken` that trio opens, so the malformed counters and shared memory stay trio's.
"""

from __future__ import annotations

import select
from typing import Any

from pynng import ffi

from patterns._respondent import IncomingSurvey, Respondent
from patterns._wire import decode
from patterns.errors import MalformedMessage

__all__ = ["SurveyTaker", "Taken"]


class Taken:
    """A survey a :class:`SurveyTaker` took but did not decode for its thread (it refers to
    shared memory, or it is malformed, or the socket seals): trio opens it (:meth:`open`)."""

    __slots__ = ("_ctx", "_respondent", "body")

    def __init__(self, respondent: Respondent, ctx: Any, body: bytes) -> None:
        self._respondent = respondent
        self._ctx = ctx
        self.body = body

    def open(self) -> IncomingSurvey:
        """Decoded and attached (trio's thread); raises :class:`MalformedMessage`, counted,
        with its context given back."""
        resp = self._respondent
        try:
            envelope = resp._unpack(self.body)
        except MalformedMessage:
            resp._release(self._ctx)
            raise
        return IncomingSurvey(resp, self._ctx, envelope)


class SurveyTaker:
    """Takes a :class:`Respondent`'s surveys in another thread than trio's (an asyncio
    loop watching :attr:`Respondent.receive_descriptor`): non-blocking receives with an
    out-buffer of its own. Trio must not receive on the socket meanwhile: then this thread
    alone opens contexts and writes the receive counters; trio only gives contexts back
    (a list append) and reads the counters."""

    __slots__ = ("_out", "_queued", "_respondent")

    def __init__(self, respondent: Respondent) -> None:
        self._respondent = respondent
        self._out = ffi.new("nng_msg **")  # this thread's: the socket's own is trio's
        # A zero-timeout poll of NNG's descriptor says "nothing queued" in under 1 µs; a
        # failing receive on a pooled context costs several (each wake-up ends with one).
        self._queued = select.poll()
        self._queued.register(respondent.receive_descriptor, select.POLLIN)

    def take(self) -> IncomingSurvey | Taken | None:
        """The next survey, decoded when it is small and plain (no shared memory); a
        :class:`Taken` for trio otherwise; None when none is queued. Raises :class:`Closed`."""
        resp = self._respondent
        operation = "receive a survey on another thread"
        if resp._closed or resp._handle is None:
            resp._require_open(operation)
        if not self._queued.poll(0):
            return None
        got = resp._receive_body(operation, self._out)
        if got is None:
            return None
        ctx, body = got
        if resp.guard is not None:
            return Taken(resp, ctx, body)
        # A small common survey (of a shape the socket expects, or read by the common
        # reader) into fields, as trio's receive reads it: no Envelope. Both readers are
        # pure (they count nothing); the expected shapes are one tuple, replaced whole.
        fields = resp._plain_fields(body)
        if fields is not None:
            return IncomingSurvey.of_fields(resp, ctx, fields, len(body))
        try:  # the pure decode: a fault is trio's to count (open_taken decodes again)
            envelope = decode(body, max_size=resp.max_message_size, max_items=resp.max_items,
                              measure=resp._measure)  # fmt: skip
        except MalformedMessage:
            return Taken(resp, ctx, body)
        if envelope.shm is not None:  # attaching is trio's
            return Taken(resp, ctx, body)
        return IncomingSurvey(resp, ctx, envelope)
