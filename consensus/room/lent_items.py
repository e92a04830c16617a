"""What a reader of a member's surveys outside trio hands to trio, and a survey it answers meanwhile.

:class:`~consensus.room.lent_surveys.LentSurveys` (an asyncio loop's, or a reader thread's)
hands trio, in order, the :data:`Item` values of this module: a survey for trio to answer
(:class:`patterns.IncomingSurvey`, or one read into fields, :class:`patterns.Taken`), one
answered outside trio whose reply only trio can send (:class:`Adopted`), or the end of its
reading (:data:`GIVE_BACK`). :class:`Pending` is a survey whose handler runs outside trio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from consensus.room.member_surveys import ReplyTicket
from patterns import IncomingSurvey, Taken

__all__ = ["GIVE_BACK", "Adopted", "GiveBack", "Item", "Pending"]


@dataclass(frozen=True, slots=True)
class Adopted:
    """A survey answered elsewhere whose reply only trio can send (too large, say), or
    whose plain handler returned an awaitable (``awaits``: trio awaits it, then replies)."""

    survey: IncomingSurvey
    ticket: ReplyTicket
    outcome: tuple[bool, Any]
    awaits: bool = False


class GiveBack:
    """The reader stopped reading for good (NNG failed under it): trio reads from now on."""


GIVE_BACK: Final = GiveBack()

Item = IncomingSurvey | Taken | Adopted | GiveBack  # what the reader hands to trio, in order


class Pending:
    """A survey whose handler runs outside trio, not answered yet."""

    __slots__ = ("ident", "name", "survey", "task", "ticket", "timed_out")

    def __init__(self, survey: IncomingSurvey, ticket: ReplyTicket, ident: int, name: str) -> None:
        self.survey = survey
        self.ticket = ticket
        self.ident = ident  # the reply's envelope id
        self.name = name
        self.task: Any = None  # the driver's handle on the running handler (an asyncio task)
        self.timed_out = False  # answered Timeout: what the handler returns later is late
