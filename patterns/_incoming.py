"""A survey a :class:`~patterns._respondent.Respondent` received, and its reply.

:class:`IncomingSurvey` holds the survey's fields and the NNG context that keeps the route
back; a small common survey is read into the fields without an :class:`Envelope` (the
respondent's reader), and its reply is written from a :class:`~patterns._shape.Shape` or
as a common frame, without one either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio
from pynng import lib

from patterns._ctx_send import result_and_free, submit_threadsafe, wait_and_free
from patterns._gaps import GAP_MIN
from patterns._nng import raise_for
from patterns._shape import Shape
from patterns._wire import Envelope, common_frame
from patterns.errors import Closed
from patterns.shm.codec import delivering

if TYPE_CHECKING:
    from patterns._respondent import Respondent

__all__ = ["QUEUED_REPLY_TIMEOUT", "IncomingSurvey"]

_UNREAD = object()  # an IncomingSurvey's deadline not converted to trio's clock yet

QUEUED_REPLY_TIMEOUT = 5.0
"""A reply queued behind another on the same connection is dropped (``Timeout``) if it
is still waiting this many seconds after the survey's deadline."""


class IncomingSurvey:
    """A survey received by a :class:`Respondent`; answer it once with :meth:`reply`.

    ``kind``, ``sender``, ``id``, ``body`` and ``wall`` (the deadline on the wire, wall-clock
    time, or None) are the envelope's fields; a small common survey is read into them
    without an :class:`Envelope` (:attr:`envelope` builds it when asked)."""

    __slots__ = ("_ctx", "_deadline", "_envelope", "_fields", "_respondent", "body", "id", "kind", "sender", "wall")

    def __init__(self, respondent: Respondent, ctx: Any, envelope: Envelope) -> None:
        self._respondent = respondent
        self._ctx: Any = ctx  # the NNG context that holds the route back
        self._envelope: Envelope | None = envelope
        self._fields: tuple[Any, ...] = ()
        self.kind, self.sender, self.id, self.body = envelope.kind, envelope.sender, envelope.id, envelope.body
        self.wall = envelope.deadline
        self._deadline: float | None | object = _UNREAD  # on trio's clock, once read (``deadline``)

    @classmethod
    def of_fields(cls, respondent: Respondent, ctx: Any, fields: tuple[Any, ...], size: int,
                  session: bytes | None = None) -> IncomingSurvey:  # fmt: skip
        """A survey read as ``fields`` (kind, sender, id, body, re, deadline) from a frame of
        ``size`` bytes with no shared memory: no :class:`Envelope` built until one is asked for
        (``session``: the key a sealed one was opened under, its :attr:`Envelope.session`)."""
        survey = cls.__new__(cls)
        survey._respondent = respondent
        survey._ctx = ctx
        survey._envelope = None
        survey._fields = (*fields, size, session)
        survey.kind, survey.sender, survey.id, survey.body, _, survey.wall = fields
        survey._deadline = _UNREAD
        return survey

    @property
    def envelope(self) -> Envelope:
        """The survey's envelope (built once, the first time it is asked for, for a survey read as fields)."""
        envelope = self._envelope
        if envelope is None:
            kind, sender, ident, body, re, wall, size, session = self._fields
            envelope = self._envelope = Envelope(kind, sender, ident, body, re, wall, None, size, size, session)
        return envelope

    def __repr__(self) -> str:
        return f"<IncomingSurvey {self.id} from {self.sender!r} kind={self.kind!r}>"

    @property
    def deadline(self) -> float | None:
        """The surveyor's deadline on trio's clock (compare with ``trio.current_time()``,
        use with ``trio.move_on_at``), or None if it sent none. Converted once, the first
        time it is read (in trio's thread), from the wall-clock time on the wire
        (:attr:`wall`): a handler that answers at once never needs it, and the two clocks
        keep their distance meanwhile."""
        deadline = self._deadline
        if deadline is _UNREAD:
            wall = self.wall
            deadline = self._deadline = None if wall is None else trio.current_time() + (wall - time.time())
        return deadline  # type: ignore[return-value]

    @property
    def answered(self) -> bool:
        return self._ctx is None

    async def reply(self, value: Any, *, kind: str = "reply", inline: bool = False, shape: Shape | None = None,
                    hole: Any = None) -> None:  # fmt: skip
        """Send ``value`` back to the surveyor (at most once).

        A value that cannot be encoded raises :class:`EncodeError` and leaves the
        survey unanswered, so the caller can still reply with something else. If the
        surveyor has gone, NNG drops the reply. ``inline=True``: no shared-memory placement.

        ``shape`` (of ``kind`` frames from this socket's name, with ``re`` and no deadline:
        :meth:`Respondent.shape`): the frame is written from its fixed bytes with ``hole`` in
        its hole when that is of its common form (:meth:`Shape.write`), else as the body
        :meth:`Shape.fill` makes of ``hole`` (``value`` is not read).
        """
        resp = self._respondent
        if self._ctx is None:
            raise Closed(f"{self!r} was already answered or declined")
        ident, survey, guard = resp.next_id(), self.id, resp.guard
        limit = GAP_MIN if inline else resp._placed_limit
        max_size = resp.max_message_size if guard is None else resp.max_message_size - guard.overhead
        data = None
        if shape is not None:
            data = shape.write(ident, survey, None, hole, limit)
            if data is None or len(data) > max_size:
                data, value = None, shape.fill(hole)
        if data is None:
            # The common small reply: no Envelope, no placement (sealed whole, with a guard).
            data = common_frame(kind, resp.name, ident, value, survey, None, limit=limit, max_size=max_size)
        if data is not None:
            if guard is not None:
                data = guard.seal(data, kind)
            ctx, self._ctx = self._ctx, None
            await resp._send_reply(ctx, data, self.wall, survey)
            return
        envelope = Envelope(kind, resp.name, ident, value, survey)
        placement = None if inline else resp._placement(1)
        data = resp._frame(envelope, placement)
        ctx, self._ctx = self._ctx, None
        with delivering(placement):
            await resp._send_reply(ctx, data, self.wall, survey)

    def reply_threadsafe(self, value: Any, *, kind: str, ident: int, inline: bool = False, shape: Shape | None = None,
                         hole: Any = None) -> int | Callable[[], int] | None:  # fmt: skip
        """:meth:`reply` from a thread that is not trio's (a plain handler's), for a small
        plain ``value``: encodes it and hands it to NNG on this survey's context, without
        waiting. Returns the frame's size when it left at once (the connection was free); a
        function that waits, in the calling thread (never trio's), until it has left and then
        returns its size, when it is queued behind an earlier reply; or None when it cannot go
        this way (a guard seals frames; the value needs shared memory, splicing or the
        general encoder): :meth:`reply` sends it then.

        ``ident``: the reply's envelope id, taken with :meth:`Respondent.next_id` in trio's
        thread. ``shape`` and ``hole``: as for :meth:`reply` (``value`` then unread). Counts
        nothing and keeps the context: trio calls :meth:`settle_threadsafe` afterwards. The caller sees to it that trio neither answers nor declines this survey
        meanwhile. Raises (also the waiting function) :class:`Closed` (the socket closed),
        :class:`MessageTooLarge` and :class:`~patterns.Timeout` (the connection stayed busy)."""
        resp, ctx = self._respondent, self._ctx
        operation = f"reply to survey {self.id} from a handler thread"
        if ctx is None or resp._closed:
            raise Closed(f"{operation}: {self!r} was answered, or its socket closed")
        if resp.guard is not None:
            return None  # a guard's sequence is not thread-safe
        # Bodies holding a buffer this large may go to shared memory: the general path's.
        limit = GAP_MIN if inline or resp._beacons is None else min(GAP_MIN, resp.shared_memory.threshold)
        data = None
        if shape is not None:
            data = shape.write(ident, self.id, None, hole, limit)
            if data is None or len(data) > resp.max_message_size:
                data, value = None, shape.fill(hole)
        if data is None:
            data = common_frame(kind, resp.name, ident, value, self.id, None, limit=limit,
                                max_size=resp.max_message_size)  # fmt: skip
        if data is None:
            return None
        wall = self.wall  # trio's clock is not this thread's to read
        left = 0.0 if wall is None else max(wall - time.time(), 0.0)
        aio = submit_threadsafe(ctx, data, round(1000 * (left + QUEUED_REPLY_TIMEOUT)), operation, resp)
        size = len(data)
        if not lib.nng_aio_busy(aio):  # NNG wrote it in this call
            err = result_and_free(aio)
            if err:
                raise_for(err, operation=operation, where=resp)
            return size

        def wait() -> int:
            err = wait_and_free(aio)
            if err:
                raise_for(err, operation=operation, where=resp)
            return size

        return wait

    def settle_threadsafe(self, size: int | None) -> None:
        """After :meth:`reply_threadsafe` (trio's thread): the context goes back to the pool
        and a reply of ``size`` bytes is counted (None: nothing went out)."""
        resp = self._respondent
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            resp._release(ctx)
        if size is not None:
            resp._sent += 1
            resp._bytes_sent += size

    def decline(self) -> None:
        """Do not answer (the surveyor sees no reply from us)."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            self._respondent._release(ctx)

    def release_elsewhere(self) -> None:
        """After :meth:`reply_threadsafe`, or to decline, from the thread that took this
        survey with a :class:`SurveyTaker`: its context back to the pool, nothing counted
        (the taker's owner counts sends with :meth:`Respondent.count_sent`; :mod:`patterns._taker`)."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            self._respondent._release(ctx)  # one list append: atomic under the GIL


