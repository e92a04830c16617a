"""A naive reference tally, written from the specification only, for the property tests.

It shares no code with ``consensus``: plain loops, exact ``Fraction`` arithmetic,
inputs already normalised by the test (weights, confidences and fractions as
Fractions; the quorum a count of members or None; a ballot as ``(choice, confidence, vote)`` or ``MALFORMED``).
Slow and simple on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MALFORMED = "<malformed>"
"""Stands for a wire dict that is not a valid ballot."""


@dataclass
class RefResult:
    outcome: Any
    tally: list[Fraction]
    accepted: list[str]
    missing: set[str]
    abstained: set[str]
    rejected: dict[str, int]
    quorum_met: bool
    tie: bool
    tied: list[Any]
    electorate_weight: Fraction
    participating_weight: Fraction


def same_option(choice: Any, option: Any) -> bool:
    """Does ``choice`` pick ``option``? Equality, but a bool only ever picks a bool."""
    if isinstance(choice, bool) or isinstance(option, bool):
        return isinstance(choice, bool) and isinstance(option, bool) and choice == option
    if isinstance(choice, (list, dict)):
        return False
    return bool(choice == option)


def reference_tally(
    ballots: list[tuple[str, Any]],
    *,
    options: list[Any],
    electorate: dict[str, Fraction],
    kind: str,
    fraction: Fraction | None = None,
    by_confidence: bool = False,
    tie_break: str = "none",
    status_quo: Any = None,
    quorum: int | None = None,
    vote: int | None = None,
) -> RefResult:
    accepted: dict[str, tuple[Any, Fraction]] = {}
    order: list[str] = []
    rejected: dict[str, int] = {}
    for voter, ballot in ballots:
        ok = ballot != MALFORMED
        if ok:
            choice, confidence, ballot_vote = ballot
            if voter not in electorate:
                ok = False
            if vote is not None and ballot_vote is not None and ballot_vote != vote:
                ok = False
            if voter in accepted:
                ok = False
            if choice is not None:
                found = False
                for option in options:
                    if same_option(choice, option):
                        found = True
                if not found:
                    ok = False
        if ok:
            accepted[voter] = (choice, confidence)
            order.append(voter)
        else:
            rejected[voter] = rejected.get(voter, 0) + 1

    totals = []
    for option in options:
        total = Fraction(0)
        for voter in order:
            choice, confidence = accepted[voter]
            if choice is not None and same_option(choice, option):
                if by_confidence:
                    total += electorate[voter] * confidence
                else:
                    total += electorate[voter]
        totals.append(total)

    everyone = Fraction(0)
    for weight in electorate.values():
        everyone += weight
    present = Fraction(0)
    for voter in order:
        present += electorate[voter]

    # A quorum counts members with an accepted ballot; their weights do not matter.
    quorum_met = quorum is None or len(order) >= quorum

    best = max(totals)
    top = [options[i] for i in range(len(options)) if totals[i] == best]
    tie = best > 0 and len(top) >= 2

    outcome = None
    if quorum_met and kind == "plurality":
        if best > 0:
            if len(top) == 1 or tie_break == "first":
                outcome = top[0]
            elif tie_break == "status_quo" and status_quo in top:
                outcome = status_quo
    elif quorum_met:
        winners = []
        for i, option in enumerate(options):
            if everyone == 0:
                continue
            if kind == "majority" and totals[i] > everyone / 2:
                winners.append(option)
            if kind == "supermajority":
                assert fraction is not None
                if totals[i] / everyone >= fraction:
                    winners.append(option)
            if kind == "unanimous":
                everybody_for_it = True
                for voter, weight in electorate.items():
                    if weight == 0:
                        continue
                    choice = accepted[voter][0] if voter in accepted else None
                    if choice is None or not same_option(choice, option):
                        everybody_for_it = False
                if everybody_for_it:
                    winners.append(option)
        assert len(winners) <= 1, winners
        if winners:
            outcome = winners[0]

    return RefResult(
        outcome=outcome,
        tally=totals,
        accepted=order,
        missing={voter for voter in electorate if voter not in accepted},
        abstained={voter for voter in order if accepted[voter][0] is None},
        rejected=rejected,
        quorum_met=quorum_met,
        tie=tie,
        tied=top if tie else [],
        electorate_weight=everyone,
        participating_weight=present,
    )
