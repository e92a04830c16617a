"""A sealed survey and a sealed reply read as fields (a room with a secret: the member's
respondent, the host's surveyor): the guard opens each frame before a byte of it is read,
then its payload is read as a plain frame's (the host's poll shape, the common reader) and
held to its key's sender and kinds. What that gives must be exactly what the envelope's path
(``_unpack``) gives for the same frame, the key it was sealed under included, and what it
refuses it must refuse alike, counted alike; a key learned on first sight is kept alike.

Each side has two readers holding the same key, each with its own replay window: one reads
the fast way, the other through ``_unpack``. No NNG: the respondent's receive and the
surveyor's NNG calls are replaced by the frames under test.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import cbor2
import pytest
from _frames import damage, damaged, frame_dict, plain_values, take_survey
from hypothesis import given, settings
from hypothesis import strategies as st

import patterns._survey as survey_module
from consensus.trust import Guard, Key
from consensus.trust.seal import MacSender, Scheme
from patterns import HOLE, Envelope, IncomingSurvey, MalformedMessage, Respondent, Surveyor, SurveyReplies
from patterns._raw import NOTHING_QUEUED
from patterns._wire import common_frame

PROPERTY = settings(max_examples=250, deadline=None)
KID = b"s" * 8
SECRET = b"\4" * 32
SURVEY = 2**62 + 7  # the id of the survey the replies answer

ids = st.integers(0, 2**64 - 1) | st.integers(2**32, 2**64 - 1)
scalars = (st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.floats(allow_nan=False)
           | st.text(max_size=300) | st.binary(max_size=300))  # fmt: skip
polls = st.builds(
    lambda sender, ident, deadline, question: Envelope("poll", sender, ident, {"question": question}, None, deadline),
    st.sampled_from(["host", "host", "other"]), ids, st.floats(allow_infinity=False, allow_nan=False) | st.just(1.7e9),
    scalars | plain_values(40),
)  # fmt: skip
answers = st.builds(
    lambda sender, ident, re, value: Envelope("answer", sender, ident, {"answer": value}, re),
    st.sampled_from(["m1", "m1", "m2"]), ids, st.just(SURVEY) | ids, scalars | plain_values(40),
)  # fmt: skip
others = st.builds(
    Envelope, kind=st.sampled_from(["poll", "vote", "answer", "ballot", "error"]), sender=st.sampled_from(["host", "m1"]),
    id=ids, body=plain_values(40), re=st.none() | st.just(SURVEY) | ids, deadline=st.none() | st.floats(allow_nan=False),
)  # fmt: skip
# What the key may speak for: anything, one sender, some kinds (a host's key for a member's
# replies names the member; a joiner's key names its kinds).
limits = st.sampled_from([(None, None), ("m1", None), ("host", None), (None, frozenset({"poll", "answer"})),
                          ("m1", frozenset({"answer"}))])  # fmt: skip


def _payload(envelope: Envelope, data: st.DataObject) -> bytes:
    """The envelope's frame as the sockets write it (common or cbor2's), or damaged."""
    how = data.draw(st.sampled_from(["common", "whole", "flip", "cut", "extend", "insert"]))
    if how == "common":
        frame = common_frame(envelope.kind, envelope.sender, envelope.id, envelope.body, envelope.re,
                             envelope.deadline, limit=4096, max_size=2**20)  # fmt: skip
        if frame is not None:
            return frame
        how = "whole"
    return damaged(envelope, data, [how])


class Twins:
    """A sender's guard, and two receiving guards under its key: given (``learn=False``) or
    learned on first sight, as a member learns the host's key."""

    def __init__(self, owner: str | None, kinds: frozenset[str] | None, learn: bool) -> None:
        self.sender = Guard(MacSender(KID, SECRET))
        self.learned: dict[str, list[bytes]] = {"fast": [], "slow": []}
        self.guards = {name: self._guard(name, owner, kinds, learn) for name in ("fast", "slow")}

    def _guard(self, name: str, owner: str | None, kinds: frozenset[str] | None, learn: bool) -> Guard:
        def key(kid: bytes) -> Key:
            return Key(kid, Scheme.MAC, SECRET, owner=owner, kinds=kinds,
                       learned=lambda key: self.learned[name].append(key.kid))  # fmt: skip

        if learn:
            return Guard(learn=lambda kid: key(kid) if kid == KID else None)
        guard = Guard()
        guard.add(key(KID))
        return guard

    def seal(self, payload: bytes) -> bytes:
        return self.sender.seal(payload, "any")

    def kept(self) -> None:
        """Both guards hold, and were told of, the same keys."""
        assert self.learned["fast"] == self.learned["slow"]
        assert (self.guards["fast"].find(KID) is None) == (self.guards["slow"].find(KID) is None)


