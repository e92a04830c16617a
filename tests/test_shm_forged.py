"""Forged and stale shared-memory references: each is refused with a documented error.

Missing, foreign, truncated, already-freed segments, wrong tokens, out-of-range
ranges, symlinks, FIFOs: ``attach`` raises :class:`SegmentGone` or
:class:`BadReference` with the reason of the failed check, never crashes, hangs or
reads out of bounds, and a refused attach does not count as a receiver.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _shm import SHM, no_leak, patch_header, read_header, shm_dir
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from patterns.errors import BadReference, SegmentGone, SharedMemoryError
from patterns.shm.header import FLAG_PROBE, HEADER, MAGIC, PAYLOAD_OFFSET
from patterns.shm.ref import ShmRef
from patterns.shm.segment import SharedBuffer, attach, attach_all, place

__all__ = ["no_leak", "shm_dir"]  # fixtures used by name


def forged_name() -> str:
    return f"nngc.{os.getpid()}.{secrets.token_hex(16)}"


def write_private(path: Path, content: bytes) -> None:
    """A forged file made the way segments are (mode 0600), so only its content is judged."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


def refused(ref: ShmRef, folder: Path, error: type[SharedMemoryError] = BadReference) -> str:
    """Attach ``ref``, expecting ``error``; return its reason."""
    with pytest.raises(error) as caught:
        attach(ref, directory=folder)
    assert caught.value.name == ref.name and ref.name in str(caught.value)
    return caught.value.reason


def test_missing(shm_dir: Path) -> None:
    ref = ShmRef(forged_name(), bytes(16), 0, 1)
    assert refused(ref, shm_dir, SegmentGone) == "missing"


def test_already_freed(shm_dir: Path) -> None:
    buf = place(b"once", lease=30, directory=shm_dir)
    attach(buf.ref, directory=shm_dir)
    assert refused(buf.ref, shm_dir, SegmentGone) == "missing"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "truncated"),
        (b"NNGCSHM1", "truncated"),  # shorter than a header
        (b"\x7fELF" + bytes(8188), "magic"),
        (MAGIC + b"\x01\x00" + bytes(8182), "version"),  # version 1: the payload in the file
        (MAGIC + b"\x02\x00\x00\x00" + bytes(8180), "version"),  # payload offset 0
        (MAGIC + b"\x02\x00\x00\x00\x00\x10\x00\x00" + bytes(8176), "header"),  # pid 0
    ],
)
def test_foreign_files(shm_dir: Path, content: bytes, reason: str) -> None:
    name = forged_name()
    write_private(shm_dir / name, content)
    assert refused(ShmRef(name, bytes(16), 0, 0), shm_dir) == reason
    (shm_dir / name).unlink()


def test_token_mismatch(shm_dir: Path) -> None:
    buf = place(b"secret", lease=30, directory=shm_dir)
    assert refused(ShmRef(buf.name, bytes(16), 0, 6), shm_dir) == "token"
    assert read_header(buf.path).pending == 1  # a refused attach is not a receiver
    assert bytes(attach(buf.ref, directory=shm_dir)) == b"secret"


def test_truncated_after_creation(shm_dir: Path) -> None:
    buf = place(bytes(8192), lease=30, directory=shm_dir)
    os.truncate(buf.path, PAYLOAD_OFFSET + 100)
    assert refused(buf.ref, shm_dir) == "truncated"
    assert refused(ShmRef(buf.name, buf.ref.token, 0, 100), shm_dir) == "truncated"  # the header wants more
    buf.discard()


def test_header_claiming_more_than_the_file(shm_dir: Path) -> None:
    buf = place(b"small", lease=30, directory=shm_dir)
    patch_header(buf.path, payload_length=2**40)
    assert refused(ShmRef(buf.name, buf.ref.token, 2**39, 5), shm_dir) == "truncated"
    buf.discard()


