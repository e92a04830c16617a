"""decide: pure decision logic (ballots, rules, tallies, polls, votes, deliberations)."""

from consensus.decide.deliberation import DeliberationRound, Deliberator, Phase
from consensus.decide.position import InvalidPosition, Position, normalise_stance
from consensus.decide.prompt import Prompt, Seen
from consensus.decide.roundtable import Agreement, Counterpoint, Deliberation, FinalPosition
from consensus.decide.rules import Rules
from consensus.decide.stances import Round
from consensus.decide.until import Until, decided, no_change, unanimous

__all__ = [
    "Agreement",
    "Counterpoint",
    "Deliberation",
    "DeliberationRound",
    "Deliberator",
    "FinalPosition",
    "InvalidPosition",
    "Phase",
    "Position",
    "Prompt",
    "Round",
    "Rules",
    "Seen",
    "Until",
    "decided",
    "no_change",
    "normalise_stance",
    "unanimous",
]
