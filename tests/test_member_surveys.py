"""MemberSurveys' ``receive`` and ``reply`` against a naive reference of the general path.

Hypothesis drives both objects of a pair with the same surveys and outcomes: the one under
test through its public methods, the reference through ``_dispatch`` and ``_reply_frame``
alone; their outputs, frames and counters agree.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.failure import Failure
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.events import Output, Send
from consensus.room.member_surveys import MemberSurveys, _reply_frame
from patterns import Envelope

VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2))
BODIES = st.one_of(
    VALUES,
    st.dictionaries(st.sampled_from(["question", "vote", "motion", "options", "x"]), VALUES, max_size=4),
)
OUTCOMES = st.one_of(
    st.none(),
    st.tuples(st.just(True), VALUES),
    st.tuples(st.just(False), st.builds(Failure, st.sampled_from(["Error", "Timeout"]), st.text(max_size=5))),
)


def _pair(flags: tuple[bool, bool, bool]) -> tuple[MemberSurveys, MemberSurveys]:
    def one() -> MemberSurveys:
        counts = dict.fromkeys(("polls_answered", "votes_cast", "handler_errors", "malformed",
                                "positions_sent"), 0)  # fmt: skip
        return MemberSurveys("ann", counts, on_poll=flags[0], on_vote=flags[1], on_deliberate=flags[2],
                             identity=None)  # fmt: skip

    return one(), one()


def _general_receive(ref: MemberSurveys, key: int, envelope: Envelope, inline: bool) -> list[Output]:
    """``receive`` spelt out: parse, then ``_dispatch``."""
    ref._surveys[key] = P.parse_survey(envelope)
    if envelope.kind == D.DELIBERATE and not ref._deliberations.receive(key, envelope):
        ref.counts["malformed"] += 1
    return ref._dispatch(key, inline)


def _general_reply(ref: MemberSurveys, key: int, outcome: tuple[bool, Any] | None, inline: bool) -> Send:
    """``reply`` for a poll, a vote or another kind, through ``_reply_frame`` alone."""
    survey = ref._surveys[key]
    if survey.kind == D.DELIBERATE:
        return ref.reply(key, outcome, inline=inline)  # no shortcut there: the same path
    if outcome is None:
        what = "no handler for it" if survey.kind in (P.POLL, P.VOTE) else "unknown survey kind"
        outcome = (False, Failure("NotSupported", f"{survey.kind!r}: {what}"))
    frame, ref._counter[key] = _reply_frame(key, survey, outcome, ref.name, ref.identity, inline)
    return frame


@given(flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
       surveys=st.lists(st.tuples(st.sampled_from([P.POLL, P.VOTE, "other"]), BODIES, OUTCOMES,
                                  st.booleans()), max_size=8))  # fmt: skip
def test_receive_and_reply_answer_as_the_general_path(flags: tuple[bool, bool, bool], surveys: list[Any]) -> None:
    fast, ref = _pair(flags)
    for key, (kind, body, outcome, inline) in enumerate(surveys, 1):
        envelope = Envelope(kind, "host", key, body)
        got = fast.receive(key, envelope, keep=False, inline=inline)
        assert got == _general_receive(ref, key, envelope, inline)
        if len(got) == 1 and isinstance(got[0], Send):
            fast.sent(key), ref.sent(key)  # answered at once (an error): nothing to run
            continue
        assert fast.reply(key, outcome, inline=inline) == _general_reply(ref, key, outcome, inline)
        fast.sent(key), ref.sent(key)
    assert fast.counts == ref.counts
    assert not fast._surveys and not fast._counter and not ref._surveys


@settings(max_examples=300)
@given(flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
       surveys=st.lists(st.tuples(st.sampled_from([P.POLL, P.POLL, P.VOTE, "other"]),
                                  st.one_of(BODIES, st.builds(P.poll_body, VALUES)), OUTCOMES,
                                  st.booleans(), st.booleans()), max_size=8))  # fmt: skip
def test_receive_fields_answers_as_the_general_path(flags: tuple[bool, bool, bool], surveys: list[Any]) -> None:
    """``receive_fields`` (a survey's kind and body, and its shortcut for a complete poll,
    whose record it shares) hands out the same Handles and replies, frames and counters as
    ``receive`` of the survey's envelope, kept until the welcome or answered at once."""
    fast, ref = _pair(flags)
    for key, (kind, body, outcome, inline, keep) in enumerate(surveys, 1):
        envelope = Envelope(kind, "host", key, body)
        got = fast.receive_fields(key, kind, body, keep=keep, inline=inline)
        assert got == ref.receive(key, envelope, keep=keep, inline=inline)
        if keep:
            continue  # answered (or declined) on the welcome: release() below
        if len(got) == 1 and isinstance(got[0], Send):
            fast.sent(key), ref.sent(key)
            continue
        assert fast.poll_answer(key, outcome or (False, None)) == ref.poll_answer(key, outcome or (False, None))
        assert fast.reply(key, outcome, inline=inline) == ref.reply(key, outcome, inline=inline)
        assert fast.ticket(key, inline=inline) is None or fast.ticket(key, inline=inline).reply(  # type: ignore[union-attr]
            outcome or (True, None)) == ref.ticket(key, inline=inline).reply(outcome or (True, None))  # type: ignore[union-attr]
        fast.sent(key), ref.sent(key)
    inline = bool(surveys) and surveys[-1][3]
    released = fast.release(inline=inline)
    assert released == ref.release(inline=inline)
    for out in released:
        fast.dropped(out.survey), ref.dropped(out.survey)
    assert fast.counts == ref.counts
    assert not fast._surveys and not fast._counter and not ref._surveys
