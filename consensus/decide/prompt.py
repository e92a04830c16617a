"""What a member is asked in a deliberation round: the :class:`Prompt` and its wire form.

A prompt carries the question, the round number, the options of a closed question and
the positions of the previous round (none in round 1), each as a :class:`Seen` entry:
a ``label`` and the position's stance, answer, reason and confidence (never whom it was
persuaded by, never its round). The label is the member's name, or in an anonymous
deliberation an opaque ``"P1"``, ``"P2"``, ... assigned in order of content, so that
neither the labels nor the order of the entries carry any name. A member refers to a
position it found persuasive by its label (``Position.persuaded_by``).

Wire form (the body of a ``deliberate`` survey; a CBOR map, unknown keys refused)::

    deliberation  uint         required  the deliberation's id, < 2**64
    question      any          required  as given by the asker
    round         uint         required  1 <= round < 2**32
    options       [text]|null  required  a closed question's options, or null
    anonymous     bool         required  labels are "P<n>", not names
    positions     [map]        required  at most MAX_SEEN entries, distinct labels:
        label       text  1..MAX_NAME_LENGTH characters
        stance, answer, reason, confidence: as in a position's wire form
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from consensus.decide.checks import describe
from consensus.decide.position import MAX_NAME_LENGTH, MAX_ROUND, Position
from consensus.errors import InvalidPosition

__all__ = ["CUT_MARKER", "MAX_SEEN", "Prompt", "Seen", "shown_as"]

MAX_SEEN: Final = 256
"""Most positions one prompt shows."""
CUT_MARKER: Final = "\u2026 [cut]"
"""How a text the host cut to fit the room's message size ends (``... [cut]``, with an ellipsis)."""
_PROMPT_KEYS: Final = frozenset({"deliberation", "question", "round", "options", "anonymous", "positions"})
_SEEN_KEYS: Final = frozenset({"label", "stance", "answer", "reason", "confidence"})
_new = object.__new__
_set = object.__setattr__


@dataclass(frozen=True, slots=True)
class Seen:
    """One position of the previous round as shown to members."""

    label: str
    position: Position

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not 1 <= len(self.label) <= MAX_NAME_LENGTH:
            raise ValueError(f"label {describe(self.label)} is not text of 1..{MAX_NAME_LENGTH} characters")
        if self.position.persuaded_by or self.position.round is not None:
            # Whom a member credited can name names; a shown position never says.
            object.__setattr__(self, "position", self.position.credited((), None))

    @classmethod
    def checked(cls, label: str, position: Position) -> Seen:
        """``Seen(label, position)`` built without the constructor's checks, for a label
        that is a checked member name or ``"P<n>"`` (a deliberation's own prompts)."""
        if position.persuaded_by or position.round is not None:
            position = position.credited((), None)
        made = _new(cls)
        _set(made, "label", label)
        _set(made, "position", position)
        return made

    def to_wire(self) -> dict[str, Any]:
        return {"label": self.label} | self.position.to_wire()

    @classmethod
    def from_wire(cls, obj: object) -> Seen:
        """Validate one untrusted entry; raises :class:`InvalidPosition`."""
        if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
            raise InvalidPosition(f"a shown position must be a map with text keys, got {describe(obj)}")
        if not obj.keys() <= _SEEN_KEYS or "label" not in obj:
            raise InvalidPosition(f"a shown position has keys {sorted(obj)[:8]}; allowed {sorted(_SEEN_KEYS)}")
        label = obj["label"]
        position = Position.from_wire({key: value for key, value in obj.items() if key != "label"})
        try:
            return cls(label, position)
        except ValueError as exc:
            raise InvalidPosition(f"a shown position is invalid: {exc}") from exc


def _cut_from(shown: str | None, original: str | None) -> bool:
    if shown == original:
        return True
    if shown is None or original is None or not shown.endswith(CUT_MARKER):
        return False
    kept = shown[: -len(CUT_MARKER)]
    return len(original) > len(shown) and original.startswith(kept)


def shown_as(own: Position, shown: Position) -> bool:
    """True when ``shown`` is how a prompt shows ``own``: the same stance and confidence,
    and the same answer and reason or those texts cut to fit (ending with :data:`CUT_MARKER`)."""
    return (
        own.stance == shown.stance
        and own.confidence == shown.confidence
        and _cut_from(shown.answer, own.answer)
        and _cut_from(shown.reason, own.reason)
    )


@dataclass(frozen=True, slots=True)
class Prompt:
    """One round's question to the members, with the previous round's positions."""

    question: Any
    round: int
    options: tuple[str, ...] | None
    anonymous: bool
    positions: tuple[Seen, ...]
    deliberation: int = 0

    def others(self, member: str, own: Position | None) -> Prompt:
        """The prompt without ``member``'s own position (by name, or anonymously by content).

        In an anonymous prompt the first entry equal in content to ``own`` (the member's
        reply in the previous round; its texts possibly cut to fit, see :func:`shown_as`)
        is dropped; an identical position of someone else, if any, says nothing more than
        the member's own.
        """
        if not self.anonymous:
            kept = [seen for seen in self.positions if seen.label != member]
        else:
            kept = list(self.positions)
            if own is not None:
                for at, seen in enumerate(kept):
                    if shown_as(own, seen.position):
                        del kept[at]
                        break
        return replace(self, positions=tuple(kept))

    def to_wire(self) -> dict[str, Any]:
        return {
            "deliberation": self.deliberation,
            "question": self.question,
            "round": self.round,
            "options": None if self.options is None else list(self.options),
            "anonymous": self.anonymous,
            "positions": [seen.to_wire() for seen in self.positions],
        }

    @classmethod
    def from_wire(cls, obj: object) -> Prompt:
        """Validate an untrusted ``deliberate`` survey body; raises :class:`InvalidPosition`."""
        if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
            raise InvalidPosition(f"a deliberate body must be a map with text keys, got {describe(obj)}")
        if obj.keys() != _PROMPT_KEYS:
            raise InvalidPosition(
                f"a deliberate body has keys {sorted(obj)[:8]}; it needs exactly {sorted(_PROMPT_KEYS)}"
            )
        ident, number, options = obj["deliberation"], obj["round"], obj["options"]
        if type(ident) is not int or not 0 <= ident < 2**64:
            raise InvalidPosition(f"'deliberation' must be an unsigned 64-bit id, got {describe(ident)}")
        if type(number) is not int or not 1 <= number < MAX_ROUND:
            raise InvalidPosition(f"'round' must be a round number 1..2**32-1, got {describe(number)}")
        if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
            raise InvalidPosition(f"'options' must be an array of text or null, got {describe(options)}")
        if type(obj["anonymous"]) is not bool:
            raise InvalidPosition(f"'anonymous' must be a boolean, got {describe(obj['anonymous'])}")
        listed = obj["positions"]
        if not isinstance(listed, list) or len(listed) > MAX_SEEN:
            raise InvalidPosition(f"'positions' must be an array of at most {MAX_SEEN} entries")
        seen = tuple(Seen.from_wire(entry) for entry in listed)
        if len({entry.label for entry in seen}) != len(seen):
            raise InvalidPosition("'positions' shows two entries with the same label")
        return cls(obj["question"], number, None if options is None else tuple(options), obj["anonymous"],
                   seen, ident)  # fmt: skip
