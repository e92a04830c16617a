"""The decision logic: ballots, rules, tallies and the poll and vote rounds (pure code, no I/O).

Everything here takes values and returns values: :func:`tally` counts ballots under a
:class:`Rule`, :class:`PollRound` and :class:`VoteRound` are the sans-IO state machines the
room host drives (a driver tells them what happened; they never read a clock or a socket).
Agent code finds the values it needs (``Ballot``, ``Decision``, ``PollResult``, the rules)
in :mod:`consensus` as well.
"""

from consensus.decide.ballot import Ballot
from consensus.decide.decision import Decision
from consensus.decide.poll import PollResult, PollRound, Verdict
from consensus.decide.rules import Majority, Plurality, Rule, Supermajority, TieBreak, Unanimous, Weighting
from consensus.decide.tally import is_decided, tally
from consensus.decide.vote import VoteRound

__all__ = [
    "Ballot",
    "Decision",
    "Majority",
    "Plurality",
    "PollResult",
    "PollRound",
    "Rule",
    "Supermajority",
    "TieBreak",
    "Unanimous",
    "Verdict",
    "VoteRound",
    "Weighting",
    "is_decided",
    "tally",
]
