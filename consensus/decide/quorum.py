"""The quorum: how many members must take part, one meaning for polls and votes.

A quorum is ``None`` (no requirement) or a count of members, an ``int >= 1``. A
poll's quorum is met once that many members *answered* (errors do not count); a
vote's once that many members of the electorate cast an accepted ballot, whatever
their weights (abstentions count). A fraction of the electorate is not a quorum:
``quorum=1.0`` is refused rather than read as "one member" or "all the weight";
compute the count instead, e.g. ``math.ceil(len(room.members) * 2 / 3)``.
"""

from __future__ import annotations

from numbers import Number

from consensus.decide.checks import describe

__all__ = ["check_quorum"]


def check_quorum(quorum: object) -> int | None:
    """``quorum`` itself if it is ``None`` or an ``int >= 1``.

    Raises ``ValueError`` for a number of the wrong kind (a float or other fraction,
    or a count below 1) and ``TypeError`` for anything that is not a number.
    """
    if quorum is None:
        return None
    if isinstance(quorum, bool):
        raise TypeError(f"quorum must be None or a count of members (an int >= 1), got the bool {quorum!r}")
    if isinstance(quorum, int):
        if quorum < 1:
            raise ValueError(
                f"quorum {describe(quorum)} is not a count of members >= 1 (use None for no quorum)"
            )
        return quorum
    if isinstance(quorum, Number):
        # A number of the wrong kind (most often a share of the electorate): ValueError, like a count
        # below 1, since the type is plausible and only the meaning is wrong.
        raise ValueError(  # noqa: TRY004
            f"quorum {describe(quorum)} is not a count of members: a quorum is an int >= 1 (how many members must "
            f"take part), not a fraction of the electorate; pass e.g. math.ceil(share * len(members))"
        )
    raise TypeError(f"quorum must be None or a count of members (an int >= 1), got {describe(quorum)}")
