"""A failure reported by a peer, as a value: the handler's error type and its message."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Failure"]


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in a handler (a member's poll or vote handler, a worker's task
    handler, a hotline's ask handler), or why it could not answer: a value, not an
    exception. It reports a peer's failure without raising: ``PollResult.errors``,
    ``Outcome.error`` and ``Decision`` carry it, and ``str()`` gives ``"type: message"``."""

    type: str
    message: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def to_wire(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        """Describe ``exc`` (its message cut to 2000 characters)."""
        return cls(type(exc).__name__, str(exc)[:2000])
