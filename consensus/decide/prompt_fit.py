"""Cutting a deliberation prompt to fit a size: long answers first, then reasons, then entries.

A prompt shows every position of the previous round; with long answers it can outgrow the
room's ``max_message_size``, and a survey that cannot be sent would lose the round. So
the host cuts the prompt before sending it (``docs/deliberation.md`` section 7.1):

1. answers: every answer longer than a common length ``L`` is cut to ``L`` characters, the
   largest ``L`` that fits (so the longest answers are cut first, and by the most);
2. if the prompt does not fit with every answer cut, reasons the same way;
3. if it still does not fit, entries are left out from the end of the list.

A cut text ends with :data:`~consensus.decide.prompt.CUT_MARKER`; texts no longer than the
marker are never cut. Stances, labels and confidences are never changed. The size is
measured by a function the caller passes in (the room passes the encoded size of the
prompt's wire form), so this stays pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from consensus.decide.position import Position
from consensus.decide.prompt import CUT_MARKER, Prompt, Seen

__all__ = ["Fitted", "cut_text", "fit_prompt", "size_bound"]

_ANSWER: Final = "answer"
_REASON: Final = "reason"


@dataclass(frozen=True, slots=True)
class Fitted:
    """A prompt cut to fit, and what was cut: ``answers_cut`` / ``reasons_cut`` entries had
    their answer / reason cut, ``dropped`` entries were left out. ``fits`` is False when
    even the prompt with no entries is too large (the question alone is)."""

    prompt: Prompt
    answers_cut: int = 0
    reasons_cut: int = 0
    dropped: int = 0
    fits: bool = True

    @property
    def cut(self) -> bool:
        """True when anything was cut or left out."""
        return bool(self.answers_cut or self.reasons_cut or self.dropped)


def cut_text(text: str | None, limit: int) -> str | None:
    """``text`` cut to at most ``max(limit, len(CUT_MARKER))`` characters, ending with the
    marker; unchanged when it is that short already (or None)."""
    if text is None or len(text) <= max(limit, len(CUT_MARKER)):
        return text
    return text[: max(limit - len(CUT_MARKER), 0)] + CUT_MARKER


def _cut_all(entries: tuple[Seen, ...], field: str, limit: int) -> tuple[Seen, ...]:
    def cut(position: Position) -> Position:
        if field == _ANSWER:
            return dataclasses.replace(position, answer=cut_text(position.answer, limit))
        return dataclasses.replace(position, reason=cut_text(position.reason, limit))

    return tuple(Seen(seen.label, cut(seen.position)) for seen in entries)


def _cut_to_fit(prompt: Prompt, entries: tuple[Seen, ...], field: str, budget: int,
                size: Callable[[Prompt], int]) -> tuple[tuple[Seen, ...], int, bool]:  # fmt: skip
    """``entries`` with ``field`` cut to the largest common length that fits (or to nothing):
    the entries, how many were cut, and whether they fit."""
    longest = max((len(getattr(seen.position, field) or "") for seen in entries), default=0)
    limit = _largest(
        lambda n: size(dataclasses.replace(prompt, positions=_cut_all(entries, field, n))) <= budget, longest
    )
    cut = _cut_all(entries, field, limit or 0)
    return cut, sum(a.position != b.position for a, b in zip(entries, cut, strict=True)), limit is not None


def _largest(fits: Callable[[int], bool], high: int) -> int | None:
    """The largest ``n`` in ``0..high`` with ``fits(n)`` (``fits`` is monotone: true up to
    some point), or None when even ``fits(0)`` is false."""
    if not fits(0):
        return None
    low = 0  # fits(low) holds
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def size_bound(prompt: Prompt, question_size: int) -> int:
    """An upper bound of the CBOR length of ``prompt``'s wire form, its question taking
    ``question_size`` bytes: cheap (no encoding), so most rounds need no measuring.

    Each text takes at most 4 bytes per character plus a 9-byte head; the keys, numbers
    and heads of a shown position at most 96 bytes, those of the prompt 128."""
    entries = sum(96 + 4 * sum(len(text or "") for text in (seen.label, seen.position.stance, seen.position.answer,
                                                            seen.position.reason))
                  for seen in prompt.positions)  # fmt: skip
    options = sum(9 + 4 * len(option) for option in prompt.options or ())
    return 128 + question_size + options + entries


def fit_prompt(prompt: Prompt, budget: int, size: Callable[[Prompt], int],
               bound: Callable[[Prompt], int] | None = None) -> Fitted:  # fmt: skip
    """``prompt`` cut so that ``size(prompt) <= budget`` (see the module's docstring).

    ``size`` must not grow when a text gets shorter or an entry is left out (an encoded
    length has that property). ``bound``, if given, is a cheaper upper bound of ``size``
    tried first (:func:`size_bound`)."""
    if bound is not None and bound(prompt) <= budget or size(prompt) <= budget:
        return Fitted(prompt)
    entries, answers, fits = _cut_to_fit(prompt, prompt.positions, _ANSWER, budget, size)
    if fits:
        return Fitted(dataclasses.replace(prompt, positions=entries), answers)
    entries, reasons, fits = _cut_to_fit(prompt, entries, _REASON, budget, size)
    if fits:
        return Fitted(dataclasses.replace(prompt, positions=entries), answers, reasons)
    kept = _largest(
        lambda n: size(dataclasses.replace(prompt, positions=entries[:n])) <= budget, len(entries)
    )
    shown = entries[: kept or 0]
    return Fitted(dataclasses.replace(prompt, positions=shown), answers, reasons, len(entries) - len(shown),
                  fits=kept is not None)  # fmt: skip
