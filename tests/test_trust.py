"""The trust layer in memory: sealed frames, replay windows, guards, room keys, line keys.

Each check runs on bytes as they would travel; the process-level tests are in
``tests/test_room_secret.py``.
"""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from consensus.trust import Guard, HostKeys, Key, MemberKeys, PublicKeys, Secret
from consensus.trust import room as room_keys
from consensus.trust import seal as seal_module
from consensus.trust.line import LineKeys
from consensus.trust.room import HELLO, PENDING, join_kid
from consensus.trust.seal import HEADER, TAG_SIZE, WINDOW, MacSender, ReplayWindow, Scheme, SigSender
from consensus.trust.secret import as_secret
from patterns import Envelope, FirstOpened, Unauthenticated, decode, encode

SECRET = Secret(b"correct horse battery staple")


def frame(kind: str, sender: str, body: object = None) -> bytes:
    return encode(Envelope(kind=kind, sender=sender, id=1, body=body))


def opened(guard: Guard, data: bytes) -> Envelope:
    """What a socket with ``guard`` does with a received frame (open, decode, check the limits)."""
    result = guard.open(data)
    envelope = decode(result.payload)
    if result.owner is not None and envelope.sender != result.owner:
        raise Unauthenticated("impersonation", reason="impersonation", size=len(data))
    if result.kinds is not None and envelope.kind not in result.kinds:
        raise Unauthenticated("kind", reason="kind", size=len(data))
    if isinstance(result, FirstOpened):  # accepted whole: the guard may keep what it learned
        result.accepted()
    return envelope


def reason(guard: Guard, data: bytes) -> str:
    with pytest.raises(Unauthenticated) as info:
        opened(guard, data)
    return info.value.reason


