"""Checks shared by the decision values (ballots, positions, ...) and their wire forms.

A value built in this process is checked by its constructor (``TypeError``/``ValueError``:
programmer errors); one arriving from a peer goes through its ``from_wire``, which raises
that value's own error class. The messages name the value (``what``), so both kinds read
the same for a ballot and for a position.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

__all__ = ["check_confidence", "check_text", "check_wire_map", "describe", "wire_confidence"]


def describe(value: object) -> str:
    """Describe a (possibly peer-supplied) value for an error message without ever failing.

    Short scalars are shown with ``repr``; long text is cut, huge integers and
    containers are named by type (``repr`` of a huge int raises, of a container can
    be enormous).
    """
    if value is None or type(value) in (bool, float) or (type(value) is int and value.bit_length() <= 64):
        return repr(value)
    if type(value) is int:
        return f"an integer of {value.bit_length()} bits"
    if type(value) in (str, bytes):
        assert isinstance(value, (str, bytes))
        if len(value) <= 60:
            return repr(value)
        return f"{value[:40]!r}... ({len(value)} long)"
    return f"a {type(value).__name__}"


def check_confidence(confidence: object) -> float:
    """``confidence`` as a float: a finite number in [0, 1] (``TypeError``/``ValueError`` otherwise)."""
    if type(confidence) is bool or not isinstance(confidence, (int, float)):
        raise TypeError(f"confidence must be a number in [0, 1], got {describe(confidence)}")
    if isinstance(confidence, float) and not math.isfinite(confidence):
        raise ValueError(f"confidence {confidence!r} is not a finite number in [0, 1]")
    if not 0 <= confidence <= 1:
        raise ValueError(f"confidence {describe(confidence)} is outside [0, 1]")
    return float(confidence)


def check_text(value: object, what: str, limit: int) -> None:
    """``value`` is None or text of at most ``limit`` characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{what} must be text or None, got {describe(value)}")
    if len(value) > limit:
        raise ValueError(f"{what} of {len(value)} characters is longer than {limit}")


def check_wire_map(obj: object, what: str, allowed: Collection[str], error: type[Exception]) -> dict[str, Any]:
    """An untrusted wire form of a ``what``: a map with text keys, all of them ``allowed``;
    raises ``error`` otherwise."""
    if not isinstance(obj, dict):
        raise error(f"a {what} must be a map, got {describe(obj)}")
    for key in obj:
        if not isinstance(key, str):
            raise error(f"{what} keys must be text, got key {describe(key)}")
    unknown = obj.keys() - allowed
    if unknown:
        shown = ", ".join(describe(key) for key in sorted(unknown)[:5])
        raise error(f"{what} has unknown keys {shown} (allowed: {sorted(allowed)})")
    return obj


def wire_confidence(obj: dict[str, Any], what: str, error: type[Exception]) -> float:
    """The ``confidence`` of a wire map (default 1), if a number (an int or a float, not a
    boolean); raises ``error`` otherwise. The range is the constructor's check."""
    confidence = obj.get("confidence", 1.0)
    if type(confidence) is int or type(confidence) is float:
        return confidence
    raise error(f"{what} 'confidence' must be a number in [0, 1], got {describe(confidence)}")