@pytest.mark.parametrize(("offset", "length"), [(0, 11), (10, 1), (11, 0), (5, 2**40), (2**47, 1)])
def test_out_of_range(shm_dir: Path, offset: int, length: int) -> None:
    buf = place(b"0123456789", lease=30, directory=shm_dir)
    assert refused(ShmRef(buf.name, buf.ref.token, offset, length), shm_dir) == "range"
    assert read_header(buf.path).pending == 1
    assert bytes(attach(ShmRef(buf.name, buf.ref.token, 10, 0), directory=shm_dir)) == b""  # the edge is fine


def test_name_and_header_disagree_on_the_owner(shm_dir: Path) -> None:
    buf = place(b"moved", lease=30, directory=shm_dir)
    other = f"nngc.{os.getpid() + 1}.{buf.name.rsplit('.', 1)[1]}"
    os.rename(buf.path, shm_dir / other)
    assert refused(ShmRef(other, buf.ref.token, 0, 5), shm_dir) == "mismatch"
    (shm_dir / other).unlink()


def test_a_probe_is_not_a_payload(shm_dir: Path) -> None:
    buf = place(b"probe", lease=30, directory=shm_dir)
    patch_header(buf.path, flags=FLAG_PROBE)
    assert refused(buf.ref, shm_dir) == "mismatch"
    buf.discard()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_a_segment_others_may_open_is_refused(shm_dir: Path, mode: int) -> None:
    buf = place(b"private", lease=30, directory=shm_dir)
    os.chmod(buf.path, mode)
    assert refused(buf.ref, shm_dir) == "mode"
    assert read_header(buf.path).pending == 1  # a refused attach is not a receiver
    os.chmod(buf.path, 0o600)
    assert bytes(attach(buf.ref, directory=shm_dir)) == b"private"


def test_a_segment_of_another_user_is_refused(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = place(b"not yours", lease=30, directory=shm_dir)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(buf.path).st_uid + 1)
    assert refused(buf.ref, shm_dir) == "owner"
    assert buf.path.exists() and read_header(buf.path).pending == 1
    monkeypatch.undo()
    assert bytes(attach(buf.ref, directory=shm_dir)) == b"not yours"


def test_not_regular_files(shm_dir: Path) -> None:
    target = shm_dir / "elsewhere"
    target.write_bytes(b"x" * 8192)
    link, fifo, folder = forged_name(), forged_name(), forged_name()
    (shm_dir / link).symlink_to(target)
    os.mkfifo(shm_dir / fifo)  # opening it must not block
    (shm_dir / folder).mkdir()
    for name in (link, fifo, folder):
        assert refused(ShmRef(name, bytes(16), 0, 0), shm_dir) == "not-a-file"
    for name in (link, fifo, "elsewhere"):
        (shm_dir / name).unlink()
    (shm_dir / folder).rmdir()


def test_attach_all_refuses_mixed_tokens(shm_dir: Path) -> None:
    buf = place(b"ab", lease=30, directory=shm_dir)
    with pytest.raises(BadReference) as caught:
        attach_all([buf.ref, ShmRef(buf.name, bytes(16), 0, 1)], directory=shm_dir)
    assert caught.value.reason == "token"
    with pytest.raises(BadReference):
        attach_all([buf.ref, ShmRef(buf.name, buf.ref.token, 1, 2)], directory=shm_dir)  # one bad range
    assert read_header(buf.path).pending == 1
    buf.discard()


