"""The decision logic: ballots, rules, tallies, the poll and vote rounds, and deliberations
(pure code, no I/O).

Everything here takes values and returns values: :func:`tally` counts ballots under a
:class:`Rule`, :class:`PollRound`, :class:`VoteRound` and :class:`Deliberator` are the sans-IO state
machines the room host drives (a driver tells them what happened; they never read a clock or a socket).
Agent code finds the values it needs (``Ballot``, ``Decision``, ``PollResult``, the rules,
``Position``, ``Deliberation``)
in :mod:`consensus` as well.
"""

from consensus.decide.ballot import Ballot
from consensus.decide.decision import Decision
from consensus.decide.deliberation import DeliberationRound, Deliberator, Phase
from consensus.decide.poll import PollResult, PollRound, Verdict
from consensus.decide.position import InvalidPosition, Position, normalise_stance
from consensus.decide.prompt import Prompt, Seen
from consensus.decide.roundtable import Agreement, Counterpoint, Deliberation, FinalPosition
from consensus.decide.rules import (
    Majority,
    Plurality,
    Rule,
    Rules,
    Supermajority,
    TieBreak,
    Unanimous,
    Weighting,
)
from consensus.decide.stances import Round
from consensus.decide.tally import is_decided, tally
from consensus.decide.until import Until, decided, no_change, unanimous
from consensus.decide.vote import VoteRound

__all__ = [
    "Agreement",
    "Ballot",
    "Counterpoint",
    "Decision",
    "Deliberation",
    "DeliberationRound",
    "Deliberator",
    "FinalPosition",
    "InvalidPosition",
    "Majority",
    "Phase",
    "Plurality",
    "PollResult",
    "PollRound",
    "Position",
    "Prompt",
    "Round",
    "Rule",
    "Rules",
    "Seen",
    "Supermajority",
    "TieBreak",
    "Unanimous",
    "Until",
    "Verdict",
    "VoteRound",
    "Weighting",
    "decided",
    "is_decided",
    "no_change",
    "normalise_stance",
    "tally",
    "unanimous",
]
