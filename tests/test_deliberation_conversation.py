"""Whole deliberations in memory, through the proposed wire forms (issue 14).

The host side is a :class:`Deliberator`; each member decodes the broadcast ``deliberate``
body, drops its own entry (``Prompt.others``), answers with a ``position`` body, and
hypothesis chooses the stances, whom each member credits, the delivery order, dropped and
duplicated replies, and hostile frames under any name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from _tally_cases import junk, through_cbor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.decide import Deliberator, Position, Prompt, no_change
from consensus.decide.poll import Verdict
from consensus.decide.rules import Plurality

NAMES = ["ann", "bob", "cy", "dee"]
STANCES = ["NATS", "nats", "Redis", "ZeroMQ"]


def contents(prompt: Prompt) -> Counter[Position]:
    return Counter(seen.position for seen in prompt.positions)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_deliberation_over_the_wire(data: st.DataObject) -> None:
    members = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True), label="members")
    anonymous = data.draw(st.booleans(), label="anonymous")
    options = data.draw(st.sampled_from([None, ["NATS", "Redis", "ZeroMQ"]]), label="options")
    host = Deliberator("which broker?", members, options=options, rule=Plurality(),
                       rounds=data.draw(st.integers(1, 3)), until=no_change, anonymous=anonymous)  # fmt: skip
    sent: dict[str, Position] = {}  # each member's reply to the previous round, as it remembers it
    while not host.done:
        broadcast = host.open_round()
        body = through_cbor(broadcast.to_wire())
        if anonymous:
            assert not any(name in repr(body) for name in NAMES)
        replies: list[tuple[str, Any]] = []
        credited: dict[str, dict[str, Position]] = {}  # member -> label -> the position it showed
        own: dict[str, Any] = {}  # member -> its reply body (hostile frames may use its name too)
        for name in sorted(host.current.electorate if host.current else ()):
            view = Prompt.from_wire(body).others(name, sent.get(name))
            last = host.rounds[-1] if host.rounds else None
            mine = None if name not in sent else replace(sent[name], persuaded_by=(), round=None)
            accepted = None if last is None or name not in last.positions else last.positions[name]
            if last is None or (accepted is not None and replace(accepted, persuaded_by=(), round=None) == mine) or (
                accepted is None and mine not in contents(broadcast)
            ):
                # The member's view is the host's exact view for it unless its last reply was
                # lost and someone else sent the same position (docs/deliberation.md, 7).
                assert contents(view) == contents(host.prompt_for(name))
            labels = data.draw(st.lists(st.sampled_from([s.label for s in view.positions] or ["P1"]),
                                        unique=True, max_size=2))  # fmt: skip
            # A label means what the broadcast showed under it; crediting oneself counts for nothing.
            assert host.current is not None
            credited[name] = {s.label: s.position for s in broadcast.positions
                              if s.label in labels and host.current.labels[s.label] != name}  # fmt: skip
            position = Position(data.draw(st.sampled_from(STANCES)), reason=data.draw(st.sampled_from(["a", None])),
                                confidence=data.draw(st.sampled_from([0.5, 1.0])), persuaded_by=tuple(labels),
                                round=broadcast.round)  # fmt: skip
            sent[name] = position
            copies = data.draw(st.sampled_from([0, 1, 1, 1, 2]), label=f"copies of {name}'s reply")
            own[name] = through_cbor(position.to_wire())
            replies += [(name, own[name])] * copies
        replies += data.draw(st.lists(st.tuples(st.sampled_from(NAMES + ["zed"]), junk), max_size=2))
        first: dict[str, Any] = {}
        for name, reply in data.draw(st.permutations(replies), label="delivery order"):
            first.setdefault(name, reply)
            assert isinstance(host.answer(name, reply, at=0.1), Verdict)
        finished = host.close_round(elapsed=1.0)
        for name, position in finished.positions.items():
            if first[name] is not own.get(name):
                continue  # a hostile frame under this member's name came first
            # What was accepted is a member's own reply, and every label it credited resolves
            # to the member whose position that label showed.
            assert position.stance == sent[name].stance and position.round == finished.number
            previous = host.rounds[-2].positions if len(host.rounds) > 1 else {}
            def content(p: Position) -> tuple[Any, ...]:
                return (p.stance, p.answer, p.reason, p.confidence)

            shown = [content(p) for p in credited[name].values()]
            got = [content(previous[persuader]) for persuader in position.persuaded_by]
            assert sorted(got, key=repr) == sorted(shown, key=repr)
            assert set(position.persuaded_by) <= set(previous) - {name}
        assert finished.missing | set(finished.positions) | set(finished.errors) == finished.expected
    result = host.result(elapsed=2.0)
    assert str(result) and result.to_dict()["stopped_by"] == host.stopped_by
