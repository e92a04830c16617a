"""``Rounds.take`` (a batch of replies) and ``Rounds.take_fields`` (a batch read as fields,
the driver's path) against ``Rounds.reply`` (one at a time, the reference): the same
counters, the same completion, the same result."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from _rooms import wire
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.failure import Failure
from consensus.room import deliberation_frames as D
from consensus.room import protocol as P
from consensus.room.roster import Roster
from consensus.room.rounds import Rounds
from patterns import Envelope

NAMES = ["ann", "bob", "cy", "dee"]
SENDERS = [*NAMES, "eve"]  # eve is never a member


def reply_body(kind: str, value: int) -> tuple[str, Any]:
    """A reply of one ``kind``: well formed, or one of the malformed shapes the host must count."""
    return {
        "answer": (P.ANSWER, P.answer_body(value)),
        "error": (P.ERROR, P.error_body(Failure("E", str(value)))),
        "ballot": (P.BALLOT, {"choice": "yes" if value % 2 else "no", "vote": 7}),
        "no-answer": (P.ANSWER, {"answr": value}),
        "not-a-map": (P.ANSWER, [value]),
        "bad-error": (P.ERROR, {"type": value}),
        "position": (D.POSITION, {"stance": "x"}),
        "unknown": ("shrug", {}),
    }[kind]


replies = st.lists(
    st.tuples(st.sampled_from(SENDERS),
              st.sampled_from(["answer", "error", "ballot", "no-answer", "not-a-map", "bad-error", "position",
                               "unknown"]),
              st.integers(0, 9)),
    max_size=16,
)  # fmt: skip


def rounds_of(members: set[str]) -> tuple[Rounds, dict[str, int]]:
    roster = Roster(heartbeat=1.0)
    for i, name in enumerate(sorted(members)):
        roster.join(name, i + 1, f"ipc:///tmp/{name}", i + 1, 0.0)
    counts: dict[str, int] = defaultdict(int)
    return Rounds(roster, counts), counts


@settings(max_examples=400)
@given(members=st.sets(st.sampled_from(NAMES), min_size=1), batch_sizes=st.lists(st.integers(1, 5), min_size=1),
       kind=st.sampled_from(["poll", "vote"]), quorum=st.none() | st.integers(1, 4), events=replies,
       left=st.lists(st.sampled_from(NAMES), max_size=2), finish_after=st.none() | st.integers(0, 16))  # fmt: skip
def test_a_batch_counts_as_its_replies_one_by_one(members: set[str], batch_sizes: list[int], kind: str,
                                                  quorum: int | None, events: list[tuple[str, str, int]],
                                                  left: list[str], finish_after: int | None) -> None:  # fmt: skip
    batched, batched_counts = rounds_of(members)
    single, single_counts = rounds_of(members)
    fielded, fielded_counts = rounds_of(members)
    keys = []
    for rounds in (batched, single, fielded):
        if kind == "poll":
            key, frames = rounds.open_poll("q", quorum=quorum, now=0.0)
        else:
            key, frames = rounds.open_vote("m", options=["yes", "no"], vote_id=7, rule=None, quorum=quorum,
                                           weights=None, now=0.0)  # fmt: skip
        assert frames
        rounds.left(left)
        keys.append(key)
    envelopes: list[Envelope] = []
    for sender, what, value in events:
        reply_kind, body = reply_body(what, value)
        envelopes.append(wire(reply_kind, sender, body))
    sizes = iter(batch_sizes * (len(envelopes) + 1))
    at = 0
    while at < len(envelopes):
        if finish_after is not None and at >= finish_after:
            for rounds, key in zip((batched, single, fielded), keys):
                rounds.finish(key)  # the caller has closed it: the rest are late
        batch = envelopes[at : at + next(sizes)]
        at += len(batch)
        now = 0.1 * at
        taken = batched.take(keys[0], iter(batch), now)
        outcomes = [single.reply(keys[1], envelope, now) for envelope in batch]
        fields = [(e.kind, e.sender, e.id, e.body, e.re, e.deadline) for e in batch]
        assert fielded.take_fields(keys[2], iter(fields), now) == taken
        assert dict(fielded_counts) == dict(batched_counts)
        assert taken.complete == outcomes[-1].complete
        assert taken.exhausted == outcomes[-1].exhausted
        assert list(taken.ignored) == [o.reason for o in outcomes if o.verdict is None]
        assert dict(batched_counts) == dict(single_counts)
        assert batched.complete(keys[0]) == single.complete(keys[1])
    if kind == "poll":
        assert batched.close_poll(keys[0], 5.0) == single.close_poll(keys[1], 5.0) == fielded.close_poll(keys[2], 5.0)
    else:
        assert batched.close_vote(keys[0], 5.0) == single.close_vote(keys[1], 5.0) == fielded.close_vote(keys[2], 5.0)


def test_replies_to_a_forgotten_round_are_counted_late() -> None:
    rounds, counts = rounds_of({"ann"})
    key, _ = rounds.open_poll("q", quorum=None, now=0.0)
    rounds.close_poll(key, 1.0)
    rounds.replies_done(key)
    taken = rounds.take(key, iter([wire(P.ANSWER, "ann", P.answer_body(1))] * 3), 2.0)
    assert taken.complete and taken.exhausted and not taken.ignored
    assert counts["late_replies"] == 3


def test_a_bug_while_counting_names_the_sender_and_leaves_the_rest_of_the_batch() -> None:
    rounds, counts = rounds_of({"ann", "bob"})
    key, _ = rounds.open_poll("q", quorum=None, now=0.0)

    class Exploding(dict[str, Any]):
        def __contains__(self, key: object) -> bool:
            raise RuntimeError("a bug")

    bad = Envelope(kind=P.ANSWER, sender="ann", id=1, body=Exploding(), re=None)
    envelopes = iter([bad, wire(P.ANSWER, "bob", P.answer_body(2))])
    try:
        rounds.take(key, envelopes, 0.5)
    except RuntimeError as exc:
        assert "'ann'" in " ".join(exc.__notes__)
    else:
        raise AssertionError("the bug was swallowed")
    taken = rounds.take(key, envelopes, 0.5)  # the driver goes on with the rest
    assert not taken.complete and counts["malformed"] == 0
    assert dict(rounds.close_poll(key, 1.0).answers) == {"bob": 2}


def test_a_bug_while_counting_fields_names_the_sender_and_leaves_the_rest_of_the_batch() -> None:
    rounds, counts = rounds_of({"ann", "bob"})
    key, _ = rounds.open_poll("q", quorum=None, now=0.0)

    class Exploding(dict[str, Any]):
        def __contains__(self, key: object) -> bool:
            raise RuntimeError("a bug")

    fields = iter([(P.ANSWER, "ann", 1, Exploding(), None, None), (P.ANSWER, "bob", 2, P.answer_body(2), None, None)])
    try:
        rounds.take_fields(key, fields, 0.5)
    except RuntimeError as exc:
        assert "'ann'" in " ".join(exc.__notes__)
    else:
        raise AssertionError("the bug was swallowed")
    taken = rounds.take_fields(key, fields, 0.5)  # the driver goes on with the rest
    assert not taken.complete and counts["malformed"] == 0
    assert dict(rounds.close_poll(key, 1.0).answers) == {"bob": 2}
    late = rounds.take_fields(key, iter([(P.ANSWER, "ann", 3, P.answer_body(1), None, None)]), 2.0)
    assert late.complete and counts["late_replies"] == 1
