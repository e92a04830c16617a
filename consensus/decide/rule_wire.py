"""The wire form of a decision rule: a member asking the host to run a vote names its rule.

``{"rule": "supermajority", "fraction": 0.66}`` and the like: ``rule`` is one of
``majority``, ``supermajority`` (with ``fraction``, a number in (1/2, 1]), ``unanimous``,
``plurality``; optional ``weighting`` (``equal``, ``confidence``), ``tie_break``
(``none``, ``first_listed``, ``status_quo``) and ``status_quo`` (an option). Nothing else
is accepted: :func:`rule_from_wire` raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from typing import Any, Final

from consensus.decide.ballot import describe
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting

__all__ = ["RULES", "rule_from_wire", "rule_to_wire"]

RULES: Final[dict[str, type[Rule]]] = {
    "majority": Majority, "supermajority": Supermajority, "unanimous": Unanimous, "plurality": Plurality,
}  # fmt: skip
_KEYS: Final = frozenset({"rule", "fraction", "weighting", "tie_break", "status_quo"})


def rule_to_wire(rule: Rule) -> dict[str, Any]:
    """The map naming ``rule`` and its parameters (defaults left out)."""
    for name, cls in RULES.items():
        if type(rule) is cls:
            break
    else:
        raise ValueError(f"the rule {rule.name!r} has no wire form (only {', '.join(RULES)})")
    body: dict[str, Any] = {"rule": name}
    if isinstance(rule, Supermajority):
        body["fraction"] = float(rule.fraction)
    if rule.weighting is not Weighting.EQUAL:
        body["weighting"] = rule.weighting.value
    if rule.tie_break is not TieBreak.NONE:
        body["tie_break"] = rule.tie_break.value
    if rule.status_quo is not None:
        body["status_quo"] = rule.status_quo
    return body


def rule_from_wire(obj: object) -> Rule:
    """Build the rule a peer named; raises ``ValueError`` saying what is wrong."""
    if not isinstance(obj, dict) or not all(isinstance(key, str) for key in obj):
        raise ValueError(f"a rule must be a map with text keys, got {describe(obj)}")
    extra = sorted(obj.keys() - _KEYS)[:5]
    if extra:
        raise ValueError(f"a rule has unknown keys {extra}")
    name = obj.get("rule")
    cls = RULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown rule {describe(obj.get('rule'))}; known: {', '.join(RULES)}")
    options: dict[str, Any] = {}
    try:
        if "weighting" in obj:
            options["weighting"] = Weighting(obj["weighting"])
        if "tie_break" in obj:
            options["tie_break"] = TieBreak(obj["tie_break"])
    except ValueError:
        raise ValueError(
            f"a rule's weighting must be one of {[w.value for w in Weighting]} and its tie_break one of "
            f"{[t.value for t in TieBreak]}"
        ) from None
    if "status_quo" in obj:
        options["status_quo"] = obj["status_quo"]
    try:
        if cls is Supermajority:
            fraction = obj.get("fraction")
            if not isinstance(fraction, (int, float)) or type(fraction) is bool:
                raise ValueError(f"a supermajority needs a number 'fraction', got {describe(fraction)}")
            return Supermajority(fraction, **options)
        if "fraction" in obj:
            raise ValueError(f"the rule {obj['rule']!r} takes no 'fraction'")
        return cls(**options)
    except TypeError as exc:  # e.g. an unhashable status_quo
        raise ValueError(str(exc)) from None
