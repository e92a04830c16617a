"""The host's driver of a deliberation: one survey per round, until the deliberation is done.

All the bookkeeping (who is asked, what they answered, who joined or left, when to stop)
is :class:`~consensus.room.host_protocol.HostProtocol`'s, on top of the pure
:class:`~consensus.decide.deliberation.Deliberator`; this loop only sends each round's
survey, waits for its replies or its deadline, and broadcasts the decision at the end.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

import trio

from consensus.decide.roundtable import Deliberation
from consensus.decide.rules import Rule
from consensus.decide.stances import Key
from consensus.decide.until import Until
from consensus.room.host_protocol import HostProtocol
from patterns import MessageTooLarge

__all__ = ["deliberate"]

log = logging.getLogger("consensus.room")


async def deliberate(room: Any, question: Any, *, rounds: int = 3, timeout: float,
                     options: Sequence[str] | None = None, rule: Rule | Sequence[Rule] | None = None,
                     until: Until | Sequence[Until] | None = None, anonymous: bool = False,
                     key: Key | None = None) -> Deliberation:  # fmt: skip
    """Ask the members present ``question`` in up to ``rounds`` rounds; returns the
    :class:`~consensus.decide.deliberation.Deliberation`.

    Each round is a ``deliberate`` survey of ``timeout`` seconds carrying the previous
    round's positions (without names when ``anonymous``); members answer with a
    ``Position`` (their ``on_deliberate`` handler, or their ``on_poll`` answer as the
    stance). Members who join meanwhile are asked from the next round; those who leave
    are named in the round they left. ``until`` (a predicate or a list) stops early;
    ``rule`` (a rule or an ordered fallback, default ``Majority()``) tallies each round;
    ``options`` makes the question closed; ``key`` compares stances. The final round's
    decision is broadcast to every member as a ``decision`` frame (``vote`` = the
    deliberation's id), like a vote's.
    """
    protocol: HostProtocol = room._protocol
    ident = secrets.randbits(63)
    dkey = protocol.rounds.open_deliberation(question, deliberation_id=ident, now=trio.current_time(), rounds=rounds,
                                      options=options, rule=rule, until=until, anonymous=anonymous,
                                      key=key)  # fmt: skip
    try:
        while not protocol.rounds.deliberation_done(dkey):
            max_size = room._surveyor.max_message_size
            round_key, frames, fitted = protocol.rounds.open_deliberation_round(
                dkey, trio.current_time(), max_size=max_size
            )
            if fitted.cut:
                log.info("room %r: deliberation %d round %d: prompt cut to fit max_message_size=%d "
                         "(%d answers and %d reasons cut, %d positions left out)", room.name, ident,
                         fitted.prompt.round, max_size, fitted.answers_cut, fitted.reasons_cut,
                         fitted.dropped)  # fmt: skip
            await room._ask(round_key, frames, timeout)
            protocol.rounds.close_deliberation_round(round_key, trio.current_time())
    finally:
        result, sends = protocol.rounds.close_deliberation(dkey, trio.current_time())
    for frame in sends:
        try:
            await room._send(frame)
        except MessageTooLarge as exc:  # the caller still gets the result; members are not told
            log.error("room %r: %s of deliberation %d not broadcast: %s", room.name, frame.kind, ident, exc)
    return result
