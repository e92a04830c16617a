"""SURVEY: ask every connected respondent, gather replies until a deadline.

Each survey runs on its own NNG context, so several surveys can be open on one
socket without mixing replies. NNG does not know how many respondents exist and
keeps a survey open until its timer fires; callers that know whom to expect (the
``consensus`` rooms do) stop reading early, and the context is closed then.

Respondents also take each survey on a fresh context, so a slow handler for one
survey does not stop the reply to another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Self

import pynng
import trio

from ._errors import Closed, MalformedMessage
from ._nng import set_context_survey_time, translate
from ._shm_codec import delivering
from ._socket import BaseSocket
from ._wire import Envelope, decode, encode

__all__ = ["IncomingSurvey", "Respondent", "SurveyReplies", "Surveyor"]

log = logging.getLogger("patterns")

# NNG's own survey timer is set a little past the trio deadline, so trio (whose clock
# the caller controls) decides when a survey ends, not NNG's coarser timer.
_NNG_SURVEY_MARGIN = 0.5


class _ContextOwner(BaseSocket):
    """Tracks open NNG contexts so they close before the socket does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._contexts: set[Any] = set()

    def _new_context(self, operation: str) -> Any:
        sock = self._require_open(operation)
        try:
            ctx = sock.new_context()
        except pynng.NNGException as exc:
            raise translate(exc, operation=operation, state=repr(self)) from exc
        self._contexts.add(ctx)
        return ctx

    def _discard(self, ctx: Any) -> None:
        if ctx in self._contexts:
            self._contexts.discard(ctx)
            ctx.close()

    def _release_contexts(self) -> None:
        for ctx in list(self._contexts):
            self._discard(ctx)

    def _decode_counted(self, data: bytes) -> Envelope:
        self._received += 1
        self._bytes_received += len(data)
        try:
            return decode(data, max_size=self.max_message_size, shared_memory=self.shared_memory)
        except MalformedMessage:
            self._malformed += 1
            raise

    def _surveys_open(self) -> int:
        return len(self._contexts)