def _counts(sock: Respondent | Surveyor) -> tuple[Any, ...]:
    """The counters ``statistics()`` reports (read directly: the sockets are never opened)."""
    return sock._malformed, dict(sock._malformed_reasons), dict(sock._unauthenticated), sock._stray


# ------------------------------------------------------------------ the member's respondent
def _respondent(guard: Guard) -> Respondent:
    sock = Respondent(name="m1", max_message_size=4096, guard=guard, shared_memory=False)  # never opened
    sock._msg_out = None  # (set when opened: _take passes it to _receive_body, replaced here)
    sock.expect(sock.shape("poll", re=False, deadline=True, body={"question": HOLE}, sender="host", scalars=True))
    return sock




def agree_respondent(twins: Twins, frame: bytes) -> IncomingSurvey | MalformedMessage:
    fast, slow = _respondent(twins.guards["fast"]), _respondent(twins.guards["slow"])
    try:
        expected: Envelope | MalformedMessage = slow._unpack(frame)
    except MalformedMessage as exc:
        expected = exc
    got = take_survey(fast, frame)
    if isinstance(expected, MalformedMessage):
        assert isinstance(got, MalformedMessage)
        assert (type(got), str(got), got.reason) == (type(expected), str(expected), expected.reason)
    else:
        assert isinstance(got, IncomingSurvey)
        fields = (got.kind, got.sender, got.id, got.body, got.wall)
        assert repr(fields) == repr((expected.kind, expected.sender, expected.id, expected.body, expected.deadline))
        envelope = got.envelope
        assert repr(envelope) == repr(expected)  # (repr: a -0.0 compares as itself)
        assert (envelope.size, envelope.weight, envelope.shm, envelope.session) == (
            expected.size, expected.weight, expected.shm, expected.session)  # fmt: skip
        assert envelope.session == KID
    assert _counts(fast) == _counts(slow)
    twins.kept()
    return got


@PROPERTY
@given(polls | others, limits, st.booleans(), st.data())
def test_a_sealed_survey_reads_as_the_envelope_path_reads_it(
    envelope: Envelope, limit: tuple[str | None, frozenset[str] | None], learn: bool, data: st.DataObject
) -> None:
    """Whole or damaged payloads, sealed as they are (the seal checks out): the same survey
    (its envelope's session too), or the same refusal; a learned key kept alike."""
    twins = Twins(*limit, learn)
    agree_respondent(twins, twins.seal(_payload(envelope, data)))


@PROPERTY
@given(polls, st.sampled_from(["flip", "cut", "extend", "insert"]), st.data())
def test_a_changed_byte_of_a_sealed_survey_is_refused_before_it_is_read(
    envelope: Envelope, how: str, data: st.DataObject
) -> None:
    twins = Twins(None, None, False)
    frame = twins.seal(cbor2.dumps(frame_dict(envelope)))
    got = agree_respondent(twins, damage(frame, how, data))
    assert isinstance(got, MalformedMessage) and got.reason in ("format", "key", "tag", "replay")


