"""Counting ballots: :func:`tally`, :func:`is_decided` and the :class:`Decision` they return.

Pure code: no I/O, no clock. Both read a :class:`~consensus.decide.count.Count`, which
counts each ballot once and exactly (``int`` sums while every weight is whole, else
``Fraction``; floats are read as the ratio they were written as, see
:func:`consensus.decide.rules.as_ratio`); the :class:`Decision` reports floats. A caller
that learns ballots one at a time (:class:`~consensus.decide.vote.VoteRound`) keeps one
``Count`` instead, and asks it the same questions after each ballot.

Which ballots count
===================

Ballots are read in order. A ballot is *rejected* (never tallied; its voter gets one
reason string per rejected ballot) when, checked in this order:

1. it is a ``dict`` that is not a valid wire ballot (:class:`InvalidBallot`);
2. its voter is not in the electorate;
3. ``vote`` was given and the ballot answers another vote (``ballot.vote`` is set
   and differs);
4. the voter already has an accepted ballot (the first accepted ballot counts);
5. it is not an abstention and its choice is none of the options.

A choice selects the option it equals (``1.0`` selects ``1``), except that booleans
only select booleans (CBOR keeps ``true`` and ``1`` apart).

Quorum
======

``None``: no requirement. Otherwise a count of members, an ``int`` ``n >= 1``: at least
``n`` electorate members have an accepted ballot, whatever their weights (a member of
weight 0 counts too). Abstentions count. Without a quorum there is no outcome. A
fraction (``quorum=0.5`` or ``1.0``) is refused with ``ValueError``: the meaning is the
same as a poll's quorum, see :mod:`consensus.decide.quorum`.

Fallbacks
=========

``rule`` may be an ordered list of rules (see :mod:`consensus.decide.rules`): the
ballots are counted under each, and the first rule with an outcome decides
(``Decision.decided_by``). :func:`is_decided` with a fallback waits until every rule
of it is settled, which is sound but may wait longer than needed (the argument for a
single rule is in :meth:`Count.settled <consensus.decide.count.Count.settled>`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from consensus.decide.checks import describe
from consensus.decide.count import Count
from consensus.decide.decision import Decision
from consensus.decide.rules import Majority, Rules

__all__ = ["Decision", "is_decided", "tally"]

_MAJORITY: Final = Majority()
"""The default rule (rules are frozen, so one instance serves every call)."""


def tally(
    ballots: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    options: Sequence[Any],
    rule: Rules = _MAJORITY,
    electorate: Mapping[str, float] | Iterable[str],
    quorum: int | None = None,
    vote: int | None = None,
) -> Decision:
    """Count ``ballots`` under ``rule`` and return the :class:`Decision`.

    ``ballots`` maps voter names to ballots, or is an iterable of ``(voter, ballot)``
    pairs; a ballot may be a :class:`Ballot`, a wire ``dict``, or a bare choice (see
    :meth:`Ballot.coerce`). ``electorate`` maps names to weights (finite, >= 0) or
    lists names (weight 1 each). ``quorum`` and the rejection rules are described in
    the module docstring. Invalid arguments raise ``TypeError``/``ValueError``; bad
    ballots never raise, they are rejected.
    """
    count = Count(options=options, rule=rule, electorate=electorate, quorum=quorum, vote=vote)
    count.add_all(ballots)
    return Decision.from_count(count)


def is_decided(
    ballots: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    options: Sequence[Any],
    rule: Rules,
    electorate: Mapping[str, float] | Iterable[str],
    quorum: int | None = None,
    vote: int | None = None,
    pending: Iterable[str],
) -> Decision | None:
    """The :class:`Decision` if no ballots from ``pending`` voters could change it, else None.

    "Change" means change ``outcome`` or ``quorum_met``. ``pending`` names the members
    that may still vote; names outside the electorate, and members that already have
    an accepted ballot, are not pending (their later ballots would be rejected). Each
    pending member may yet abstain, vote for any option with any confidence, or never
    vote. With nobody pending this equals :func:`tally`.
    """
    if isinstance(pending, (str, bytes)) or not isinstance(pending, Iterable):
        raise TypeError(f"pending must be a collection of voter names, got {describe(pending)}")
    count = Count(options=options, rule=rule, electorate=electorate, quorum=quorum, vote=vote)
    count.add_all(ballots)
    count.expect(pending)
    return Decision.from_count(count) if count.settled() else None