@st.composite
def headers(draw: st.DrawFn) -> tuple[object, ...]:
    """The fields of a plausible header, with at most one of them replaced by junk."""
    receivers = draw(st.integers(1, 3))
    fields: list[object] = [
        MAGIC, 2, 0, PAYLOAD_OFFSET, os.getpid(), 1, 1, draw(st.binary(min_size=16, max_size=16)),
        draw(st.integers(0, PAYLOAD_OFFSET)), draw(st.sampled_from([1e18, 1e18, -1.0])), receivers,
        draw(st.integers(1, receivers) | st.just(0)), draw(st.integers(-1, 64)), draw(st.integers(0, 2**20)),
    ]  # fmt: skip
    junk: list[st.SearchStrategy[object]] = [
        st.binary(min_size=8, max_size=8),
        *[st.integers(0, 2**16 - 1)] * 2,
        st.integers(0, 2**32 - 1),
        *[st.integers(0, 2**64 - 1)] * 3,
        st.binary(min_size=16, max_size=16),
        st.integers(0, 2**64 - 1),
        st.floats(),
        *[st.integers(0, 2**32 - 1)] * 2,
        st.integers(-(2**31), 2**31 - 1),
        st.integers(0, 2**64 - 1),
    ]
    position = draw(st.integers(-1, len(fields) - 1))
    if position >= 0:
        fields[position] = draw(junk[position])
    return tuple(fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=headers(),
    size=st.just(2 * PAYLOAD_OFFSET) | st.integers(0, 3 * PAYLOAD_OFFSET),
    offset=st.integers(0, 64) | st.integers(0, 2**20),
    length=st.integers(0, 64) | st.integers(0, 2**20),
)
def test_random_headers_never_crash(fields: tuple[object, ...], size: int, offset: int, length: int) -> None:
    """Whatever a file holds, attach refuses it: the payload is never the file itself, and a
    descriptor number of this process's (its own payload memfds included) is no forged
    segment's payload (the header must also name that memfd's inode)."""
    folder = Path(tempfile.mkdtemp(prefix="shm-fuzz-", dir=SHM))
    try:
        name = f"nngc.{os.getpid()}.{secrets.token_hex(16)}"
        header = HEADER.pack(*fields)
        content = header + bytes(size)
        write_private(folder / name, content)
        token = fields[7]
        assert isinstance(token, bytes)
        try:
            view = attach(ShmRef(name, token, offset, length), directory=folder)
        except (BadReference, SegmentGone) as exc:
            event(f"refused: {exc.reason}")
            return
        view.release()
        raise AssertionError(f"a forged segment was attached: {fields}")
    finally:
        for entry in folder.iterdir():
            entry.unlink()
        folder.rmdir()


def test_a_locked_segment_is_waited_for_then_refused(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    import patterns.shm.attach

    monkeypatch.setattr(patterns.shm.attach, "LOCK_PATIENCE", 0.05)
    buf = SharedBuffer.create(1, lease=30, receivers=2, directory=shm_dir)  # counted under the lock
    holder = os.open(buf.path, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # as a receiver stopped mid-attach would
        with pytest.raises(SharedMemoryError) as caught:
            attach(buf.ref, directory=shm_dir)
        assert caught.value.reason == "locked"
        assert read_header(buf.path).pending == 2
    finally:
        os.close(holder)
    attach(buf.ref, directory=shm_dir)
    attach(buf.ref, directory=shm_dir)
    assert not buf.path.exists()
    buf.close()


def test_one_receiver_claims_by_unlinking_and_a_second_attach_is_refused(
    shm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import patterns.shm.attach

    buf = place(b"only once", lease=30, directory=shm_dir)
    checked = patterns.shm.attach._validated_header

    def then_someone_claims(*args: Any) -> Any:
        header = checked(*args)
        os.unlink(buf.path)  # another attach of the same reference won the race meanwhile
        return header

    monkeypatch.setattr(patterns.shm.attach, "_validated_header", then_someone_claims)
    with pytest.raises(SegmentGone) as caught:
        attach(buf.ref, directory=shm_dir)
    assert caught.value.reason == "released"
    monkeypatch.undo()
    again = place(b"only once", lease=30, directory=shm_dir)
    view = attach(again.ref, directory=shm_dir)
    assert bytes(view) == b"only once" and not again.path.exists()
    with pytest.raises(SegmentGone) as caught:
        attach(again.ref, directory=shm_dir)
    assert caught.value.reason == "missing"
