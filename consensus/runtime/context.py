"""Who asks a handler, and about what: :func:`handler_context`, a context variable that the
drivers set while a handler runs.

``on_poll``, ``on_vote``, ``on_deliberate``, ``on_ask`` and task handlers keep their
signatures; a handler that wants to know more calls ``consensus.handler_context()``:

    def on_task(task):
        ctx = consensus.handler_context()
        log.info("task %d, attempt %d, from %s", ctx.task_id, ctx.attempt, ctx.asker)

It works in async handlers and in plain ones (trio copies the context into the thread a
plain handler runs in), and raises :class:`LookupError` outside a handler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "ContextSource",
    "HandlerContext",
    "Kind",
    "handler_context",
    "serving",
    "set_current",
    "set_current_from",
]

Kind = Literal["poll", "vote", "deliberate", "ask", "task"]


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What the handler running now answers.

    ``kind``: ``"poll"``, ``"vote"``, ``"deliberate"``, ``"ask"`` or ``"task"``.
    ``asker``: the name of who sent it: the room host for polls, votes and deliberations
    (also those a member called: the host runs them), the peer on a hotline, the
    dispatcher for a task (the room host for ``room.distribute``). ``task_id`` and
    ``attempt`` (1 for the first, more for a retry or a redelivery) are set for tasks,
    ``ask_id`` for asks; the others are None."""

    kind: Kind
    asker: str
    task_id: int | None = None
    attempt: int | None = None
    ask_id: int | None = None


class ContextSource(Protocol):
    """Something a driver already holds per handler run (a worker's job) that can say
    what the handler answers, built only when the handler asks (:func:`set_current_from`)."""

    def handler_context(self) -> HandlerContext: ...


_current: ContextVar[HandlerContext | ContextSource | None] = ContextVar(
    "consensus_handler_context", default=None
)


def handler_context() -> HandlerContext:
    """The :class:`HandlerContext` of the handler running now; :class:`LookupError` when
    called outside a handler."""
    context = _current.get()
    if context is None:
        raise LookupError("handler_context() is only set while a handler (on_poll, on_vote, on_deliberate, "
                          "on_ask or a task handler) runs")  # fmt: skip
    if type(context) is HandlerContext:
        return context
    return context.handler_context()  # type: ignore[union-attr]  # a ContextSource: built on demand


@contextmanager
def serving(context: HandlerContext) -> Iterator[None]:
    """Set the context for the handler run inside the block (for drivers)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def set_current(context: HandlerContext) -> None:
    """Set the context for the handlers this task runs from now on (for a driver's task
    that only runs handlers one after another: cheaper than :func:`serving` per call)."""
    _current.set(context)


# The context variable's own ``set`` (a C call, not a Python one: drivers call it per ask
# and per task); what it returns (the variable's token) is not for callers.
set_current_from: Callable[[ContextSource], object] = _current.set
""":func:`set_current` for a driver that runs many short handlers one after another (a
worker's tasks, a hotline's inline asks): ``source`` builds the :class:`HandlerContext`
only if the handler asks. Building one per task was most of a trivial async task
handler's cost."""