# ---------------------------------------------------------------- the secret
def test_a_secret_never_shows_and_comes_from_files_and_the_environment(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert "horse" not in repr(SECRET) and "horse" not in str(SECRET)
    (tmp_path / "s").write_bytes(b"correct horse battery staple\n")
    assert Secret.from_file(tmp_path / "s") == SECRET
    monkeypatch.setenv("NNGC_SECRET", "correct horse battery staple")
    assert Secret.from_env() == SECRET
    assert as_secret("correct horse battery staple") == SECRET and as_secret(None) is None
    with pytest.raises(ValueError, match="empty"):
        Secret(b"")
    with pytest.raises(ValueError, match="holds no secret"):
        Secret.from_env("NNGC_NO_SUCH_VARIABLE")
    with pytest.raises(TypeError):
        as_secret(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the replay window
@given(st.lists(st.one_of(st.integers(min_value=1, max_value=3 * WINDOW), st.just(0)), max_size=300))
def test_a_guard_accepts_the_sequence_numbers_its_window_would(steps: list[int]) -> None:
    """The guard takes the next number in order itself (not through ReplayWindow.accept):
    frames numbered in order (0 below: the sender's next), out of order, repeated or too
    old are accepted or refused exactly as a window of their own says."""
    sender, guard, reference = MacSender(b"k" * 8, b"\1" * 32), Guard(), ReplayWindow()
    guard.add(Key(b"k" * 8, Scheme.MAC, b"\1" * 32))
    for step in steps:
        sender._seq = (sender._seq if step == 0 else step) - (step != 0)  # seal() numbers it seq + 1
        frame = sender.seal(b"payload")
        seq = sender._seq
        if reference.accept(seq):
            assert guard.open(frame).payload == b"payload"
        else:
            with pytest.raises(Unauthenticated, match="replay"):
                guard.open(frame)
    window = guard.keys[b"k" * 8].window
    assert (window.top, window.seen) == (reference.top, reference.seen)


class _OriginalWindow:
    """ReplayWindow.accept as it was before the guard took the next number itself (c8fcf06), verbatim."""

    def __init__(self) -> None:
        self._top = 0
        self._bits = 0

    def accept(self, seq: int) -> bool:
        if seq <= 0:
            return False
        if seq > self._top:
            shift = seq - self._top
            self._bits = ((self._bits << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self._top = seq
            return True
        back = self._top - seq
        if back >= WINDOW or self._bits >> back & 1:
            return False
        self._bits |= 1 << back
        return True


# A step: ("next", k) the sender's next k numbers in order (more than a window's worth: the
# bits kept stay within it), ("back", k) k behind the newest accepted, ("jump", k) k ahead
# of it, ("at", s) any 64-bit number.
_STEPS = st.one_of(
    st.tuples(st.just("next"), st.sampled_from([1, 1, 2, WINDOW + 5])),
    st.tuples(st.just("back"), st.integers(min_value=0, max_value=WINDOW + 2)),
    st.tuples(st.just("jump"), st.integers(min_value=1, max_value=2 * WINDOW)),
    st.tuples(st.just("at"), st.integers(min_value=1, max_value=2**64 - 1)),
)


@given(st.lists(_STEPS, max_size=200))
def test_a_guard_and_a_window_accept_what_the_original_window_did(steps: list[tuple[str, int]]) -> None:
    """Against the original ``accept`` (not the one the guard now shares names with): no number
    accepted twice or from outside the window, none refused that it took, over the whole 64-bit range."""
    sender, guard, window, original = MacSender(b"k" * 8, b"\1" * 32), Guard(), ReplayWindow(), _OriginalWindow()
    guard.add(Key(b"k" * 8, Scheme.MAC, b"\1" * 32))
    newest = 0
    for how, k in steps:
        run = range(newest + 1, newest + k + 1) if how == "next" else [{"back": newest - k, "jump": newest + k}.get(how, k)]
        for seq in run:
            if not 1 <= seq < 2**64:
                continue
            sender._seq = seq - 1  # seal() numbers it _seq + 1
            frame = sender.seal(b"payload")
            expected = original.accept(seq)
            assert window.accept(seq) is expected, seq
            if expected:
                assert guard.open(frame).payload == b"payload"
                newest = max(newest, seq)
            else:
                with pytest.raises(Unauthenticated, match="replay"):
                    guard.open(frame)
    held = guard.keys[b"k" * 8].window
    assert (held.top, held.seen) == (window.top, window.seen) and held.top == original._top


# ---------------------------------------------------------------- sealed frames
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0, max_value=200))
def test_a_sealed_frame_with_any_byte_changed_is_refused(noise: bytes, where: int) -> None:
    sender = MacSender(b"k" * 8, b"\1" * 32)
    guard = Guard()
    guard.add(Key(b"k" * 8, sender.scheme, b"\1" * 32))
    data = bytearray(sender.seal(frame("data", "a", "hello")))
    spot = where % len(data)
    data[spot] ^= noise[0] or 1
    with pytest.raises(Unauthenticated):
        guard.open(bytes(data))


@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0, max_value=400))
def test_a_signed_frame_with_any_byte_changed_is_refused(noise: bytes, where: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(b"\3" * 32)
    sender = SigSender(b"s" * 8, key)
    guard = Guard()
    guard.add(Key(b"s" * 8, sender.scheme, key.public_key()))
    data = bytearray(sender.seal(frame("say", "a", "hello" * 20)))
    assert opened(guard, sender.seal(frame("say", "a", "ok"))).body == "ok"
    spot = where % len(data)
    data[spot] ^= noise[0] or 1
    with pytest.raises(Unauthenticated):
        guard.open(bytes(data))


def test_a_made_up_signature_is_refused_before_the_payload_is_hashed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.from_private_bytes(b"\3" * 32)
    sender = SigSender(b"s" * 8, key)
    guard = Guard()
    guard.add(Key(b"s" * 8, sender.scheme, key.public_key()))
    genuine = sender.seal(frame("say", "a", bytes(1 << 20)))
    at = HEADER.size + TAG_SIZE[Scheme.SIG]
    forged = genuine[: HEADER.size] + bytes(64) + genuine[HEADER.size + 64 :]  # the signature made up
    hashed: list[int] = []
    real = seal_module._digest
    monkeypatch.setattr(seal_module, "_digest", lambda payload: hashed.append(len(payload)) or real(payload))
    assert reason(guard, forged) == "tag" and hashed == []  # a stranger's megabyte costs one verification
    assert opened(guard, genuine).body == bytes(1 << 20) and hashed == [len(genuine) - at]


def test_a_guard_refuses_plain_unknown_and_replayed_frames() -> None:
    host = HostKeys(SECRET)
    assert reason(host.survey, frame("answer", "alice", 1)) == "format"  # a stranger's plain frame
    stranger = MacSender(b"s" * 8, b"\2" * 32)
    assert reason(host.survey, stranger.seal(frame("answer", "alice", 1))) == "key"
    assert reason(host.control, stranger.seal(frame("hello", "alice"))) == "tag"  # no secret, no join key


# ---------------------------------------------------------------- a member's way in
def admitted(name: str, host: HostKeys, *, secret: Secret = SECRET) -> MemberKeys:
    """Play the hello / beat / join of one member through the guards, as the sockets would."""
    member = MemberKeys(secret, name)
    hello = opened(host.control, member.control.seal(frame(HELLO, name, member.hello_body()), HELLO))
    assert host.hello(host.control.open(member.control.seal(frame(HELLO, name, member.hello_body()), HELLO)).session,
                      member.public)  # fmt: skip
    assert hello.kind == HELLO
    beat = opened(member.control, host.control.seal(frame("beat", "host", {}), "beat"))
    assert beat.kind == "beat" and member.host_keys(host.public)
    data = member.control.seal(frame("join", name, {"name": name, "token": member.token}), "join")
    result = host.control.open(data)
    assert isinstance(result, FirstOpened)  # a new session's first frame: its key is kept once accepted
    result.accepted()
    assert host.may_speak_for(result.session, name, member.token, joining=True)
    host.bind(result.session, name)
    return member


def test_a_member_joins_with_the_secret_and_its_session_speaks_for_its_name_only() -> None:
    host = HostKeys(SECRET)
    alice, bob = admitted("alice", host), admitted("bob", host)
    reply = alice.survey.seal(frame("answer", "alice", "yes"), "answer")
    assert opened(host.survey, reply).sender == "alice"
    assert reason(host.survey, reply) == "replay"  # the same frame again
    forged = bob.survey.seal(frame("answer", "alice", "no"), "answer")  # bob speaks for alice
    assert reason(host.survey, forged) == "impersonation"
    leave = bob.control.seal(frame("leave", "bob", {"name": "alice"}), "leave")
    assert not host.may_speak_for(host.control.open(leave).session, "alice", alice.token)


def test_a_wrong_secret_cannot_join_and_cannot_read_the_host() -> None:
    host = HostKeys(SECRET)
    mallory = MemberKeys(Secret(b"guess"), "mallory")
    assert reason(host.control, mallory.control.seal(frame(HELLO, "mallory", mallory.hello_body()), HELLO)) == "tag"
    assert reason(mallory.control, host.control.seal(frame("beat", "host", {}), "beat")) == "tag"


def test_a_hello_carries_its_own_keys_only() -> None:
    host = HostKeys(SECRET)
    alice, mallory = MemberKeys(SECRET, "alice"), MemberKeys(SECRET, "mallory")
    data = mallory.control.seal(frame(HELLO, "mallory", alice.hello_body()), HELLO)  # alice's keys
    assert not host.hello(host.control.open(data).session, alice.public)
    assert host.hello(None, alice.public) is False and join_kid(alice.public.kx) != join_kid(mallory.public.kx)


def test_a_joiner_may_send_nothing_but_hellos_under_its_join_key() -> None:
    host = HostKeys(SECRET)
    mallory = MemberKeys(SECRET, "mallory")
    data = mallory.control.by_kind[HELLO].seal(frame("leave", "alice", {"name": "alice"}))
    assert reason(host.control, data) == "kind"


def test_the_mesh_is_signed_by_each_member_and_checked_against_the_roster() -> None:
    host = HostKeys(SECRET)
    alice, bob, carol = admitted("alice", host), admitted("bob", host), admitted("carol", host)
    keys = {name: PublicKeys.from_wire(value) for name, value in host.roster_keys().items()}
    for member in (alice, bob, carol):
        member.roster(keys)
    said = alice.mesh.seal(frame("say", "alice", "hi"), "say")
    assert opened(bob.mesh, said).sender == "alice" and opened(host.mesh, said).sender == "alice"
    forged = carol.mesh.seal(frame("line", "alice", {"to": "bob"}), "line")  # carol signs as alice
    assert reason(bob.mesh, forged) == "impersonation"
    host.forget("alice")
    assert reason(host.mesh, alice.mesh.seal(frame("say", "alice", "again"), "say")) == "key"


# ---------------------------------------------------------------- lines
def greet(a: LineKeys, b: LineKeys) -> None:
    opened(b.guard, a.guard.seal(frame("hello", "a", {"hotline": 1}), "hello"))
    opened(a.guard, b.guard.seal(frame("hello", "b", {"hotline": 1}), "hello"))
    assert a.agree(b.kid) and b.agree(a.kid)  # (the line's protocol does this for a fresh hello)
    assert not a.agree(b.kid)  # agreed already: nothing changes


def test_a_line_agrees_a_session_and_a_recorded_one_cannot_be_replayed_into_a_new_end() -> None:
    base = b"\7" * 32
    listener, dialer = LineKeys(base, listener=True), LineKeys(base, listener=False)
    greet(listener, dialer)
    recorded = [dialer.guard.seal(frame("hello", "a", {"hotline": 1}), "hello"),
                dialer.guard.seal(frame("ask", "a", 1), "ask")]  # fmt: skip
    assert opened(listener.guard, recorded[1]).kind == "ask"
    restarted = LineKeys(base, listener=True)  # a new listener process at the same address
    opened(restarted.guard, recorded[0])  # the old greeting checks out (it holds no request)...
    assert reason(restarted.guard, recorded[1]) == "tag"  # ...but the old session's key is unknown here
    stranger = LineKeys(b"\x08" * 32, listener=False)
    assert reason(listener.guard, stranger.guard.seal(frame("hello", "x", {}), "hello")) == "tag"


def test_room_lines_are_keyed_per_pair_of_members() -> None:
    host = HostKeys(SECRET)
    alice, bob, carol = admitted("alice", host), admitted("bob", host), admitted("carol", host)
    keys = {name: PublicKeys.from_wire(value) for name, value in host.roster_keys().items()}
    for member in (alice, bob, carol):
        member.roster(keys)
    assert alice.pair_key("bob") == bob.pair_key("alice") != carol.pair_key("alice")
    assert alice.pair_key("nobody") is None


def test_a_room_without_a_secret_warns_once_when_it_listens_beyond_loopback(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from consensus.room.credentials import warn_if_open

    log = logging.getLogger("test.open")
    for quiet in ("tcp://127.0.0.1:7000", "tcp://localhost:7000", "ipc:///tmp/x", "tcp://[::1]:7000"):
        warn_if_open(log, quiet, None)
    warn_if_open(log, "tcp://0.0.0.0:7000", SECRET)
    assert not caplog.records
    warn_if_open(log, "tcp://0.0.0.0:7000", None)
    (record,) = caplog.records
    assert "no secret" in record.getMessage() and "0.0.0.0:7000" in record.getMessage()


def test_a_forged_frame_under_a_joiners_session_leaves_its_join_possible() -> None:
    """A joiner's control session id follows from its hello's public key: a stranger who saw
    the hello can send a frame under it. That frame fails its tag and must leave nothing
    behind: the joiner's own join still opens its session."""
    host = HostKeys(SECRET)
    alice = MemberKeys(SECRET, "alice")
    hello = host.control.open(alice.control.seal(frame(HELLO, "alice", alice.hello_body()), HELLO))
    assert isinstance(hello, FirstOpened)
    hello.accepted()
    assert host.hello(hello.session, alice.public)
    assert opened(alice.control, host.control.seal(frame("beat", "host", {}), "beat")).kind == "beat"
    assert alice.host_keys(host.public)
    join = alice.control.seal(frame("join", "alice", {"name": "alice", "token": alice.token}), "join")
    forged = join[:-1] + bytes([join[-1] ^ 1])  # the same key id, a payload altered
    assert reason(host.control, forged) == "tag"
    assert reason(host.control, forged) == "tag"  # again: still only a derivation, nothing kept
    result = host.control.open(join)  # the join checks out
    assert isinstance(result, FirstOpened)
    result.accepted()
    assert host.may_speak_for(result.session, "alice", alice.token, joining=True)


def stranger_keys() -> PublicKeys:
    """Public keys nobody holds the private halves of: a hello that never opens a session."""
    return PublicKeys(secrets.token_bytes(32), secrets.token_bytes(32))


def test_past_the_pending_bound_the_oldest_hello_goes_and_is_counted() -> None:
    host = HostKeys(SECRET)
    alice = MemberKeys(SECRET, "alice")
    assert host.hello(join_kid(alice.public.kx), alice.public)
    for _ in range(PENDING - 1):
        keys = stranger_keys()
        assert host.hello(join_kid(keys.kx), keys)
    assert host.hellos_dropped == 0
    keys = stranger_keys()
    assert host.hello(join_kid(keys.kx), keys)  # one too many: alice's, the oldest, goes
    assert host.hellos_dropped == 1
    assert alice.host_keys(host.public)
    join = alice.control.seal(frame("join", "alice", {"name": "alice", "token": alice.token}), "join")
    assert reason(host.control, join) == "tag"  # her session is unknown until she says hello again


def test_past_the_session_bound_the_oldest_absent_session_goes_and_is_counted(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(room_keys, "SESSIONS", 2)
    host = HostKeys(SECRET)
    alice = admitted("alice", host)
    admitted("bob", host)
    host.retire("alice")  # silent: her session stays while there is room
    assert host.sessions_dropped == 0
    admitted("carol", host)
    assert host.sessions_dropped == 1  # alice's, the oldest of nobody present; bob's stays
    beat = alice.control.seal(frame("heartbeat", "alice", {"name": "alice", "token": alice.token}), "heartbeat")
    assert reason(host.control, beat) == "tag"  # her session is gone