def test_a_sealed_survey_is_read_once_and_only_from_its_keys_sender() -> None:
    twins = Twins("host", frozenset({"poll"}), True)
    poll = common_frame("poll", "host", 2**62, {"question": "q"}, None, 1.7e9, limit=4096)
    assert poll is not None
    first = twins.seal(poll)
    got = agree_respondent(twins, first)
    assert isinstance(got, IncomingSurvey) and (got.kind, got.body) == ("poll", {"question": "q"})
    assert twins.learned["fast"] == [KID]
    again = agree_respondent(twins, first)  # a replay
    assert isinstance(again, MalformedMessage) and again.reason == "replay"
    forged = common_frame("poll", "other", 2**62 + 1, {"question": "q"}, None, 1.7e9, limit=4096)
    vote = common_frame("vote", "host", 2**62 + 2, {"question": "q"}, None, 1.7e9, limit=4096)
    assert forged is not None and vote is not None
    for frame, why in ((forged, "impersonation"), (vote, "kind")):
        refused = agree_respondent(twins, twins.seal(frame))
        assert isinstance(refused, MalformedMessage) and refused.reason == why


def test_a_plain_survey_to_a_sealed_member_is_refused_unread() -> None:
    twins = Twins(None, None, False)
    poll = common_frame("poll", "host", 2**62, {"question": "q"}, None, 1.7e9, limit=4096)
    assert poll is not None
    got = agree_respondent(twins, poll)
    assert isinstance(got, MalformedMessage) and got.reason == "format"


# ------------------------------------------------------------------ the host's surveyor
class _NNG:
    """The NNG calls of ``Surveyor._pump``, handing it ``frames`` one by one."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames
        self.current: bytes | None = None

    def nng_recv_aio(self, handle: Any, aio: Any) -> None:
        self.current = self.frames.pop(0) if self.frames else None

    def nng_aio_wait(self, aio: Any) -> None:
        pass

    def nng_aio_result(self, aio: Any) -> int:
        return 0 if self.current is not None else NOTHING_QUEUED

    def nng_aio_get_msg(self, aio: Any) -> bytes | None:
        return self.current

    def nng_msg_body(self, msg: bytes) -> bytes:
        return msg

    def nng_msg_len(self, msg: bytes) -> int:
        return len(msg)

    def nng_msg_free(self, msg: bytes) -> None:
        pass

    def buffer(self, body: bytes, size: int) -> bytes:
        return body


def _surveyor(guard: Guard, shaped: bool = False) -> tuple[Surveyor, SurveyReplies]:
    """A surveyor, never opened; ``shaped``: it reads answers from their sender's shape."""
    sock = Surveyor(name="host", max_message_size=4096, guard=guard, shared_memory=False)
    if shaped:
        sock.expect_replies("answer", body={"answer": HOLE}, scalars=True)
    sock._recv_aio, sock._handle, sock._recv_fd = object(), object(), None  # (as opened: _pump reads them)
    sock._routes = {}
    sock._receiving = SimpleNamespace(behind=False, parked=False)  # type: ignore[assignment]
    replies = SurveyReplies(sock, SURVEY, float("inf"))
    sock._routes[SURVEY] = replies
    return sock, replies


def agree_surveyor(twins: Twins, frame: bytes, monkeypatch: pytest.MonkeyPatch,
                   shaped: bool = True) -> list[Envelope] | None:  # fmt: skip
    """The fast surveyor routes the reply as the envelope's path would (to its survey, or
    as a stray), as the same envelope (``take``) and fields (``take_fields``), or refuses it
    alike; None when refused."""
    fast, replies = _surveyor(twins.guards["fast"], shaped)
    slow, _ = _surveyor(twins.guards["slow"])
    try:
        expected: Envelope | MalformedMessage = slow._unpack(frame)
    except MalformedMessage as exc:
        expected = exc
    nng = _NNG([frame])
    monkeypatch.setattr(survey_module, "lib", nng)
    monkeypatch.setattr(survey_module, "ffi", nng)
    fields_queued = list(replies._queue or ())
    got = replies.take()
    assert not fields_queued
    if isinstance(expected, MalformedMessage):
        assert got == []
        assert _counts(fast) == _counts(slow)
        twins.kept()
        return None
    if expected.re != SURVEY:
        assert got == [] and fast._stray == 1
        return []
    assert len(got) == 1
    assert repr(got[0]) == repr(expected)
    assert (got[0].size, got[0].weight, got[0].session) == (expected.size, expected.weight, expected.session)
    assert got[0].session == KID
    assert _counts(fast) == _counts(slow)
    twins.kept()
    # The same frame again (sealed anew) taken as fields: the envelope's fields.
    again = twins.seal(frame[35:])
    nng.frames.append(again)
    fielded = replies.take_fields()
    assert repr(fielded) == repr([(expected.kind, expected.sender, expected.id, expected.body, expected.re,
                                   expected.deadline)])  # fmt: skip
    return got


