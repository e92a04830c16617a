"""Signed ballots: members with an identity sign what they cast, the host refuses a
signature that does not check out, and a recorded decision is verified offline."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import consensus
from consensus.decide.ballot import Ballot, Signature
from consensus.decide.decision import Decision
from consensus.decide.rules import Majority
from consensus.decide.vote import VoteRound
from consensus.trust.identity import Identity

OPTIONS = ("yes", "no")


def signed(identity: Identity, choice: str, *, vote: int = 7, voter: str = "ann") -> Ballot:
    return identity.sign_ballot(Ballot(choice, vote=vote), vote=vote, options=OPTIONS, voter=voter)


def test_an_identity_is_saved_for_its_owner_only_and_loads_back(tmp_path: Path) -> None:
    identity = Identity.generate()
    identity.save(tmp_path / "ann.key")
    assert stat.S_IMODE(os.stat(tmp_path / "ann.key").st_mode) == 0o600
    assert Identity.load(tmp_path / "ann.key").public == identity.public
    assert identity.public.hex() in repr(identity) and "PRIVATE" not in repr(identity)
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(ValueError, match="cannot load an identity"):
        Identity.load(tmp_path / "junk")


def test_the_host_refuses_a_ballot_whose_signature_does_not_match() -> None:
    ann, bob = Identity.generate(), Identity.generate()
    round_ = VoteRound(7, electorate={"ann": 1.0, "bob": 1.0, "cy": 1.0}, options=OPTIONS, rule=Majority())
    round_.ballot("ann", signed(ann, "yes").to_wire())
    lifted = signed(bob, "yes", voter="bob")  # bob's ballot, claimed by cy
    round_.ballot("cy", lifted.to_wire())
    altered = dataclasses.replace(signed(bob, "yes", voter="bob"), choice="no")
    round_.ballot("bob", altered.to_wire())
    round_.finish()
    decision = round_.decision(elapsed=0.0)
    assert set(decision.ballots) == {"ann"}
    assert "does not match" in decision.errors["cy"].message and "does not match" in decision.errors["bob"].message


@given(st.sampled_from(OPTIONS), st.floats(0, 1), st.one_of(st.none(), st.text(max_size=20)))
def test_a_signature_covers_choice_confidence_reason_vote_and_options(choice: str, confidence: float,
                                                                       reason: str | None) -> None:  # fmt: skip
    ann = Identity.generate()
    ballot = ann.sign_ballot(Ballot(choice, confidence, reason, 7), vote=7, options=OPTIONS, voter="ann")
    good = Decision.from_wire(_decision({"ann": ballot}).to_wire())
    assert good.verify().ok and good.verify({"ann": ann.public}).ok
    for changed in (dataclasses.replace(ballot, choice="no" if choice == "yes" else "yes"),
                    dataclasses.replace(ballot, confidence=(confidence + 0.5) % 1.0001),
                    dataclasses.replace(ballot, reason=(reason or "") + "!")):  # fmt: skip
        assert not _decision({"ann": changed}).verify().ok
    assert not _decision({"ann": ballot}, vote=8).verify().ok  # moved to another vote
    assert not _decision({"bob": ballot}).verify().ok  # claimed by another voter
    assert not good.verify({"ann": Identity.generate().public}).ok  # not the key trusted for ann


def _decision(ballots: dict[str, Ballot], vote: int = 7) -> Decision:
    decision = consensus.tally(list(ballots.items()), options=OPTIONS, electorate=list(ballots))
    return dataclasses.replace(decision, vote=vote)  # as a room's vote records it


def test_an_unsigned_ballot_is_reported_not_trusted() -> None:
    ann = Identity.generate()
    report = _decision({"ann": signed(ann, "yes"), "bob": Ballot("no", vote=7)}).verify()
    assert not report.ok and report.unsigned == {"bob"} and report.signed == {"ann"}
    assert "unsigned: bob" in str(report)
    with pytest.raises(ValueError):
        Signature(b"short", b"x" * 64)


async def test_members_with_identities_sign_and_the_recorded_decision_verifies(
    room_address, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    address = room_address("tcp")
    ids = {name: Identity.generate() for name in ("ann", "bob")}
    async with consensus.host(address, secret="s") as room, \
            consensus.join(address, name="ann", on_vote=lambda m, o: "yes", identity=ids["ann"], secret="s") as ann, \
            consensus.join(address, name="bob", on_vote=lambda m, o: "yes", identity=ids["bob"], secret="s"):  # fmt: skip
        await room.wait_for_members(2)
        decision = await room.vote("ship it", options=list(OPTIONS), timeout=20)
        assert decision.outcome == "yes"
        keys = {name: identity.public for name, identity in ids.items()}
        assert decision.verify(keys).ok, str(decision.verify(keys))
        received = await ann.decisions().__anext__()  # as broadcast to the members
        assert received.verify(keys).ok
        recorded = Decision.from_wire(decision.to_wire())  # e.g. read back from a log file
        assert recorded.verify(keys).ok
