"""The envelope codec with shared memory: large buffers become references on the way
out and read-only views on the way in; bad references make the frame malformed.

Decoding is pure (a reference comes back as a ``ShmRef``, nothing attached); the
receiving socket attaches (``BaseSocket._unpack``), which :func:`receive` calls on a
socket that is never opened."""

from __future__ import annotations

import array
import gc
from pathlib import Path
from typing import Any

import cbor2
import pytest
from _shm import mappings, no_leak, segments, shm_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patterns import Envelope, MalformedMessage, Pair
from patterns._wire import decode, encode
from patterns.errors import BadReference, SegmentGone, SharedMemoryError, SharedMemoryFull
from patterns.shm import ShmRef
from patterns.shm.codec import SHM_TAG, Placement, SharedMemory, holds_references, resolve
from patterns.shm.segment import SharedBuffer

__all__ = ["no_leak", "shm_dir"]  # fixtures

KiB = 1024


def policy(folder: Path, **kw: Any) -> SharedMemory:
    return SharedMemory(threshold=4 * KiB, directory=str(folder), **kw)


def receive(data: bytes, shared_memory: SharedMemory) -> Envelope:
    """What a receiving socket makes of ``data``: decode, then attach (counted if malformed)."""
    return Pair(shared_memory=shared_memory)._unpack(data)


def roundtrip(body: Any, folder: Path, receivers: int = 1, **kw: Any) -> tuple[bytes, Placement, Any]:
    placement = Placement(policy(folder, **kw), receivers)
    data = encode(Envelope("data", "a", 1, body), placement=placement)
    placement.sent()
    return data, placement, receive(data, policy(folder)).body


def plain(value: Any) -> Any:
    """Views as bytes, to compare with what was sent."""
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def test_large_buffers_travel_as_references_small_ones_inline(shm_dir: Path) -> None:
    big, small = bytes(range(256)) * 64, b"tiny"
    grid = array.array("d", [1.5] * 1024)  # any buffer-protocol object (numpy arrays too)
    data, placement, body = roundtrip({"big": big, "small": small, "nested": [bytearray(big), grid]}, shm_dir)
    assert len(data) < 400 and len(placement.refs) == 3
    assert isinstance(body["big"], memoryview) and body["big"].readonly and body["big"] == big
    assert body["small"] == small and isinstance(body["small"], bytes)
    assert body["nested"][0] == big and body["nested"][1].tobytes() == grid.tobytes()
    assert segments(shm_dir) == []  # every receiver attached: the names are gone


def test_without_a_placement_every_buffer_goes_inline(shm_dir: Path) -> None:
    big = b"x" * (64 * KiB)
    envelope = decode(encode(Envelope("data", "a", 1, {"v": memoryview(big), "a": array.array("b", [1, 2])})))
    assert envelope.body == {"v": big, "a": b"\x01\x02"} and envelope.shm is None


def test_a_shared_buffer_is_sent_without_a_copy_and_handed_over(shm_dir: Path) -> None:
    buf = SharedBuffer.create(64 * KiB, lease=10, directory=shm_dir)
    buf.view[:5] = b"hello"
    _, placement, body = roundtrip({"mesh": buf}, shm_dir, receivers=1)
    assert placement.handed == [buf] and placement.made == []
    assert body["mesh"][:5] == b"hello" and len(body["mesh"]) == 64 * KiB
    with pytest.raises(Exception, match="closed"):
        buf.view  # noqa: B018  # handed over: the writer's view is gone


def test_two_receivers_each_attach_before_the_name_goes(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 2)
    data = encode(Envelope("data", "a", 1, b"z" * 8 * KiB), placement=placement)
    first = receive(data, policy(shm_dir)).body
    assert len(segments(shm_dir)) == 1
    second = receive(data, policy(shm_dir)).body
    assert first == second == b"z" * 8 * KiB and segments(shm_dir) == []
    with pytest.raises(MalformedMessage, match="unusable") as caught:
        receive(data, policy(shm_dir))  # a third receiver: it was released
    assert caught.value.reason == "shm" and isinstance(caught.value.__cause__, SegmentGone)


