"""Prompts cut to fit the room's message size: pure (fit_prompt, shown_as) and in memory
(Rounds with max_size, and the member finding its own cut position in an anonymous prompt)."""

from __future__ import annotations

import dataclasses
from typing import Any

from _rooms import ENDS, HEARTBEAT, wire
from hypothesis import given
from hypothesis import strategies as st
from test_room_deliberation import joined

from consensus.decide.position import Position
from consensus.decide.prompt import CUT_MARKER, Prompt, Seen, shown_as
from consensus.decide.prompt_fit import cut_text, fit_prompt, size_bound
from consensus.room import deliberation_frames as D
from consensus.room.events import Handle
from consensus.room.host_protocol import HostProtocol
from consensus.room.rounds import ENVELOPE_ROOM
from patterns import encode_body


def size(prompt: Prompt) -> int:
    return len(encode_body(prompt.to_wire()))


texts = st.one_of(st.none(), st.text(max_size=300))
positions = st.builds(Position, stance=st.sampled_from(["NATS", "Redis", "Kafka"]), answer=texts, reason=texts,
                      confidence=st.floats(0, 1))  # fmt: skip
prompts = st.lists(positions, max_size=12).map(
    lambda ps: Prompt("q", 2, None, True, tuple(Seen(f"P{n + 1}", p) for n, p in enumerate(ps)), 7)
)


@given(prompts, st.integers(0, 6000))
def test_a_fitted_prompt_fits_and_shows_every_kept_entry_as_it_was_or_cut(
    prompt: Prompt, budget: int
) -> None:
    fitted = fit_prompt(prompt, budget, size)
    if size(prompt) <= budget:
        assert fitted.prompt == prompt and not fitted.cut
        return
    shown = fitted.prompt.positions
    assert fitted.fits == (size(fitted.prompt) <= budget)
    assert not fitted.fits or fitted.cut
    assert fitted.fits or shown == ()  # only the question itself can be too large
    assert len(shown) + fitted.dropped == len(prompt.positions)
    for before, after in zip(prompt.positions, shown, strict=False):
        assert before.label == after.label and shown_as(before.position, after.position)
    if fitted.reasons_cut or fitted.dropped:  # reasons only once every answer is cut to the marker
        assert all(len(s.position.answer or "") <= len(CUT_MARKER) for s in shown)
    if fitted.dropped:
        assert all(len(s.position.reason or "") <= len(CUT_MARKER) for s in shown)


@given(prompts, st.integers(200, 6000))
def test_answers_are_cut_no_more_than_needed(prompt: Prompt, budget: int) -> None:
    fitted = fit_prompt(prompt, budget, size)
    if not fitted.answers_cut or fitted.reasons_cut or fitted.dropped:
        return
    # The common length: the longest answer shown, marker included; one character more does not fit.
    limit = max(len(s.position.answer or "") for s in fitted.prompt.positions)
    longer = tuple(Seen(s.label, dataclasses.replace(s.position, answer=cut_text(s.position.answer, limit + 1)))
                   for s in prompt.positions)  # fmt: skip
    assert limit < len(CUT_MARKER) or size(dataclasses.replace(prompt, positions=longer)) > budget


@given(st.text(min_size=1, max_size=50), st.integers(0, 60))
def test_cut_text_ends_with_the_marker_and_keeps_the_start(text: str, limit: int) -> None:
    cut = cut_text(text, limit)
    assert cut is not None
    if cut != text:
        assert cut.endswith(CUT_MARKER) and len(cut) <= max(limit, len(CUT_MARKER)) < len(text)
        assert text.startswith(cut[: -len(CUT_MARKER)])
        assert shown_as(Position("s", answer=text), Position("s", answer=cut))
    assert not shown_as(Position("s", answer=text), Position("s", answer=text + "x"))


def test_the_host_cuts_long_answers_and_the_member_still_finds_its_own() -> None:
    host = HostProtocol(name="host", endpoints=ENDS, heartbeat=HEARTBEAT)
    members = {name: joined(host, name, pipe=n + 1) for n, name in enumerate(["ann", "bob", "cy"])}
    dkey = host.rounds.open_deliberation("q", deliberation_id=5, now=0.0, rounds=2, anonymous=True)
    max_size = 8192
    for number in (1, 2):
        key, (survey,), fitted = host.rounds.open_deliberation_round(dkey, 0.0, max_size=max_size)
        assert len(encode_body(survey.body)) <= max_size - ENVELOPE_ROOM
        for n, (name, member) in enumerate(members.items()):
            (out,) = member.receive_survey(n, wire(survey.kind, "host", survey.body), 0.0)
            assert isinstance(out, Handle)
            others = out.args[2]
            if number == 2:  # its own position was cut too, and still left out
                assert len(others) == 2 and all(s.position.answer.endswith(CUT_MARKER) for s in others)
                assert name[0] * 10 not in "".join(s.position.answer for s in others)
            position = Position("NATS", answer=name[0] * 10 + "x" * 7000, reason=f"{name} says so")
            reply = member.reply(n, (True, position))
            member.sent(n)
            host.rounds.reply(key, wire(reply.kind, name, reply.body, re=1), 0.1)
        host.rounds.close_deliberation_round(key, 0.2)
        host.rounds.replies_done(key)
    assert fitted.cut and fitted.answers_cut == 3 and not fitted.dropped
    assert host.counts["prompts_cut"] == 1
    result, _ = host.rounds.close_deliberation(dkey, 1.0)
    assert all(not r.errors and not r.missing for r in result.rounds)
    assert len(result.final["ann"].position.answer or "") == 7010  # the result keeps the full answers


def test_a_prompt_too_large_even_cut_drops_entries() -> None:
    prompt = Prompt(
        "q", 2, None, False, tuple(Seen(f"member-{n:03}", Position("x" * 200)) for n in range(40)), 1
    )
    fitted = fit_prompt(prompt, 2000, size)
    assert fitted.fits and fitted.dropped and size(fitted.prompt) <= 2000
    assert [s.label for s in fitted.prompt.positions] == [
        f"member-{n:03}" for n in range(40 - fitted.dropped)
    ]
    assert D.parse_prompt(wire(D.DELIBERATE, "host", fitted.prompt.to_wire())) == fitted.prompt


@given(prompts, st.sampled_from([None, ("NATS", "Redis"), ("\u00e9" * 40,)]), st.integers(0, 2**64 - 1))
def test_the_cheap_bound_is_never_below_the_encoded_size(prompt: Prompt, options: Any, ident: int) -> None:
    prompt = dataclasses.replace(prompt, options=options, deliberation=ident, question={"q": "\U0001f600" * 9})
    assert size(prompt) <= size_bound(prompt, len(encode_body(prompt.question)))
