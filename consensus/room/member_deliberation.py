"""A member's side of deliberations, as a pure helper of :class:`MemberSurveys`.

It keeps the prompt of each ``deliberate`` survey not answered yet (and which handler
answers it), and the position this member last sent in each deliberation: in an
anonymous prompt the member finds its own position by content, to leave it out of what
its handler sees (``Prompt.others``).
"""

from __future__ import annotations

from typing import Any, Final

from consensus.decide.position import Position
from consensus.decide.prompt import Prompt
from consensus.failure import Failure
from consensus.room import deliberation_frames as D
from consensus.room.events import Handle, HandlerKind
from patterns import Envelope, MalformedMessage

__all__ = ["MAX_OWN_POSITIONS", "MemberDeliberations"]

MAX_OWN_POSITIONS: Final = 16  # deliberations whose last position is remembered
MAX_ERROR_TEXT: Final = 2000  # as protocol.MAX_ERROR_TEXT


class MemberDeliberations:
    """The deliberate surveys one member has to answer, and its own last positions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._prompts: dict[int, tuple[Prompt | Failure, HandlerKind | None]] = {}  # by survey key
        self._own: dict[int, Position] = {}  # deliberation id -> the position last sent in it

    def receive(self, key: int, envelope: Envelope) -> bool:
        """Keep the prompt of survey ``key``; False when it is malformed (it is answered
        with an error, so the host hears why)."""
        try:
            self._prompts[key] = (D.parse_prompt(envelope), None)
        except MalformedMessage as exc:
            self._prompts[key] = (Failure("MalformedMessage", str(exc)[:MAX_ERROR_TEXT]), None)
            return False
        return True

    def handle(self, key: int, handler: HandlerKind | None) -> Handle | Failure | None:
        """What answers survey ``key``: ``on_deliberate`` with ``(question, round, others,
        options)``, ``on_poll`` with ``(question,)``, a failure (bad prompt), or None (no
        handler)."""
        prompt, _ = self._prompts[key]
        if isinstance(prompt, Failure):
            return prompt
        self._prompts[key] = (prompt, handler)
        if handler is HandlerKind.DELIBERATE:
            others = prompt.others(self.name, self._own.get(prompt.deliberation)).positions
            return Handle(key, handler, (prompt.question, prompt.round, others, prompt.options))
        if handler is HandlerKind.POLL:
            return Handle(key, handler, (prompt.question,))
        return None

    def position(self, key: int, result: Any) -> dict[str, Any] | Failure:
        """The ``position`` body answering survey ``key`` (a poll handler's answer is the
        stance, as text), or the failure to send when ``result`` makes no position."""
        prompt, handler = self._prompts.pop(key)
        if isinstance(prompt, Failure):
            return prompt
        value = str(result) if handler is HandlerKind.POLL and not isinstance(result, Position) else result
        try:
            body = D.position_body(value, prompt.round)
            position = Position.from_wire(body)
        except (ValueError, TypeError) as exc:  # InvalidPosition is a ValueError
            return Failure(type(exc).__name__, str(exc)[:MAX_ERROR_TEXT])
        self._own.pop(prompt.deliberation, None)
        self._own[prompt.deliberation] = position  # to find it, unnamed, in the next prompt
        if len(self._own) > MAX_OWN_POSITIONS:
            del self._own[next(iter(self._own))]
        return body

    def forget(self, key: int) -> None:
        self._prompts.pop(key, None)
