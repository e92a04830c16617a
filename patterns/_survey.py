"""SURVEY: ask every connected respondent, gather replies until a deadline.

The surveyor is a raw NNG socket (:mod:`patterns._raw`) driven by readiness instead of
NNG contexts and their per-message aios; the respondent is in :mod:`patterns._respondent`.
The wire is NNG's surveyor0/respondent0, so NNG peers (``nngcat``, pynng) interoperate.

* Every public ``deadline`` here is on trio's clock (``trio.current_time()``), like the
  respondent's :attr:`IncomingSurvey.deadline`; only the wire (the envelope's ``dl``)
  carries wall-clock time, which the survey fills in from its ``timeout``.
* A survey to peers on this host may create shared-memory segments (its ``Placement``);
  routing a reply attaches the ones it refers to (``BaseSocket._unpack``).
* The surveyor routes every reply by the envelope's ``re`` to the survey it answers;
  several surveys can be open at once. A survey ends at its deadline (this toolkit's
  clock, not NNG's survey timer), or earlier when the caller stops reading: callers that
  know whom to expect (the ``consensus`` rooms do) stop once everyone answered. A reply
  to no open survey (late, or to a closed one) is dropped and counted as ``stray``.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any, Self

import trio
from pynng import ffi, lib

from patterns._gaps import GAP_MIN
from patterns._guard import FirstOpened
from patterns._nng import raise_for
from patterns._pair import Fields
from patterns._raw import NOTHING_QUEUED, RawSocket, survey_header
from patterns._shape import HOLE, Shape
from patterns._wire import MAX_KIND_LENGTH, MAX_SENDER_LENGTH, Envelope, common_frame, read_common
from patterns.errors import Closed, MalformedMessage
from patterns.shm.codec import delivering

__all__ = ["SurveyReplies", "Surveyor"]


def _fields(envelope: Envelope) -> Fields:
    return envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline


def _envelope(fields: Fields, size: int, held: Envelope | bytes | None) -> Envelope:
    """A queued reply's envelope: its own, or built from its fields (with the key a sealed
    one was opened under: its :attr:`Envelope.session`)."""
    if isinstance(held, Envelope):
        return held
    return Envelope(*fields, None, size, size, held)


_WAITING = "waiting for a survey's replies"  # (a Closed it raises is raised again naming the survey)

MAX_OWNED_SHAPES = 4096
"""Reply shapes kept by sender name (:meth:`Surveyor.expect_replies`); past this they are made again."""

MAX_QUEUED_REPLIES = 4096
"""Replies held for one survey that its reader has not taken yet; past this a reply is
dropped and counted as ``stray`` (only a peer answering many times over gets there)."""


class SurveyReplies:
    """The replies to one survey: an async iterator that ends at the survey's deadline.

    Stop early with :meth:`aclose` (or ``async with``) once you have what you need;
    replies that arrive after that are dropped and counted as ``stray``. Malformed
    replies are skipped and counted as ``malformed`` in the surveyor's ``statistics()``.
    """

    def __init__(self, surveyor: Surveyor, survey_id: int, deadline: float) -> None:
        self._surveyor = surveyor
        # Replies routed and not taken yet: their fields, their frame's size, and their
        # envelope if one was decoded (for a small common reply, :meth:`take_fields`, none:
        # the key a sealed one was opened under, or None).
        self._queue: deque[tuple[Fields, int, Envelope | bytes | None]] | None = deque()
        self.id = survey_id
        self.deadline = deadline
        """The survey's end on trio's clock (``trio.current_time()``)."""

    def __aiter__(self) -> SurveyReplies:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "done" if self.done else f"open, {len(self._queue or ())} queued"
        return f"<SurveyReplies {self.id} {state}>"

    @property
    def done(self) -> bool:
        return self._queue is None

    def _finish(self) -> None:
        if self._queue is not None:
            self._queue = None
            self._surveyor._routes.pop(self.id, None)

    async def aclose(self) -> None:
        """Stop gathering replies; later ones are dropped."""
        self._finish()
        await trio.lowlevel.checkpoint()

    def take(self) -> list[Envelope]:
        """Every reply that has arrived and not been taken yet, without waiting (also those
        NNG has queued for any survey of this surveyor: they are routed now). A reader that
        takes a batch per wake-up costs one pass of trio's scheduler per batch, not per reply;
        ``[]`` once the survey is done."""
        queue = self._queue
        if queue is None:
            return []
        self._surveyor._pump()
        batch = [_envelope(*item) for item in queue]
        queue.clear()
        return batch

    def take_fields(self) -> list[Fields]:
        """:meth:`take`, each reply as its envelope's (kind, sender, id, body, re, deadline):
        a small common reply read into them is never built into an :class:`Envelope`."""
        queue = self._queue
        if queue is None:
            return []
        self._surveyor._pump()
        batch = [item[0] for item in queue]
        queue.clear()
        return batch

    async def wait(self) -> None:
        """Wait until a reply may have arrived (then :meth:`take` what came), or return at
        once when the survey is done or has replies queued. It has no deadline of its own
        (the survey's included): cancel it to stop waiting; the survey stays open. Raises
        :class:`Closed` if the surveyor closes. A cancel point."""
        if self._queue is None or self._queue:
            await trio.lowlevel.checkpoint()
            return
        surveyor = self._surveyor
        try:
            await surveyor._wait(surveyor._receiving, surveyor._recv_fd, _WAITING)  # type: ignore[arg-type]
        except Closed:
            self._finish()
            raise Closed(f"survey {self.id}: {self._surveyor!r} was closed") from None

    def close(self) -> None:
        """Stop gathering replies, like :meth:`aclose`, without a checkpoint."""
        self._finish()

    def wake(self) -> None:
        """End a pending :meth:`wait` now, as if a reply may have come: its caller looks
        again (a deadline of its own passed, say). A caller that is not waiting is not told:
        it must look before it waits. The readers of the surveyor's other surveys wake too,
        and wait again."""
        surveyor = self._surveyor
        receiving = surveyor._receiving
        if receiving.behind:
            receiving.lot.unpark_all()
        if receiving.parked and surveyor._recv_fd is not None:
            surveyor._rouse(receiving, surveyor._recv_fd)

    async def __anext__(self) -> Envelope:
        surveyor = self._surveyor
        while True:
            queue = self._queue
            if queue is None:
                raise StopAsyncIteration
            if queue:
                return _envelope(*queue.popleft())
            if trio.current_time() >= self.deadline:
                self._finish()
                raise StopAsyncIteration
            try:
                if not surveyor._pump():
                    with trio.move_on_at(self.deadline):
                        await surveyor._wait(surveyor._receiving, surveyor._recv_fd, _WAITING)  # type: ignore[arg-type]
            except Closed:
                self._finish()
                raise Closed(f"survey {self.id}: {surveyor!r} was closed") from None
            except BaseException:
                self._finish()  # cancelled: the survey is over for us
                raise

    async def collect(self) -> list[Envelope]:
        """Gather every reply until the deadline."""
        return [reply async for reply in self]


class Surveyor(RawSocket):
    """A surveyor0 socket.

    ``replies = await s.survey(question, timeout=2.0)`` sends the survey to every
    connected respondent; ``async for reply in replies`` yields their envelopes
    (``reply.sender``, ``reply.body``) until the deadline.
    """

    _protocol = "Surveyor0"
    _raw_opener = "nng_surveyor0_open_raw"
    # The readers of several surveys wait together (``_wait``): one parks on NNG's
    # descriptor, the others behind it; whoever wakes routes what came (``_pump``).

    def _setup(self, sock: Any) -> None:
        super()._setup(sock)
        self._routes: dict[int, SurveyReplies] = {}
        self._nng_ids = itertools.count(1)
        self._receiving = self._waiters["receive"]

    # Sealed replies read from their sender's shape (:meth:`expect_replies`): the template,
    # and the shapes by key owner (None: that name has no common form).
    _reply_template: tuple[str, Any, bool] | None = None
    _owned: dict[str, Shape | None]

    def expect_replies(self, kind: str, *, body: Any = HOLE, scalars: bool = False) -> None:
        """Read sealed replies of ``kind`` (with ``re``, no deadline, ``body`` around the value:
        a room's poll answers) from a :class:`~patterns._shape.Shape` of their sender, before
        the common reader. A plain reply's sender is known only once its frame is read; a
        sealed one's is known first, when its key speaks for one name only (the guard's
        ``owner``): the shape of that name's replies is made once and kept."""
        self._reply_template = (kind, body, scalars)
        self._owned = {}

    def _owned_shape(self, owner: str) -> Shape | None:
        """The shape of ``owner``'s replies (:meth:`expect_replies`), made once; None when there is none."""
        template = self._reply_template
        if template is None:
            return None
        kind, body, scalars = template
        try:
            shape: Shape | None = Shape(kind, owner, re=True, deadline=False, body=body, max_kind=MAX_KIND_LENGTH,
                                        max_sender=MAX_SENDER_LENGTH, scalars=scalars)  # fmt: skip
        except ValueError:  # a name with no common form: the common reader reads its replies
            shape = None
        if len(self._owned) >= MAX_OWNED_SHAPES:
            self._owned.clear()
        self._owned[owner] = shape
        return shape

    def shape(self, kind: str, *, body: Any = HOLE, scalars: bool = False) -> Shape:
        """The :class:`~patterns._shape.Shape` of this socket's surveys of ``kind`` (from its
        name, with a deadline and no ``re``), for :meth:`survey`'s ``shape``. ``ValueError``
        when such frames have no common form (a name too long, say)."""
        return Shape(kind, self.name, re=False, deadline=True, body=body, max_kind=MAX_KIND_LENGTH,
                     max_sender=MAX_SENDER_LENGTH, scalars=scalars)  # fmt: skip

    async def survey(
        self, value: Any, *, timeout: float, kind: str = "survey", linger: float = 0.0, inline: bool = False,
        shape: Shape | None = None, hole: Any = None,
    ) -> SurveyReplies:
        """Send ``value`` to every respondent; returns the replies' async iterator.

        Respondents are told the deadline ``timeout`` seconds from now (the envelope's
        ``dl``). The iterator ends then, or ``linger`` seconds later: replies that
        arrive during the linger are late, and still yielded so the caller can count
        them. ``inline=True``: no shared-memory placement (every buffer in the frame).

        ``shape`` (of ``kind`` surveys from this socket: :meth:`shape`): the frame is written
        from its fixed bytes with ``hole`` in its hole when that is of its common form
        (:meth:`Shape.write`: the bytes the common writer makes of ``shape.fill(hole)``),
        else as the body :meth:`Shape.fill` makes of ``hole`` (``value`` is not read).
        """
        if not timeout > 0:
            raise ValueError(f"survey timeout must be > 0 seconds, got {timeout!r}")
        if not linger >= 0:
            raise ValueError(f"survey linger must be >= 0 seconds, got {linger!r}")
        if self._closed or self._sock is None:
            self._require_open(f"survey(timeout={timeout})")
        operation = "survey"  # (its errors name it; formatting the timeout cost ~1 µs a survey)
        ident, wall = self.next_id(), time.time() + timeout
        placement, guard = None, self.guard
        limit = GAP_MIN if inline else self._placed_limit
        max_size = self.max_message_size if guard is None else self.max_message_size - guard.overhead
        data = None
        if shape is not None:  # (a room's poll: its question in the shape's hole)
            data = shape.write(ident, None, wall, hole, limit)
            if data is None or len(data) > max_size:
                data, value = None, shape.fill(hole)
        if data is None:
            # The common small survey: no Envelope, no placement (sealed whole, with a guard).
            data = common_frame(kind, self.name, ident, value, None, wall, limit=limit, max_size=max_size)
        if data is not None and guard is not None:
            data = guard.seal(data, kind)
        if data is None:
            placement = None if inline else self._placement(self._receivers())
            data = self._frame(Envelope(kind, self.name, ident, value, None, wall), placement)
        replies = SurveyReplies(self, ident, trio.current_time() + timeout + linger)
        self._routes[ident] = replies  # before the send: a reply may come at once
        try:
            if placement is None:  # the common survey: nothing in shared memory to hand over
                await self._send_message(survey_header(next(self._nng_ids)), data, operation)
            else:
                with delivering(placement):
                    await self._send_message(survey_header(next(self._nng_ids)), data, operation)
        except BaseException:
            replies._finish()
            raise
        return replies

    def _pump(self) -> bool:
        """Route every queued reply to its survey; True if any survey got one."""
        routed = False
        aio = self._recv_aio
        if self._closed or aio is None:
            self._require_open("survey")
        handle, routes = self._handle, self._routes
        guard, max_size, max_items = self.guard, self.max_message_size, self.max_items
        # Every queued reply, in one loop, through the socket's own aio (``_raw``); the
        # header is NNG's routing, left unread.
        while True:
            lib.nng_recv_aio(handle, aio)
            lib.nng_aio_wait(aio)  # never waits: a zero timeout (``_raw``)
            err = lib.nng_aio_result(aio)
            if err:
                if err == NOTHING_QUEUED:
                    break
                raise_for(err, operation="survey", where=self)
            msg = lib.nng_aio_get_msg(aio)
            try:
                body = ffi.buffer(lib.nng_msg_body(msg), lib.nng_msg_len(msg))[:]
            finally:
                lib.nng_msg_free(msg)
            size = len(body)
            self._received += 1
            self._bytes_received += size
            # A small common frame: read here and routed as fields (``_unpack``'s fast path,
            # without its Envelope: :meth:`SurveyReplies.take_fields`); a sealed one once its
            # guard has checked it (key, tag, replay window: refused and counted there), its
            # payload then read the same way and held to its key's sender and kinds.
            if guard is None:
                opened, session = None, None
                fields = read_common(body, max_size=max_size, max_items=max_items, measure=self._measure)
            else:
                try:
                    opened = self._guard_open(body)
                except MalformedMessage as exc:
                    self._skipped("reply", exc)
                    continue
                payload, owner, session = opened.payload, opened.owner, opened.session
                size = len(payload)  # (an envelope's size is its payload's, as _unpack's)
                fields = None
                if owner is not None and self._reply_template is not None:  # read from its sender's shape
                    shape = self._owned.get(owner)
                    if shape is None and owner not in self._owned:
                        shape = self._owned_shape(owner)
                    if (shape is not None and size <= max_size and size <= max_items
                            and (opened.kinds is None or shape.kind in opened.kinds)):  # fmt: skip
                        got = shape.read(payload)
                        if got is not None:
                            if type(opened) is FirstOpened:  # (as _opened_fields: only a frame fully accepted)
                                opened.accepted()
                            fields = (shape.kind, owner, got[0], got[3], got[1], got[2])
                if fields is None:
                    fields = self._opened_fields(opened)
            if fields is not None:
                re = fields[4]
                replies = routes.get(re) if re is not None else None
                queue = replies._queue if replies is not None else None
                if queue is None or len(queue) >= MAX_QUEUED_REPLIES:
                    self._stray += 1
                    continue
                queue.append((fields, size, session))  # (no Envelope: built by take() only)
                routed = True
                continue
            try:
                envelope = self._unpack(body) if opened is None else self._unpack_opened(opened, len(body))
            except MalformedMessage as exc:
                self._skipped("reply", exc)
                continue
            replies = routes.get(envelope.re) if envelope.re is not None else None
            queue = replies._queue if replies is not None else None
            if queue is None or len(queue) >= MAX_QUEUED_REPLIES:
                self._stray += 1
                continue
            queue.append((_fields(envelope), size, envelope))
            routed = True
        if routed:
            receiving = self._receiving
            if receiving.behind:
                receiving.lot.unpark_all()  # the surveys' readers parked behind us
            if receiving.parked and self._recv_fd is not None:
                self._rouse(receiving, self._recv_fd)  # the reader on the descriptor: maybe its reply
        return routed

    def _surveys_open(self) -> int:
        return len(self._routes)