def test_frames_with_bad_references_are_malformed(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 1)
    good = encode(Envelope("data", "a", 1, b"q" * 8 * KiB), placement=placement)
    ref = placement.refs[0]
    forged = [
        (Envelope("data", "a", 2, None, shm=(ref,)), None),  # no slot: refs alone are ignored
        (Envelope("data", "a", 3, None, shm=([ref[0], b"\0" * 16, 0, 10],)), BadReference),
        (Envelope("data", "a", 4, None, shm=([ref[0], ref[1], 0, 10**9],)), BadReference),
        (Envelope("data", "a", 5, None, shm=(["nngc.1.00", ref[1], 0, 1],)), BadReference),
        (Envelope("data", "a", 6, None, shm=(["../../etc/passwd", ref[1], 0, 1],)), BadReference),
    ]
    for envelope, cause in forged:
        frame = {"v": 1, "k": "data", "s": "a", "id": envelope.id, "shm": list(envelope.shm or ())}
        if cause is not None:
            frame["b"] = cbor2.CBORTag(SHM_TAG, 0)  # the body is a slot for shm[0]
        data = cbor2.dumps(frame)
        if cause is None:
            assert receive(data, policy(shm_dir)).shm == (ref,)
            continue
        with pytest.raises(MalformedMessage) as caught:
            receive(data, policy(shm_dir))
        assert caught.value.reason == "shm" and isinstance(caught.value.__cause__, cause), envelope
    assert receive(good, policy(shm_dir)).body == b"q" * 8 * KiB  # still intact


def test_slots_out_of_range_twice_or_without_shm_and_a_socket_without_shared_memory(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 1)
    data = encode(Envelope("data", "a", 1, [b"r" * 8 * KiB]), placement=placement)
    with pytest.raises(MalformedMessage, match="does not use") as caught:
        receive(data, SharedMemory(enabled=False))
    assert caught.value.reason == "shm" and caught.value.__cause__.reason == "off"  # type: ignore[union-attr]
    hexed = data.hex()
    twice = bytes.fromhex(hexed.replace("81d96e6e00", "82d96e6e00d96e6e00"))  # [slot 0] -> [slot 0, slot 0]
    with pytest.raises(MalformedMessage, match="used twice"):
        decode(twice)
    without = bytes.fromhex(hexed[: hexed.index("6373686d")].replace("a6", "a5", 1))  # drop "shm"
    with pytest.raises(MalformedMessage, match="no 'shm'"):
        decode(without)
    assert receive(data, policy(shm_dir)).body == [b"r" * 8 * KiB]  # the real one still works


def test_decoding_is_pure_the_socket_attaches(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 1)
    data = encode(Envelope("data", "a", 1, {"x": [b"p" * 8 * KiB], "y": 2}), placement=placement)
    placement.sent()
    for _ in range(3):  # decode as often as you like: nothing is attached, nothing released
        envelope = decode(data)
        ref = envelope.body["x"][0]
        assert type(ref) is ShmRef and ref.length == 8 * KiB and envelope.body["y"] == 2
        assert envelope.shm == (ref.to_wire(),) and holds_references(envelope.body)
    assert len(segments(shm_dir)) == 1
    with pytest.raises(SharedMemoryError, match="does not use"):
        resolve(envelope.body, SharedMemory(enabled=False))
    assert len(segments(shm_dir)) == 1  # refused before any attach
    assert resolve({"y": 2}, policy(shm_dir)) == {"y": 2} and not holds_references([1, {"a": b"x"}])
    body = resolve(envelope.body, policy(shm_dir))
    assert body["x"][0] == b"p" * 8 * KiB and body["x"][0].readonly and segments(shm_dir) == []


def test_a_received_view_is_unmapped_as_soon_as_it_is_dropped(shm_dir: Path) -> None:
    # Without the cyclic GC: a cycle around the views (once the recursive closures in
    # resolve()) kept every received segment mapped until a collection, so its sender could
    # not reuse it and made a fresh one per payload.
    enabled = gc.isenabled()
    gc.disable()
    try:
        _, placement, body = roundtrip({"x": [b"p" * 8 * KiB], "y": {"z": b"q" * 8 * KiB}}, shm_dir)
        paths = [shm_dir / name for name, *_ in placement.refs]
        held = [mappings(path) for path in paths]
        assert len(paths) == 2 and all(count >= 1 for count in held)
        del body
        assert [mappings(path) for path in paths] == [count - 1 for count in held]
    finally:
        if enabled:
            gc.enable()


