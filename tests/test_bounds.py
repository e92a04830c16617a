"""Bounded cost per frame (issue 13, item 4): the decoder's limits, joins, inboxes; no sockets.

Every frame within the limits decodes exactly as plain cbor2 would; every frame over
one is refused with its reason (``items``, ``key``, ``cost``), checked against a naive
model that counts the decoded value. The attacks that froze a host (a map of bignum
keys that all hash to 0, millions of empty arrays) are refused before anything is
built. The roster's member cap and per-connection join limit are checked against a
naive model, and the room inbox's byte budget directly. The socket-level test (a real attacker process against a real host) is in
``tests/test_bounds_attack.py``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import patterns._cbor
from consensus.room.admission import Admission
from consensus.room.inbox import Inbox
from consensus.room.roster import JoinOutcome, Roster
from patterns import DEFAULT_MAX_ITEMS, EncodeError, Envelope, MalformedMessage, decode, decode_body, encode
from patterns._scan import CONTAINER_ALLOWANCE

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
P = 2**61 - 1  # CPython's hash modulus: hash(k * P) == 0 for every int k


# ------------------------------------------------------------------ the naive model
def is_bignum(value: Any) -> bool:
    return type(value) is int and not -(2**64) <= value < 2**64


def items_of(value: Any) -> int:
    """CBOR data items in ``value``'s encoding: every head (a bignum is a tag and a string)."""
    if isinstance(value, list | tuple):
        return 1 + sum(items_of(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(items_of(k) + items_of(v) for k, v in value.items())
    return 2 if is_bignum(value) else 1


def containers_of(value: Any) -> int:
    if isinstance(value, list | tuple):
        return 1 + sum(containers_of(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(containers_of(k) + containers_of(v) for k, v in value.items())
    return 0


def bad_keys(value: Any) -> bool:
    """Whether some map key, in any map, is not text or bytes."""
    if isinstance(value, list | tuple):
        return any(bad_keys(item) for item in value)
    if isinstance(value, dict):
        return any(type(key) not in (str, bytes) or bad_keys(item) for key, item in value.items())
    return False


# ------------------------------------------------------------------ strategies
plain_ints = st.integers(-(2**64), 2**64 - 1)
scalars = st.none() | st.booleans() | plain_ints | st.floats() | st.text(max_size=6) | st.binary(max_size=6)
good_keys = st.text(max_size=6) | st.binary(max_size=4)
any_keys = (
    good_keys
    | plain_ints
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
    | st.integers(2**64, 2**70)
    | st.tuples(plain_ints)
)


def bodies(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars | st.integers(-(2**80), 2**80),
        lambda children: st.lists(children, max_size=6) | st.dictionaries(keys, children, max_size=5),
        max_leaves=30,
    )


def same(a: Any, b: Any) -> bool:
    """Structural equality that also checks types and treats NaN as NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def reason(data: bytes, **kwargs: Any) -> str | None:
    try:
        decode_body(data, **kwargs)
    except MalformedMessage as exc:
        assert exc.size == len(data)
        return exc.reason
    return None


# ------------------------------------------------------------------ properties
@SETTINGS
@given(bodies(good_keys))
def test_within_the_limits_decodes_as_plain_cbor2(value: Any) -> None:
    data = cbor2.dumps(value)
    assert same(decode_body(data), cbor2.loads(data))


@SETTINGS
@given(bodies(good_keys), st.integers(1, 80))
def test_items_refused_exactly_past_max_items(value: Any, max_items: int) -> None:
    data = cbor2.dumps(value)
    got = reason(data, max_items=max_items)
    assert got == ("items" if items_of(value) > max_items else None)


@SETTINGS
@given(bodies(any_keys))
def test_costly_keys_refused_wherever_they_are(value: Any) -> None:
    data = cbor2.dumps(value)
    assert reason(data) == ("key" if bad_keys(value) else None)


@SETTINGS
@given(st.integers(0, 3 * CONTAINER_ALLOWANCE), st.binary(max_size=8192))
def test_containers_bounded_by_frame_length(empties: int, padding: bytes) -> None:
    value = [[] for _ in range(empties)] + [padding]
    data = cbor2.dumps(value)
    over = containers_of(value) > CONTAINER_ALLOWANCE + len(data) // 8
    assert reason(data) == ("cost" if over else None)


def test_envelope_decode_takes_max_items_and_records_size() -> None:
    data = encode(Envelope("data", "a", 1, body=list(range(20))))
    assert decode(data).size == len(data)
    assert decode(data, max_items=31).body == list(range(20))  # the map, 5 keys, 5 values, 20 ints
    with pytest.raises(MalformedMessage) as info:
        decode(data, max_items=30)
    assert info.value.reason == "items"


@SETTINGS
@given(bodies(good_keys))
def test_weight_estimates_the_decoded_size_from_above(value: Any) -> None:
    envelope = decode(encode(Envelope("say", "m", 1, body=value)))
    assert envelope.weight >= envelope.size + deep_size(envelope.body)


def deep_size(value: Any) -> int:
    """What a decoded value takes, shared small objects counted each time (an over-estimate)."""
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k) + deep_size(v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        size += sum(deep_size(item) for item in value)
    return size


def test_default_limit() -> None:
    assert DEFAULT_MAX_ITEMS == 65_536


# ------------------------------------------------------------------ the attack frames
def collision_frame(keys: int) -> bytes:
    """The envelope that froze a host: a body map whose bignum keys all hash to 0.

    Written with cbor2 itself: ``patterns.encode`` refuses such keys (EncodeError)."""
    body = {k * P: 0 for k in range(1, keys + 1)}
    return cbor2.dumps({"v": 1, "k": "say", "s": "mallory", "id": 1, "b": body})


def amplification_frame(arrays: int) -> bytes:
    """The envelope that grew a host by 139 MB: ``arrays`` empty arrays (1 byte each)."""
    head = encode(Envelope("say", "mallory", 1, body=[]))
    assert head.endswith(b"\x80")  # the body: an empty array, to be replaced by a long one
    return head[:-1] + b"\x9a" + arrays.to_bytes(4, "big") + b"\x80" * arrays


def refused_in(data: bytes, **kwargs: Any) -> tuple[str, float]:
    start = time.perf_counter()
    with pytest.raises(MalformedMessage) as info:
        decode(data, **kwargs)
    return info.value.reason, time.perf_counter() - start


def test_the_hash_collision_frame_is_refused_before_building() -> None:
    data = collision_frame(40_000)  # ~0.5 MB; 80,001 items
    assert 400_000 < len(data) < 600_000
    assert refused_in(data)[0] == "items"
    # Under max_items, the first bignum key ends it: nothing quadratic can start.
    assert refused_in(collision_frame(30_000))[0] == "key"
    assert refused_in(data, max_items=10**7)[0] == "key"


def test_the_encoder_refuses_the_collision_body() -> None:
    with pytest.raises(EncodeError, match="map key"):
        encode(Envelope("say", "mallory", 1, body={k * P: 0 for k in range(1, 4)}))


def test_a_small_frame_of_bignum_keys_is_refused_unwalked_and_at_once() -> None:
    data = collision_frame(300)  # ~4 KB: at most max_items bytes, so never walked without measure
    assert len(data) <= DEFAULT_MAX_ITEMS
    best = math.inf
    for _ in range(5):  # the best of a few runs: the machine is shared
        why, took = refused_in(data, measure=False)
        assert why == "key"
        best = min(best, took)
    assert best < 0.001


def test_a_small_envelope_decodes_without_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Envelope("data", "carol", 7, body={"a": [1, 2], b"b": None}))
    assert len(data) <= 64
    walked: list[int] = []

    def spy(frame: Any, *args: Any) -> Any:
        walked.append(len(frame))
        return real_scan(frame, *args)

    real_scan = patterns._cbor.scan
    monkeypatch.setattr(patterns._cbor, "scan", spy)
    envelope = decode(data, measure=False)
    assert (walked, envelope.body, envelope.weight) == ([], {"a": [1, 2], b"b": None}, len(data))
    assert decode(data).weight > len(data) and walked == [len(data)]  # measured: walked once


def test_the_amplification_frame_is_refused_before_building() -> None:
    data = amplification_frame(2_000_000)  # ~2 MiB
    assert refused_in(data)[0] == "items"
    assert refused_in(data, max_items=10**7)[0] == "cost"


# ------------------------------------------------------------------ joins: a naive model
class NaiveAdmission:
    """Every admitted attempt kept forever; the rule read straight from the log."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.log: list[tuple[int, str, float]] = []

    def admit(self, pipe: int, name: str, now: float) -> bool:
        recent = {n for p, n, t in self.log if p == pipe and now - t < self.window}
        if name not in recent and len(recent) >= self.limit:
            return False
        self.log.append((pipe, name, now))
        return True

    def forget(self, pipe: int) -> None:
        self.log = [entry for entry in self.log if entry[0] != pipe]


attempts = st.lists(
    st.tuples(
        st.sampled_from(["try", "close"]), st.integers(0, 3), st.sampled_from("abcdefgh"), st.floats(0, 4)
    ),
    max_size=80,
)


@SETTINGS
@given(attempts, st.integers(1, 4), st.sampled_from([1.0, 2.5, 10.0]))
def test_admission_matches_the_naive_model(
    steps: list[tuple[str, int, str, float]], limit: int, window: float
) -> None:
    real, model = Admission(limit=limit, window=window), NaiveAdmission(limit, window)
    now = 0.0
    for op, pipe, name, dt in steps:
        now += dt
        if op == "close":
            real.forget(pipe)
            model.forget(pipe)
            continue
        assert real.admit(pipe, name, now) == model.admit(pipe, name, now), (pipe, name, now)
        assert real.tried(pipe, now) <= limit


joins = st.lists(
    st.tuples(
        st.sampled_from(["join", "leave", "close", "expire"]),
        st.integers(0, 5),  # pipe
        st.integers(0, 11),  # name
        st.integers(0, 1),  # token
        st.floats(0, 1.5),  # time passing
    ),
    max_size=120,
)


@SETTINGS
@given(joins, st.integers(1, 6), st.integers(1, 4))
def test_roster_never_exceeds_max_members_and_counts_each_refusal(
    steps: list[tuple[str, int, int, int, float]], max_members: int, per_pipe: int
) -> None:
    roster = Roster(heartbeat=0.5, max_members=max_members, names_per_connection=per_pipe, name_window=3.0)
    model = NaiveAdmission(per_pipe, 3.0)
    full = flood = 0
    now = 0.0
    for op, pipe, n, token, dt in steps:
        now += dt
        name = f"m{n}"
        if op == "leave":
            roster.leave(name, token)
        elif op == "close":
            roster.pipe_closed(pipe)
            model.forget(pipe)
        elif op == "expire":
            roster.expire(now)
        else:
            before = set(roster.names)
            admitted = pipe in roster._closed_pipes or model.admit(pipe, name, now)
            verdict = roster.join(name, token, f"tcp://127.0.0.1:{n + 1}", pipe, now)
            if not admitted:
                flood += 1
                assert verdict.outcome is JoinOutcome.REFUSED
                assert "names_per_connection" in verdict.reason
            elif verdict.outcome is JoinOutcome.REFUSED and "max_members" in verdict.reason:
                full += 1
                assert name not in before and len(before) == max_members
            elif name not in before and pipe not in roster._closed_pipes:
                assert len(before) < max_members  # a newcomer got in only with room to spare
        assert len(roster) <= max_members
        assert (roster.refused_full, roster.refused_flood) == (full, flood)


def test_join_flood_over_one_connection_is_cut_short() -> None:
    roster = Roster(heartbeat=0.5)
    verdicts = [roster.join(f"fake{i}", i, "tcp://127.0.0.1:9", 7, now=i * 1e-3) for i in range(2000)]
    assert len(roster) == 8 and roster.refused_flood == 1992
    assert all(v.outcome is JoinOutcome.REFUSED for v in verdicts[8:])
    # Another connection still gets in, and the flooder may try again after the window.
    assert roster.join("honest", 1, "tcp://127.0.0.1:9", 8, now=2.5).outcome is JoinOutcome.ACCEPTED
    assert roster.join("fake9000", 1, "tcp://127.0.0.1:9", 7, now=2.5 + 60.0).outcome is JoinOutcome.ACCEPTED


def test_a_full_room_refuses_newcomers_but_not_its_members() -> None:
    roster = Roster(heartbeat=0.5, max_members=2)
    for i in range(3):
        roster.join(f"m{i}", i, "tcp://127.0.0.1:9", i, now=0.0)
    assert roster.names == ("m0", "m1") and roster.refused_full == 1
    assert roster.join("m0", 0, "tcp://127.0.0.1:9", 0, now=0.1).outcome is JoinOutcome.REFRESHED
    roster.leave("m1", 1)
    assert roster.join("m2", 2, "tcp://127.0.0.1:9", 2, now=0.2).outcome is JoinOutcome.ACCEPTED


# ------------------------------------------------------------------ the inbox's byte budget
def said(size: int, ident: int) -> Envelope:
    return Envelope("say", "mallory", ident, body=ident, size=size // 2, weight=size)


async def test_inbox_drops_past_its_byte_budget_and_frees_what_is_read() -> None:
    inbox = Inbox(capacity=100, max_bytes=1000)
    assert [inbox.offer(said(400, i)) for i in range(3)] == [True, True, False]
    assert (inbox.held_bytes, inbox.dropped, inbox.dropped_for_bytes) == (800, 1, 1)
    messages = inbox.messages()
    assert await messages.__anext__() == ("mallory", 0)
    assert inbox.held_bytes == 400
    assert inbox.offer(said(600, 3))
    inbox.close()
    assert [value async for _, value in messages] == [1, 3]
    assert inbox.held_bytes == 0


async def test_inbox_still_bounded_in_slots() -> None:
    inbox = Inbox(capacity=2)
    assert [inbox.offer(said(10, i)) for i in range(3)] == [True, True, False]
    assert (inbox.dropped, inbox.dropped_for_bytes, inbox.held_bytes) == (1, 0, 20)


def test_inbox_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="byte budget"):
        Inbox(max_bytes=0)
