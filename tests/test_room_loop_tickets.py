"""``MemberProtocol.ticket_elsewhere``: the pure check behind a member's surveys answered on
an asyncio loop (``consensus/room/loop_surveys.py``, docs/asyncio.md §4.6).

Whatever the survey and the member's state, a ticket is given only for a complete poll or
vote of a kind handled on the loop, once welcomed and not an observer; and the reply built
from it, and the counter it goes to, are the ones the protocol's own path would send. A
survey read as fields (as the lent readers take it) gives the ticket its envelope gives, and
a poll's answer written from its shape is the frame built from that ticket's reply.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

import patterns
from consensus.failure import Failure
from consensus.room import protocol as P
from consensus.room.events import Handle
from consensus.room.member_protocol import MemberProtocol
from patterns import HOLE, Envelope
from patterns._gaps import GAP_MIN
from patterns._wire import common_frame, decode

values = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(st.text(max_size=4), max_size=3)
bodies = st.dictionaries(st.sampled_from(["question", "vote", "motion", "options", "x"]), values, max_size=4)
kinds = st.sampled_from([P.POLL, P.VOTE, "deliberate", "other"])
outcomes = st.tuples(st.just(True), values) | st.tuples(st.just(False), st.builds(Failure, st.text(max_size=8),
                                                                                    st.text(max_size=8)))  # fmt: skip


def member(*, welcomed: bool, observer: bool, on_poll: bool, on_vote: bool) -> MemberProtocol:
    m = MemberProtocol(name="m", token=1, host_mesh="ipc:///h", on_poll=on_poll, on_vote=on_vote,
                       refs=False, observer=observer)  # fmt: skip
    if welcomed:
        m._on_welcome(P.Welcome("m", 1, {"m": ""}, heartbeat=None, refs=True, observers=frozenset()))
    return m


@given(kind=kinds, body=bodies, welcomed=st.booleans(), observer=st.booleans(), on_poll=st.booleans(),
       on_vote=st.booleans(), here=st.sets(st.sampled_from([P.POLL, P.VOTE])), outcome=outcomes)  # fmt: skip
def test_a_ticket_only_when_the_loop_may_answer_and_the_same_reply(
    kind: str, body: dict[str, Any], welcomed: bool, observer: bool, on_poll: bool, on_vote: bool,
    here: set[str], outcome: tuple[bool, Any],
) -> None:  # fmt: skip
    m = member(welcomed=welcomed, observer=observer, on_poll=on_poll, on_vote=on_vote)
    envelope = Envelope(kind=kind, sender="host", id=7, body=body)
    counts = dict(m.counts)
    ticket = m.ticket_elsewhere(-1, envelope.kind, envelope.body, frozenset(here))
    assert m.counts == counts  # pure: nothing booked, nothing kept
    handled = {P.POLL: on_poll, P.VOTE: on_vote}.get(kind, False)
    complete = P.parse_survey(envelope).complete
    expected = welcomed and not observer and kind in here and handled and complete
    assert (ticket is not None) == expected
    if ticket is None:
        return
    # The protocol's own path for the same survey: a Handle, then the reply.
    twin = member(welcomed=welcomed, observer=observer, on_poll=on_poll, on_vote=on_vote)
    out = twin.receive_survey(1, envelope, 0.0)
    assert len(out) == 1 and isinstance(out[0], Handle)
    frame = twin.reply(1, outcome)
    built, counter = ticket.reply(outcome)
    assert (built.kind, built.body, built.inline) == (frame.kind, frame.body, frame.inline)
    twin.sent(1)
    m.count_elsewhere({counter: 1})
    assert m.counts == twin.counts  # booked alike


@given(outcome=outcomes)
def test_an_adopted_survey_is_replied_and_booked_as_the_protocols_own(outcome: tuple[bool, Any]) -> None:
    m = member(welcomed=True, observer=False, on_poll=True, on_vote=False)
    envelope = Envelope(kind=P.POLL, sender="host", id=7, body=P.poll_body("q"))
    ticket = m.ticket_elsewhere(-3, envelope.kind, envelope.body, frozenset({P.POLL}))
    assert ticket is not None
    m.adopt(ticket)
    frame = m.reply(-3, outcome)
    m.sent(-3)
    assert frame.kind == (P.ANSWER if outcome[0] else P.ERROR)
    assert m.counts["polls_answered" if outcome[0] else "handler_errors"] == 1


scalars = (st.text(max_size=300) | st.binary(max_size=300) | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False) | st.booleans() | st.none())  # fmt: skip
poll_bodies = st.builds(P.poll_body, scalars) | bodies


ids = st.integers(2**32, 2**64 - 1) | st.integers(0, 2**64 - 1)  # (a shape writes 8-byte ids: most are)


@given(kind=kinds, body=poll_bodies, ident=ids, expected=st.booleans(),
       outcome=st.tuples(st.just(True), scalars) | outcomes)  # fmt: skip
def test_fields_read_as_the_lent_reader_reads_them_give_the_envelopes_ticket_and_frame(
    kind: str, body: dict[str, Any], ident: int, expected: bool, outcome: tuple[bool, Any]
) -> None:
    """The lent readers take a survey as fields (the host's poll shape, or the common reader)
    and write a poll's answer from the answer shape: the same ticket as from the decoded
    envelope, and the same bytes as the frame built from the ticket's reply."""
    resp = patterns.Respondent(name="m")  # (never opened: its readers and writers are pure)
    if expected:
        resp.expect(resp.shape(P.POLL, re=False, deadline=True, body=P.poll_body(HOLE), sender="host", scalars=True))
    frame = common_frame(kind, "host", ident, body, None, 1.8e9, limit=GAP_MIN, max_size=resp.max_message_size)
    assume(frame is not None)
    assert frame is not None
    envelope = decode(frame, max_size=resp.max_message_size, max_items=resp.max_items, measure=False)
    fields = resp._plain_fields(frame)
    assert fields is not None  # small and common: never the envelope's path
    assert fields == (envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re, envelope.deadline)
    here = frozenset({P.POLL, P.VOTE})
    m = member(welcomed=True, observer=False, on_poll=True, on_vote=True)
    ticket = m.ticket_elsewhere(-1, fields[0], fields[3], here)
    assert ticket == m.ticket_elsewhere(-1, envelope.kind, envelope.body, here)
    if ticket is None or not (outcome[0] and ticket.survey.kind == P.POLL):
        return
    shape = resp.shape(P.ANSWER, re=True, deadline=False, body=P.answer_body(HOLE), scalars=True)
    built, counter = ticket.reply(outcome)
    mine = 2**40 + 5  # the reply's id (a socket's start at random from 62 bits)
    reply = common_frame(built.kind, "m", mine, built.body, ident, None, limit=GAP_MIN,
                         max_size=resp.max_message_size)  # fmt: skip
    written = shape.write(mine, ident, None, outcome[1], GAP_MIN)
    assert counter == "polls_answered"
    assert written is None or written == reply  # None: the reader writes the common frame instead