@PROPERTY
@given(answers | others, limits, st.booleans(), st.booleans(), st.data())
def test_a_sealed_reply_reads_as_the_envelope_path_reads_it(
    envelope: Envelope, limit: tuple[str | None, frozenset[str] | None], learn: bool, shaped: bool,
    data: st.DataObject,
) -> None:
    """Read from the common reader, or first from the shape of its key's owner's answers."""
    twins = Twins(*limit, learn)
    with pytest.MonkeyPatch.context() as monkeypatch:
        agree_surveyor(twins, twins.seal(_payload(envelope, data)), monkeypatch, shaped)


@PROPERTY
@given(answers, st.sampled_from(["flip", "cut", "extend", "insert"]), st.data())
def test_a_changed_byte_of_a_sealed_reply_is_refused_and_counted(
    envelope: Envelope, how: str, data: st.DataObject
) -> None:
    twins = Twins("m1", None, False)
    frame = damage(twins.seal(cbor2.dumps(frame_dict(envelope))), how, data)
    with pytest.MonkeyPatch.context() as monkeypatch:
        got = agree_surveyor(twins, frame, monkeypatch)
    assert got is None


def test_a_members_reply_under_another_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member's key speaks for that member only: an answer it seals in another's name is
    refused as ``"impersonation"``, counted, and reaches no round."""
    twins = Twins("m1", None, False)
    answer = common_frame("answer", "m2", 2**62 + 9, {"answer": 4}, SURVEY, None, limit=4096)
    assert answer is not None
    refused: list[Any] = []
    monkeypatch.setattr(Surveyor, "_skipped", lambda self, what, exc: refused.append(exc.reason))
    assert agree_surveyor(twins, twins.seal(answer), monkeypatch) is None
    assert refused == ["impersonation"]  # (skipped by the fast surveyor, counted as the slow one counts it)
    own = common_frame("answer", "m1", 2**62 + 10, {"answer": 4}, SURVEY, None, limit=4096)
    assert own is not None
    got = agree_surveyor(twins, twins.seal(own), monkeypatch)
    assert got is not None and got[0].body == {"answer": 4}


@pytest.mark.parametrize("shaped", [True, False], ids=["shape", "common"])
def test_a_key_learned_from_a_reply_is_kept_once_the_reply_is_accepted(
    shaped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply under a key the host's guard learns on first sight: refused for its key's
    limits, it teaches nothing; accepted (read from its sender's shape or not), the key is kept."""
    twins = Twins("m1", frozenset({"answer"}), True)
    forged = common_frame("answer", "m2", 2**62 + 1, {"answer": 4}, SURVEY, None, limit=4096)
    ballot = common_frame("ballot", "m1", 2**62 + 2, {"answer": 4}, SURVEY, None, limit=4096)
    own = common_frame("answer", "m1", 2**62 + 3, {"answer": 4}, SURVEY, None, limit=4096)
    assert forged is not None and ballot is not None and own is not None
    for frame in (forged, ballot):
        assert agree_surveyor(twins, twins.seal(frame), monkeypatch, shaped) is None
        assert twins.learned["fast"] == [] and twins.guards["fast"].find(KID) is None
    got = agree_surveyor(twins, twins.seal(own), monkeypatch, shaped)
    assert got is not None and got[0].body == {"answer": 4}
    assert twins.learned["fast"] == [KID] and twins.guards["fast"].find(KID) is not None