def test_a_socket_counts_an_unusable_reference_as_malformed(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 1)
    data = encode(Envelope("data", "a", 1, b"g" * 8 * KiB), placement=placement)
    placement.abort()  # the segment is gone before anyone attached
    for shared in (policy(shm_dir), SharedMemory(enabled=False)):
        sock = Pair(shared_memory=shared)
        with pytest.raises(MalformedMessage) as caught:
            sock._unpack(data)
        assert caught.value.reason == "shm" and isinstance(caught.value.__cause__, SharedMemoryError)
        assert sock.statistics().malformed == 1


def test_a_refused_frame_releases_its_other_segments_at_once(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 1)
    data = encode(Envelope("data", "a", 1, [b"g" * 8 * KiB, b"h" * 8 * KiB]), placement=placement)
    placement.sent()
    placement.made[0].discard()  # the first is gone before anyone attached: the frame is refused
    assert len(segments(shm_dir)) == 1
    with pytest.raises(MalformedMessage) as caught:
        receive(data, policy(shm_dir))
    assert caught.value.reason == "shm"
    assert segments(shm_dir) == []  # the second released now, not left to its lease


def test_a_full_directory_falls_back_inline_or_raises(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from patterns.shm import codec

    def full(*_a: Any, **_k: Any) -> Any:
        raise SharedMemoryFull("no room", name=None, size=1, directory=str(shm_dir))

    monkeypatch.setattr(codec, "place", full)
    data, placement, body = roundtrip(b"f" * 8 * KiB, shm_dir)
    assert placement.inline_fallbacks == 1 and body == b"f" * 8 * KiB and len(data) > 8 * KiB
    with pytest.raises(SharedMemoryFull):
        encode(
            Envelope("data", "a", 1, b"f" * 8 * KiB), placement=Placement(policy(shm_dir, fallback=False), 1)
        )


def test_a_failed_send_removes_its_segments(shm_dir: Path) -> None:
    placement = Placement(policy(shm_dir), 1)
    with pytest.raises(Exception, match="exceeds max_message_size"):
        encode(Envelope("data", "a", 1, [b"s" * 8 * KiB, "t" * 600]), max_size=500, placement=placement)
    assert segments(shm_dir) == []


buffers = st.one_of(st.binary(max_size=64), st.integers(0, 12 * KiB).map(lambda n: bytes([n % 251]) * n))
bodies = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=8), buffers),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bodies)
def test_any_body_round_trips_with_or_without_shared_memory(shm_dir: Path, body: Any) -> None:
    _, _, got = roundtrip(body, shm_dir)
    assert plain(got) == body
    assert segments(shm_dir) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies)
def test_decoding_any_body_twice_attaches_nothing(shm_dir: Path, body: Any) -> None:
    """decode is pure: any number of decodes leave every segment waiting for its one
    receiver, and give equal envelopes whose references are exactly the placed buffers."""
    placement = Placement(policy(shm_dir), 1)
    data = encode(Envelope("data", "a", 1, body), placement=placement)
    placement.sent()
    placed = segments(shm_dir)
    first, second = decode(data), decode(data)
    assert first == second and holds_references(first.body) == bool(placement.refs)
    assert segments(shm_dir) == placed  # nothing attached: with one receiver, an attach unlinks
    assert plain(resolve(first.body, policy(shm_dir))) == body and segments(shm_dir) == []


def test_decoding_references_leaves_nothing_for_the_cyclic_gc(shm_dir: Path) -> None:
    # The slots are swapped for references by a module function: a recursive closure there
    # was a reference cycle per received frame, left for the collector (as resolve()'s were).
    placement = Placement(policy(shm_dir), 1)
    data = encode(Envelope("data", "a", 1, {"x": [b"p" * 8 * KiB], "y": {"z": b"q" * 8 * KiB}}), placement=placement)
    placement.sent()
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        envelope = decode(data)
        assert len(envelope.shm or ()) == 2 and gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
    assert len(resolve(envelope.body, policy(shm_dir))) == 2 and segments(shm_dir) == []  # attached: released
