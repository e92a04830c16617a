"""What the shared-memory tests share: a private segment directory per test, and leak checks.

Import the fixtures into a test module (``from _shm import shm_dir, no_leak``): ``no_leak``
is autouse there and fails a test that left a segment of this process in /dev/shm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from patterns.shm import ring
from patterns.shm import spare as spares
from patterns.shm.header import HEADER, Header
from patterns.shm.pool import SegmentPool
from patterns.shm.ref import ShmRef

SHM = Path("/dev/shm")
ROOT = Path(__file__).resolve().parent.parent


def segments(folder: Path) -> list[str]:
    """Names of the toolkit's segments (``nngc.*``) in ``folder``."""
    return sorted(entry.name for entry in folder.iterdir() if entry.name.startswith("nngc."))


def mappings(path: Path) -> int:
    """How many mappings of segment ``path``'s payload this process holds (its memfd is named
    after the segment and shows as ``/memfd:<name> (deleted)``)."""
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if f"/memfd:{path.name} " in line or str(path) in line)


def read_header(path: Path) -> Header:
    header = Header.unpack(path.read_bytes()[: HEADER.size])
    assert isinstance(header, Header), header
    return header


def patch_header(path: Path, **changes: object) -> None:
    """Rewrite fields of a segment's header in place (to forge states without waiting)."""
    from dataclasses import replace

    header = read_header(path)
    owner_changes = {k: changes.pop(k) for k in ("pid", "start_time", "pid_ns") if k in changes}
    header = replace(header, owner=replace(header.owner, **owner_changes), **changes)  # type: ignore[arg-type]
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, header.pack(), 0)
    finally:
        os.close(fd)


def ref_hex(ref: ShmRef) -> str:
    """A reference as a ``shm_agent.py`` reads it: CBOR of its wire form, in hex."""
    return cbor2.dumps(ref.to_wire()).hex()


def ref_from_hex(text: str) -> ShmRef:
    return ShmRef.from_wire(cbor2.loads(bytes.fromhex(text)))


def unshare_works() -> bool:
    """Whether ``unshare -rm`` can give a child its own mount namespace here."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", "-rm", "true"], check=False, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def agent_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tests" / "shm_agent.py"), *args]


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    """A fresh directory on /dev/shm's tmpfs for this test's segments; must end empty."""
    path = Path(tempfile.mkdtemp(prefix="shm-test-", dir=SHM))
    try:
        yield path
        left = segments(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    assert not left, f"segments left behind in {path}: {left}"


@pytest.fixture(autouse=True)
def no_leak() -> Iterator[None]:
    """Fail a test that leaves a segment of this process in /dev/shm itself."""
    before = set(segments(SHM))
    yield
    mine = f"nngc.{os.getpid()}."
    left = [name for name in set(segments(SHM)) - before if name.startswith(mine)]
    for name in left:
        (SHM / name).unlink(missing_ok=True)
    assert not left, f"segments left behind in {SHM}: {left}"


@pytest.fixture
def in_use(shm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``shm_dir`` kept in use as by an open socket, with a segment pool of this test's own;
    unregistering the directory at the end drops its pooled segments and names made ahead."""
    monkeypatch.setattr(ring, "_pool", SegmentPool(ring.LIMITS))
    user = object()
    spares.register(user, str(shm_dir))
    try:
        yield shm_dir
    finally:
        spares.unregister(user)
        assert spares.settle(30)
    assert spares.held(str(shm_dir)) == []
    assert ring.statistics().pooled == ring.statistics().retiring == 0
