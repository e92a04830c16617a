"""The wire of a deliberation in a room: the ``deliberate`` survey and the ``position`` reply.

A deliberation runs as one survey per round (``docs/deliberation.md`` section 7): the
host sends the round's :class:`~consensus.decide.prompt.Prompt` as a ``deliberate``
survey (every position of the previous round, names hidden when anonymous), each member
answers with a ``position`` (a :class:`~consensus.decide.position.Position` in its wire
form, ``round`` set to the survey's round) or an ``error``. The finished deliberation's
decision goes to every member as a ``decision`` frame, like a vote's, with the
deliberation's id in ``vote`` and the question as the ``motion``, followed by the whole
result as a ``deliberation`` frame (``{"deliberation": <its wire form>}``,
:mod:`consensus.decide.deliberation_wire`). When every member present said in its join
that it reads the decision from the result (``"decided": true``), the host sends the
result alone, marked ``{"deliberation": ..., "decided": true}``: a member then takes the
decision of its last round as the ``decision`` frame it stands for (``docs/deliberation.md``
section 7.2; an older member refuses a body with another key, so it is never sent one).
"""

from __future__ import annotations

from typing import Any, Final

from consensus.decide.deliberation_wire import deliberation_from_wire, deliberation_to_wire
from consensus.decide.position import Position
from consensus.decide.prompt import Prompt
from consensus.decide.roundtable import Deliberation
from consensus.errors import InvalidDeliberation, InvalidPosition
from patterns import Envelope, MalformedMessage

__all__ = ["DECIDED", "DELIBERATE", "POSITION", "RESULT", "parse_position", "parse_prompt", "parse_result",
           "parse_result_frame", "position_body", "result_body"]  # fmt: skip

DELIBERATE: Final = "deliberate"  # host -> members, survey: a Prompt's wire form
POSITION: Final = "position"  # member -> host, reply: a Position's wire form
RESULT: Final = "deliberation"  # host -> members, control bus: {"deliberation": the finished one[, "decided": true]}
DECIDED: Final = "decided"  # in a result: no decision frame was sent, the last round's decision stands for it
_RESULT_KEYS: Final = (frozenset({RESULT}), frozenset({RESULT, DECIDED}))


def parse_prompt(envelope: Envelope) -> Prompt:
    """The prompt of a ``deliberate`` survey; raises :class:`MalformedMessage` on a bad body."""
    try:
        return Prompt.from_wire(envelope.body)
    except InvalidPosition as exc:
        raise MalformedMessage(
            f"a 'deliberate' survey from {envelope.sender!r} is malformed: {exc}", reason="body", size=0
        ) from exc


def position_body(value: Any, round_number: int) -> dict[str, Any]:
    """A handler's value as the ``position`` reply for round ``round_number`` (TypeError or
    ValueError when it makes no position; see :meth:`Position.coerce`)."""
    position = Position.coerce(value)
    return Position(position.stance, position.answer, position.reason, position.confidence,
                    position.persuaded_by, round_number).to_wire()  # fmt: skip


def parse_position(envelope: Envelope) -> Any:
    """The body of a ``position`` reply, checked by the round (``DeliberationRound.answer``)."""
    return envelope.body


def result_body(result: Deliberation) -> dict[str, Any]:
    """The body of the ``deliberation`` frame that tells the members how it ended."""
    return {"deliberation": deliberation_to_wire(result)}


def parse_result(envelope: Envelope) -> Deliberation:
    """The finished deliberation a ``deliberation`` frame carries; raises :class:`MalformedMessage`."""
    return parse_result_frame(envelope)[0]


def parse_result_frame(envelope: Envelope) -> tuple[Deliberation, bool]:
    """:func:`parse_result`, and whether the frame is marked ``decided`` (it stands for the
    ``decision`` frame too); raises :class:`MalformedMessage`."""
    body = envelope.body
    try:
        if not isinstance(body, dict) or body.keys() not in _RESULT_KEYS:
            raise InvalidDeliberation("the body must be a map with the key 'deliberation' (and 'decided')")
        decided = body.get(DECIDED, False)
        if decided is not True and DECIDED in body:
            raise InvalidDeliberation(f"'decided' must be true when present, got {decided!r:.40}")
        return deliberation_from_wire(body["deliberation"]), decided
    except InvalidDeliberation as exc:
        raise MalformedMessage(
            f"a 'deliberation' frame from {envelope.sender!r} is malformed: {exc}", reason="body", size=0
        ) from exc