class SurveyReplies:
    """The replies to one survey: an async iterator that ends at the survey's deadline.

    Stop early with :meth:`aclose` (or ``async with``) once you have what you need;
    the survey's NNG context is closed then, and late replies are dropped by NNG.
    Malformed replies and replies to other surveys are skipped and counted in the
    surveyor's ``statistics()``.
    """

    def __init__(self, surveyor: Surveyor, ctx: Any, survey_id: int, deadline: float) -> None:
        self._surveyor = surveyor
        self._ctx: Any = ctx
        self.id = survey_id
        self.deadline = deadline
        """The survey's end on trio's clock (``trio.current_time()``)."""

    def __aiter__(self) -> SurveyReplies:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def done(self) -> bool:
        return self._ctx is None

    def _finish(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            self._surveyor._discard(ctx)

    async def aclose(self) -> None:
        """Stop gathering replies and release the survey's context."""
        self._finish()
        await trio.lowlevel.checkpoint()

    async def __anext__(self) -> Envelope:
        while True:
            ctx = self._ctx
            remaining = self.deadline - trio.current_time()
            if ctx is None or remaining <= 0:
                self._finish()
                raise StopAsyncIteration
            data = None
            with trio.move_on_after(remaining):
                try:
                    data = await ctx.arecv()
                except (pynng.Timeout, pynng.BadState):
                    pass  # NNG's own timer ended the survey
                except pynng.Closed:
                    self._finish()
                    if self._surveyor.closed:
                        raise Closed(f"survey {self.id}: {self._surveyor!r} was closed") from None
                except pynng.NNGException as exc:
                    self._finish()
                    raise translate(exc, operation=f"survey {self.id}", state=repr(self._surveyor)) from exc
                except BaseException:
                    self._finish()  # cancelled: the survey is over for us
                    raise
            if data is None:
                self._finish()
                raise StopAsyncIteration
            try:
                envelope = self._surveyor._decode_counted(data)
            except MalformedMessage as exc:
                log.warning("%r skipped a malformed reply to survey %d: %s", self._surveyor, self.id, exc)
                continue
            if envelope.re != self.id:
                self._surveyor._stray += 1
                continue
            return envelope

    async def collect(self) -> list[Envelope]:
        """Gather every reply until the deadline."""
        return [reply async for reply in self]


class Surveyor(_ContextOwner):
    """A surveyor0 socket.

    ``replies = await s.survey(question, timeout=2.0)`` sends the survey to every
    connected respondent; ``async for reply in replies`` yields their envelopes
    (``reply.sender``, ``reply.body``) until the deadline.
    """

    _protocol = "Surveyor0"

    async def survey(
        self, value: Any, *, timeout: float, kind: str = "survey", linger: float = 0.0
    ) -> SurveyReplies:
        """Send ``value`` to every respondent; returns the replies' async iterator.

        Respondents are told the deadline ``timeout`` seconds from now (the envelope's
        ``dl``). The iterator ends then, or ``linger`` seconds later: replies that
        arrive during the linger are late, and still yielded so the caller can count
        them.
        """
        if not timeout > 0:
            raise ValueError(f"survey timeout must be > 0 seconds, got {timeout!r}")
        if not linger >= 0:
            raise ValueError(f"survey linger must be >= 0 seconds, got {linger!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        envelope = Envelope(
            kind=kind, sender=self.name, id=self._next_id(), body=value, deadline=time.time() + timeout
        )
        placement = self._placement(len(self.peers_state))
        data = encode(envelope, max_size=self.max_message_size, placement=placement)
        with delivering(placement):
            ctx = self._new_context(f"survey(timeout={timeout})")
            try:
                set_context_survey_time(ctx, timeout + linger + _NNG_SURVEY_MARGIN)
                ctx.send(data)  # a surveyor send never waits: NNG queues or drops per pipe
            except pynng.NNGException as exc:
                self._discard(ctx)
                raise translate(exc, operation=f"survey(timeout={timeout})", state=repr(self)) from exc
        self._sent += 1
        self._bytes_sent += len(data)
        replies = SurveyReplies(self, ctx, envelope.id, trio.current_time() + timeout + linger)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return replies


class IncomingSurvey:
    """A survey received by a :class:`Respondent`; answer it once with :meth:`reply`."""

    def __init__(self, respondent: Respondent, ctx: Any, envelope: Envelope) -> None:
        self._respondent = respondent
        self._ctx: Any = ctx
        self.envelope = envelope

    def __repr__(self) -> str:
        return f"<IncomingSurvey {self.envelope.id} from {self.sender!r} kind={self.envelope.kind!r}>"

    @property
    def body(self) -> Any:
        return self.envelope.body

    @property
    def sender(self) -> str:
        return self.envelope.sender

    @property
    def deadline(self) -> float | None:
        """The surveyor's deadline, in seconds since the Unix epoch (if it sent one)."""
        return self.envelope.deadline

    @property
    def answered(self) -> bool:
        return self._ctx is None

    async def reply(self, value: Any, *, kind: str = "reply") -> None:
        """Send ``value`` back to the surveyor (at most once).

        A value that cannot be encoded raises :class:`EncodeError` and leaves the
        survey unanswered, so the caller can still reply with something else.
        """
        resp = self._respondent
        if self._ctx is None:
            raise Closed(f"{self!r} was already answered or declined")
        envelope = Envelope(kind=kind, sender=resp.name, id=resp._next_id(), body=value, re=self.envelope.id)
        placement = resp._placement(1)
        data = encode(envelope, max_size=resp.max_message_size, placement=placement)
        ctx, self._ctx = self._ctx, None
        try:
            with delivering(placement):
                resp._require_open(f"reply to survey {self.envelope.id}")
                try:
                    await ctx.asend(data)
                except pynng.NNGException as exc:
                    raise translate(
                        exc, operation=f"reply to survey {self.envelope.id}", state=repr(resp)
                    ) from exc
            resp._sent += 1
            resp._bytes_sent += len(data)
        finally:
            resp._discard(ctx)

    def decline(self) -> None:
        """Do not answer; releases the survey's context."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            self._respondent._discard(ctx)


class Respondent(_ContextOwner):
    """A respondent0 socket: receives surveys and answers each one on its own context."""

    _protocol = "Respondent0"

    async def receive(self) -> IncomingSurvey:
        """Wait for the next survey (raises :class:`MalformedMessage` for a bad frame)."""
        ctx = self._new_context("receive()")
        try:
            data = await ctx.arecv()
        except pynng.NNGException as exc:
            self._discard(ctx)
            raise translate(exc, operation="receive()", state=repr(self)) from exc
        except BaseException:
            self._discard(ctx)
            raise
        try:
            envelope = self._decode_counted(data)
        except MalformedMessage:
            self._discard(ctx)
            raise
        return IncomingSurvey(self, ctx, envelope)

    async def __aiter__(self) -> AsyncIterator[IncomingSurvey]:
        """``async for survey in respondent``: until closed; malformed surveys skipped."""
        while True:
            try:
                yield await self.receive()
            except MalformedMessage as exc:
                log.warning("%r skipped a malformed survey: %s", self, exc)
            except Closed:
                return
